"""The users' choice over a slate, and the slate helpers the simulator and the agents share.

A multinomial logit over the slate's utilities with a no-click option of utility 0
(:func:`choice_probabilities`); the ``K`` best unseen items (:func:`top_unseen`); which slate
positions hold an item for the first time (:func:`first_occurrence`). Re-exported by
:mod:`recloop.sim.core`.
"""

from __future__ import annotations

import numpy as np

from recloop.data.ranking import top_k

__all__ = ["choice_probabilities", "first_occurrence", "top_unseen"]


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
