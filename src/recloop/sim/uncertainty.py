"""The world's uncertainty as a training penalty (MOPO-style, Yu et al., NeurIPS 2020).

An ensemble world's members (:meth:`~recloop.sim.world.World.member`, each under its own
calibration) are tracked beside the ensemble: each slot holds every member's click logits,
which follow the slot's clicks as the ensemble's do. At each step the members' click
probabilities of the shown slate are compared, and with ``SimConfig.uncertainty_penalty = λ``
the step's reward loses ``λ ·`` their standard deviation: an agent trained in the world is
pushed away from the slates the members disagree on, where the simulator knows least (an
agent exploits a model's errors exactly there). Score agents in a world without the penalty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recloop.errors import ConfigError

if TYPE_CHECKING:
    from recloop.sim.core import SimConfig
    from recloop.sim.world import World


def member_worlds(world: World, config: SimConfig) -> list[World]:
    """The ensemble's members as worlds when the config penalises their disagreement, else []."""
    if config.uncertainty_penalty == 0.0:
        return []
    if len(world.models) < 2:
        raise ConfigError(
            f"uncertainty_penalty needs a world of 2+ members to disagree, not {world.describe()};"
            " use an ensemble world, e.g. world_name='gru4rec_x3', or set the penalty to 0"
        )
    return [world.member(j) for j in range(len(world.models))]


def slate_utilities(member_logits: np.ndarray, slates: np.ndarray, penalty: np.ndarray,
                    clickable: np.ndarray) -> np.ndarray:  # fmt: skip
    """(n, k, K) each member's utility of each slate item: (n, k, I) member logits at the
    (n, K) slates, less the (n, K) boredom ``penalty``; ``-inf`` where not ``clickable``."""
    u = np.take_along_axis(member_logits, slates[:, None, :], 2) - penalty[:, None, :]
    return np.where(clickable[:, None, :], u, -np.inf)


def click_disagreement(member_util: np.ndarray) -> np.ndarray:
    """(n,) the standard deviation over members of ``P(some item is clicked)`` for (n, k, K)
    member utilities of the slate (``-inf``: not clickable), each a multinomial logit with a
    no-click option of utility 0, as :meth:`~recloop.sim.core.UserBatch.step` draws it."""
    u = np.asarray(member_util, dtype=np.float64)
    top = np.maximum(u.max(2), 0.0)  # (n, k): shift by max(0, max u) for stability
    e = np.exp(u - top[..., None]).sum(2)
    p_click = e / (e + np.exp(-top))
    return np.asarray(p_click.std(1))


def follow_click(member: World, logits: np.ndarray, j: int, slots: np.ndarray,
                 windows: np.ndarray, items: np.ndarray) -> None:  # fmt: skip
    """Move member ``j``'s (B, k, I) ``logits`` of ``slots`` past their clicks on ``items``
    (``windows``: the slots' history windows with the clicks in), as the world moves its own."""
    if member.sequential:
        logits[slots, j] = member.window_logits(windows)
    elif (delta := member.logit_delta(items)) is not None:
        logits[slots, j] += delta
