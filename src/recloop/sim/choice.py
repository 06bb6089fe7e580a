"""The users' choice over a slate, and the slate helpers the simulator and the agents share.

A multinomial logit over the slate's utilities with a no-click option of utility 0
(:func:`choice_probabilities`); the ``K`` best unseen items (:func:`top_unseen`); which slate
positions hold an item for the first time (:func:`first_occurrence`); the genres a user's
recent clicks cover (:func:`window_taste`, :func:`genre_repetition`), which the simulator's
boredom and leave push read and which the world's calibration and the leave model fit.
Re-exported by :mod:`recloop.sim.core`.
"""

from __future__ import annotations

import numpy as np

from recloop.data.ranking import top_k

__all__ = [
    "choice_probabilities",
    "first_occurrence",
    "genre_repetition",
    "top_unseen",
    "window_taste",
]


def _logit_terms(util: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``e^{u − m}``, ``e^{−m}`` and their total with ``m = max(0, max u)`` per row."""
    top = np.maximum(util.max(1), 0.0)
    e = np.exp(util - top[:, None])
    e0 = np.exp(-top)
    return e, e0, e0 + e.sum(1)


def choice_probabilities(util: np.ndarray) -> np.ndarray:
    """(n, K + 1) the users' choice over a slate: ``P(item j)`` for each of the ``K`` slate
    utilities (``-inf``: not clickable) and, last, ``P(no click)``, a multinomial logit with
    a no-click option of utility 0, as :meth:`recloop.sim.core.UserBatch.step` draws it. Rows sum to 1."""
    e, e0, total = _logit_terms(np.asarray(util, dtype=np.float64))
    return np.c_[e / total[:, None], e0 / total]


def top_unseen(scores: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    """(B, k) the ``k`` best-scored items of each row that are not ``seen``, best first.

    A row with fewer than ``k`` unseen items is filled up with seen ones (shown, never
    clicked): the simulator always takes a full slate. NaN scores rank last.
    """
    s = np.where(seen, -np.inf, np.asarray(scores, dtype=np.float64))
    s = np.where(np.isnan(s), -np.inf, s)
    return top_k(s, k)[0]  # ties to the lower index, the same on every CPU


def first_occurrence(slates: np.ndarray) -> np.ndarray:
    """(n, K) True where an item appears for the first time in its row."""
    k = slates.shape[1]
    same = slates[:, :, None] == slates[:, None, :]  # (n, K, K)
    earlier = np.tril(np.ones((k, k), dtype=bool), -1)  # [j, j'] = j' < j
    return ~(same & earlier).any(2)


def genre_share(genres: np.ndarray) -> np.ndarray:
    """(I, G) each item's genres as shares of one (rows sum to 1, or 0 without genres)."""
    g = np.asarray(genres, dtype=np.float32)
    return g / np.maximum(g.sum(1), 1.0)[:, None]


def window_taste(genres: np.ndarray, windows: np.ndarray, decay: float) -> np.ndarray:
    """(n, G) the recent-genre taste of (n, L) history windows (item + 1, 0 = padding, oldest
    first): ``Σ_t (1 − λ) λ^(L−1−t) genres(item_t)``, the newest click weighing most. This is
    the simulator's taste at a session's start; each click then moves it by
    ``g ← λ g + (1 − λ) genres(i)``, so it stays this sum over the window."""
    g = np.asarray(genres, dtype=np.float32)
    w = ((1.0 - decay) * decay ** np.arange(windows.shape[1])[::-1]).astype(np.float32)
    padded = np.vstack([np.zeros((1, g.shape[1]), dtype=np.float32), g])
    return np.einsum("l,nlg->ng", w, padded[np.asarray(windows, dtype=np.int64)])


def genre_repetition(share: np.ndarray, taste: np.ndarray) -> np.ndarray:
    """(n, I) ``rep``: how much of each item's genres (``share``, :func:`genre_share`) the
    (n, G) recent ``taste`` covers, in [0, 1]."""
    return np.asarray(taste, dtype=np.float32) @ np.asarray(share, dtype=np.float32).T
