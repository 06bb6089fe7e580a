"""The real sessions the simulated users' leaving is fitted to.

Real sessions are a user's ratings split at gaps over ``session_gap_s``. The leave model
(:mod:`recloop.sim.core`) copies the shape of their length distribution
(:func:`real_hazard_logit`) and their mean length (``fit_leave_bias``), from all of the
world's logs or only the returning, recent sessions (:func:`real_lengths`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recloop.errors import DataError

if TYPE_CHECKING:
    from recloop.sim.core import SimConfig
    from recloop.sim.world import World


def session_lengths(timestamps: np.ndarray, indptr: np.ndarray, gap_s: int,
                    cut: int | None = None) -> np.ndarray:  # fmt: skip
    """Lengths of real sessions: each user's chronological events split at gaps > ``gap_s``
    (and, with ``cut``, at each user's first event at or after that time)."""
    starts = np.zeros(len(timestamps), dtype=bool)
    starts[indptr[:-1][np.diff(indptr) > 0]] = True  # each user's first event
    starts[1:] |= np.diff(timestamps) > gap_s
    if cut is not None:
        starts[1:] |= (timestamps[1:] >= cut) & (timestamps[:-1] < cut)
    idx = np.flatnonzero(starts)
    return np.diff(np.r_[idx, len(timestamps)])


def real_lengths(world: World, config: SimConfig) -> np.ndarray:
    """Lengths, capped at ``session_cap``, of the real sessions the leave model is fitted to:
    all of the world's logs, or with ``leave_recent`` the sessions in their most recent share
    (split at that time), and with ``leave_returning`` only the sessions that are not a
    user's first."""
    seq = world.dataset.sequences
    cut = None
    if config.leave_recent > 0.0:
        cut = int(np.quantile(seq.timestamps, 1.0 - config.leave_recent, method="higher"))
    lengths = session_lengths(seq.timestamps, seq.indptr, config.session_gap_s, cut)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    keep = np.ones(len(lengths), dtype=bool)
    if cut is not None:
        keep &= seq.timestamps[starts] >= cut
    if config.leave_returning:
        keep &= ~np.isin(starts, seq.indptr[:-1])
    if not keep.any():
        raise DataError("no real session is left to fit the leave model to (leave_recent "
                        f"{config.leave_recent}, leave_returning {config.leave_returning}); "
                        "lower leave_recent or set leave_returning false")  # fmt: skip
    return np.minimum(lengths[keep], config.session_cap)


def real_hazard_logit(world: World, config: SimConfig) -> np.ndarray:
    """(session_cap + 1,) logit of the real sessions' leave hazard ``P(L = t | L ≥ t)`` at step
    ``t`` (index 0 unused), from the world's logs split into sessions, lengths capped at
    ``session_cap``; half a session is added to each count so no step is certain."""
    cap = config.session_cap
    lengths = real_lengths(world, config)
    ended = np.bincount(lengths, minlength=cap + 1)[: cap + 1].astype(np.float64)
    at_risk = ended[::-1].cumsum()[::-1]  # sessions of length >= t
    hazard = (ended + 0.5) / (at_risk + 1.0)
    out = np.log(hazard) - np.log1p(-np.minimum(hazard, 1 - 1e-6))
    out[0] = 0.0
    return out
