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
    _, lengths = _fitted_sessions(world, config)
    return np.minimum(lengths, config.session_cap)


def _fitted_sessions(world: World, config: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """Start positions (in the chronological logs) and uncapped lengths of the real sessions
    the leave model is fitted to (see :func:`real_lengths`)."""
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
    return starts[keep], lengths[keep]


def fit_leave_per_repeat(world: World, config: SimConfig) -> float:
    """The leave push of genre repetition, fitted on the real sessions (``SimConfig(
    leave_per_repeat=None)``): a logistic regression of "the session ends after this rating"
    on the step (one weight per step up to ``session_cap``, the hazard's shape) and the rated
    item's genre repetition against the user's earlier ratings (the simulator's ``rep``: the
    last ``history_len`` items, taste decay ``taste_decay``), over the sessions the leave
    model is fitted to. Its weight on the repetition is the push. The logs show what a user
    rated, not what was shown, so the push is fitted on the chosen item's repetition and the
    simulator applies it to the slate's mean, as it applies a hand-set one. 0 without genres.
    Cached on the world per configuration."""
    from recloop.sim.choice import genre_share, window_taste
    from recloop.sim.world import _platt

    key = ("leave_per_repeat", config.session_gap_s, config.session_cap, config.leave_recent,
           config.leave_returning, config.history_len, config.taste_decay)  # fmt: skip
    if key in world.cache:
        return float(world.cache[key])
    genres = world.dataset.genre_matrix()[0]
    if not genres.shape[1]:
        return 0.0
    seq = world.dataset.sequences
    starts, lengths = _fitted_sessions(world, config)
    steps = np.minimum(lengths, config.session_cap)  # the simulator stops at the cap
    pos = np.repeat(starts, steps) + _ranges(steps)  # every step's position in the logs
    step = _ranges(steps)  # 0-based step within its session
    ended = step == np.repeat(lengths - 1, steps)  # a capped session never ends in the fit
    user_of = np.repeat(np.arange(len(seq.indptr) - 1), np.diff(seq.indptr))
    first = seq.indptr[user_of[pos]]
    lag = np.arange(config.history_len, 0, -1)  # window oldest first, ending just before pos
    share = genre_share(genres)
    rep = np.empty(len(pos))
    for c in range(0, len(pos), 20_000):  # (chunk, history_len) windows at a time
        at = pos[c : c + 20_000]
        idx = at[:, None] - lag[None, :]
        windows = np.where(idx >= first[c : c + 20_000, None], seq.items[np.maximum(idx, 0)] + 1, 0)
        taste = window_taste(genres, windows, config.taste_decay)
        rep[c : c + 20_000] = (taste * share[seq.items[at]]).sum(1)
    x = np.zeros((len(pos), config.session_cap + 1))
    x[np.arange(len(pos)), step] = 1.0
    x[:, -1] = rep
    weights, _ = _platt(x, ended.astype(np.float64))
    world.cache[key] = float(weights[-1])
    return float(world.cache[key])


def _ranges(n: np.ndarray) -> np.ndarray:
    """``[0, 1, …, n_0 − 1, 0, 1, …, n_1 − 1, …]``."""
    n = np.asarray(n, dtype=np.int64)
    return np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)


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
