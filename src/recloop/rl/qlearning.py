"""The Q-learning core that the offline heads and the online DQN share.

Both learn by double Q-learning (van Hasselt, NeurIPS 2010; van Hasselt et al., AAAI 2016):
one network picks the next action, ``a* = argmax_a Q_main(s', a)`` over the actions allowed
there (:func:`greedy`, :func:`linear_q_argmax`), another values it, and the TD target is
``y = r + γ Q_target(s', a*)``, or ``y = r`` where the episode ended (:func:`td_target`). Q at
the taken actions comes from a Q matrix (:func:`q_at`) or, for a linear Q head over a large
catalogue, straight from the head's rows without the ``(N, I)`` matrix
(:func:`linear_q_at`).

:mod:`recloop.rl.heads` (SQN, SAC, SNQN, SA2C, CSA: two networks, a coin per step) and
:class:`recloop.rl.deep.DQNAgent` (a lagged target network, slates) differ in their
networks, losses and data, not in these steps, so the steps live here once.
"""

from __future__ import annotations

import torch
from torch import nn

#: Rows of an (N, I) Q matrix computed at once when taking an argmax without gradients.
CHUNK = 1024


def td_target(
    reward: torch.Tensor, next_value: torch.Tensor, done: torch.Tensor, gamma: float
) -> torch.Tensor:
    """``r + γ · V(s')``, with ``V(s') = 0`` where the episode ended.

    Args:
        reward: (N,) or (N, K) rewards.
        next_value: the next state's value, broadcastable against ``reward`` (for example
            (N,) or (N, 1)): ``Q_target(s', a*)`` in double Q-learning.
        done: bool, ``next_value``'s shape: the episode ended after this transition.
        gamma: the discount.
    """
    return reward + gamma * next_value.masked_fill(done, 0.0)


def greedy(q: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """``argmax_a Q(s, a)`` of each row of an (N, I) Q matrix, over ``allowed`` actions.

    Args:
        q: (N, I) Q-values.
        allowed: (N, I) bool, the actions each state may take; ``None``: every one.

    Returns:
        (N,) int64 actions (ties: the lowest index).
    """
    if allowed is not None:
        q = q.masked_fill(~allowed, -torch.inf)
    return q.argmax(-1)


def q_at(q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Q-values at ``actions``: (N, I) Q matrix and (N, K) actions → (N, K)."""
    return q.gather(1, actions)


def linear_q_at(head: nn.Linear, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``Q(s, a)`` of a linear Q head for (N, d) states and (N,) or (N, K) actions, from the
    head's rows of those actions only (no (N, I) matrix over a large catalogue)."""
    w, b = head.weight[actions], head.bias[actions]  # (N, [K,] d), (N, [K])
    if actions.dim() == 1:
        return (states * w).sum(-1) + b
    return (states[:, None, :] * w).sum(-1) + b


@torch.no_grad()
def linear_q_argmax(
    head: nn.Linear, states: torch.Tensor, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`greedy` of a linear Q head for (N, d) states, ``CHUNK`` rows of Q at a time.

    ``allowed`` here is one (A,) index set of items shared by every state (``None``: every
    item); the result holds item indices.
    """
    w: torch.Tensor = head.weight
    b: torch.Tensor = head.bias
    if allowed is not None:
        w, b = w[allowed], b[allowed]
    out = torch.empty(states.shape[0], dtype=torch.long)
    for s in range(0, states.shape[0], CHUNK):
        out[s : s + CHUNK] = greedy(states[s : s + CHUNK].float() @ w.T + b)
    return out if allowed is None else allowed[out]
