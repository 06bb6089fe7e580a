"""Episodes from logs: every user's chronological sequence as an MDP trajectory.

For a user with items ``i_0, i_1, …, i_T`` (chronological; the training history):

* state ``s_t`` = encoder(items ``i_0..i_t``), the history up to and including ``i_t``;
* action ``a_t`` = ``i_{t+1}``, the next item the user took;
* reward ``r_t`` = ``reward(rating of i_{t+1})``: ``like`` (1.0) for a rating at or above
  ``like_threshold`` (4), ``other`` (0.2) below it, as the SQN / SA2C papers reward a
  purchase and a click;
* next state ``s_{t+1}`` = encoder(items ``i_0..i_{t+1}``);
* ``done`` on the last transition (``a_t`` is the user's last training item).

A batch holds *every* transition of a few users at once, position-aligned in ``(B, L)``
arrays: the state ``s_t`` is the encoder's output at column ``t`` of ``inputs``, and the
next state of a transition that is not ``done`` is the output at column ``t + 1``. One
causal forward pass therefore yields all states and all next states, instead of one
forward pass per transition and another per next state (what a replay buffer of
``(s, a, r, s')`` tuples costs). Only the last ``max_len + 1`` items of a user are used, as
the supervised models train, so the last transition is always the episode's end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recloop.data.reward import Reward
from recloop.models.encoders import window


@dataclass(frozen=True)
class Transitions:
    """All transitions of a batch of user episodes, aligned by position (see the module doc).

    ``valid[b, t]`` marks a real transition: ``inputs[b, t]`` is an item (state ``s_t``
    exists) and ``actions[b, t]`` is the next item. Elsewhere ``actions`` is ``-1`` and
    ``rewards`` is 0. ``seed`` seeds whatever the learner draws for this batch (which
    network is trained, negatives, augmentations), so a run is reproducible.
    """

    inputs: torch.Tensor  # (B, L) int64 tokens (item + 1; 0 = padding on the left)
    actions: torch.Tensor  # (B, L) int64 item indices, -1 where no transition
    rewards: torch.Tensor  # (B, L) float32
    valid: torch.Tensor  # (B, L) bool
    done: torch.Tensor  # (B, L) bool: the episode ends after this transition
    seed: int = 0

    def __post_init__(self) -> None:
        shape = self.inputs.shape
        for name in ("actions", "rewards", "valid", "done"):
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"Transitions.{name} must have the inputs' shape {tuple(shape)}, "
                    f"not {tuple(getattr(self, name).shape)}"
                )

    @property
    def n(self) -> int:
        """Number of real transitions."""
        return int(self.valid.sum())

    def next_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """For each real transition (``valid``'s row-major order): the index, in that same
        order, of the transition whose state is its next state (its own index when it is
        ``done``), and ``done`` itself. Both (N,).

        Every position from a user's first item to the window's end is a real transition,
        so a next state is always the state of the following transition.
        """
        b, length = self.inputs.shape
        flat = torch.arange(b * length).view(b, length)
        order = torch.full((b * length,), -1, dtype=torch.long)
        order[flat[self.valid]] = torch.arange(self.n)
        nxt = torch.where(self.done, flat, flat + 1)[self.valid]
        return order[nxt], self.done[self.valid]


def transitions(
    indptr: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    rows: np.ndarray,
    max_len: int,
    reward: Reward,
    seed: int = 0,
) -> Transitions:
    """The transitions of users ``rows`` from CSR sequences (chronological per user).

    Each user contributes the transitions of their last ``max_len + 1`` items.
    """
    source, real = window(indptr, rows, max_len + 1)
    tokens = np.where(real, items[source] + 1, 0)
    rew = np.where(real, reward(ratings[source]), 0.0).astype(np.float32)
    inputs = tokens[:, :-1]
    valid = real[:, :-1] & real[:, 1:]  # an input item and a next item
    actions = np.where(valid, tokens[:, 1:] - 1, -1)
    done = np.zeros_like(valid)
    done[:, -1] = valid[:, -1]  # windows end at the user's last item: the episode's end
    return Transitions(
        inputs=torch.from_numpy(np.ascontiguousarray(inputs)),
        actions=torch.from_numpy(np.ascontiguousarray(actions)),
        rewards=torch.from_numpy(np.where(valid, rew[:, 1:], 0.0).astype(np.float32)),
        valid=torch.from_numpy(np.ascontiguousarray(valid)),
        done=torch.from_numpy(done),
        seed=seed,
    )
