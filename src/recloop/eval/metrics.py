"""Ranking metrics for full-catalogue evaluation, from the ranks of held-out targets.

The ranking itself (:func:`top_k`, :func:`rank_targets` and the tie rule) lives on the
ground floor, in :mod:`recloop.data.ranking`, and is re-exported here. The protocol:

* **Full ranking.** Each user's targets are ranked against *all* items of the catalogue, not
  against a sampled set of negatives.
* **Exclusion.** Items marked in ``exclude`` (typically the user's training history) are removed
  from the ranking before anything is counted. A target may not be excluded.
* **Pessimistic ties.** Ties in score are broken *against* the target: every non-target item whose
  score equals a target's score is ranked ahead of it. Among several tied targets of the same
  user, the one listed first is ranked first. A constant scorer therefore gets no credit.

All functions are pure numpy (plus ``scipy.sparse`` for the exclusion matrix) and process users in
bounded-memory chunks, so they can be called on a whole test set at once or on batches.

Invalid input raises :class:`recloop.errors.DataError` (bad arrays, NaN scores, excluded targets)
or :class:`recloop.errors.ConfigError` (bad ``k``/``ks``); both subclass ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from recloop.data.ranking import _as_index_array, _check_indptr, rank_targets, top_k
from recloop.errors import ConfigError, DataError

__all__ = [
    "rank_targets",
    "ranking_metrics",
    "top_k",
]


def _check_ks(ks: int | Iterable[int]) -> list[int]:
    """Returns the de-duplicated list of cut-offs, raising unless all are positive ints."""
    ks_list = [ks] if isinstance(ks, (int, np.integer)) else list(ks)
    if not ks_list:
        raise ConfigError("ks must contain at least one cut-off")
    out: list[int] = []
    for k in ks_list:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ConfigError(f"every k in ks must be a positive int, got {k!r}")
        if int(k) not in out:
            out.append(int(k))
    return out


def _as_topk_items(topk_items: ArrayLike) -> NDArray[np.int64]:
    """Returns top-k lists as a 2-D int64 array (``-1`` = padding)."""
    items = np.asarray(topk_items)
    if items.ndim != 2:
        raise DataError(f"topk_items must be a 2-D (users, k) array, got shape {items.shape}")
    if items.size and not np.issubdtype(items.dtype, np.integer):
        raise DataError(f"topk_items must have an integer dtype, got {items.dtype}")
    items = items.astype(np.int64, copy=False)
    if np.any(items < -1):
        raise DataError("topk_items may only contain item indices >= 0 or -1 (padding)")
    return items


def _check_items_in_range(items: NDArray[np.int64], n_items: int, name: str) -> None:
    """Raises unless every non-padding index of ``items`` lies in ``[0, n_items)``."""
    if items.size and int(items.max()) >= n_items:
        raise DataError(
            f"{name} contains item index {int(items.max())} but there are only {n_items} items"
        )


# --------------------------------------------------------------------------------------------
# ranking
# --------------------------------------------------------------------------------------------


def ranking_metrics(
    ranks: ArrayLike,
    target_indptr: ArrayLike,
    ks: int | Iterable[int] = (5, 10, 20),
) -> dict[str, NDArray[np.float64]]:
    """Turns target ranks into per-user top-k accuracy metrics.

    With ``n_t`` the user's number of targets and ``hits`` the number of targets with rank < k:

    * ``hr@k`` = 1 if hits > 0 else 0
    * ``ndcg@k`` = sum over hit targets of ``1 / log2(rank + 2)``, divided by the ideal DCG
      ``sum_{i < min(n_t, k)} 1 / log2(i + 2)``
    * ``mrr@k`` = ``1 / (min_rank + 1)`` if min_rank < k else 0
    * ``recall@k`` = hits / n_t
    * ``precision@k`` = hits / k

    Users with no target get NaN for every metric ("not applicable"); aggregate with
    ``np.nanmean`` or :func:`recloop.eval.stats.mean_ci`, which ignores NaN.

    Args:
        ranks: ``(T,)`` 0-based target ranks, e.g. from :func:`rank_targets`.
        target_indptr: ``(B + 1,)`` CSR row pointer giving each user's slice of ``ranks``.
        ks: One positive cut-off or an iterable of them (duplicates are ignored).

    Returns:
        Dict mapping ``"{metric}@{k}"`` to a ``(B,)`` float64 array, ordered by k then metric
        (``hr``, ``ndcg``, ``mrr``, ``recall``, ``precision``).

    Raises:
        ValueError: If a k is not a positive int, ranks are negative or non-integer, or
            ``ranks`` and ``target_indptr`` disagree in length.
    """
    k_list = _check_ks(ks)
    r = _as_index_array(ranks, "ranks")
    indptr = _check_indptr(target_indptr, r.size)
    if r.size and int(r.min()) < 0:
        raise DataError("ranks must be non-negative")
    n_users = indptr.size - 1
    n_t = np.diff(indptr)
    users = np.repeat(np.arange(n_users, dtype=np.int64), n_t)
    empty = n_t == 0

    min_rank = np.full(n_users, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(min_rank, users, r)
    gain = 1.0 / np.log2(r.astype(np.float64) + 2.0)
    # ideal_dcg[m] = sum_{i < m} 1 / log2(i + 2)
    max_ideal = min(int(n_t.max(initial=0)), max(k_list))
    ideal_dcg = np.concatenate(([0.0], np.cumsum(1.0 / np.log2(np.arange(max_ideal) + 2.0))))

    out: dict[str, NDArray[np.float64]] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in k_list:
            hit = r < k
            hits = np.bincount(users, weights=hit.astype(np.float64), minlength=n_users)
            dcg = np.bincount(users, weights=np.where(hit, gain, 0.0), minlength=n_users)
            idcg = ideal_dcg[np.minimum(n_t, k)]
            metrics = {
                "hr": (hits > 0).astype(np.float64),
                "ndcg": dcg / idcg,
                "mrr": np.where(min_rank < k, 1.0 / (min_rank.astype(np.float64) + 1.0), 0.0),
                "recall": hits / n_t,
                "precision": hits / float(k),
            }
            for name, values in metrics.items():
                values = values.astype(np.float64, copy=False)
                values[empty] = np.nan
                out[f"{name}@{k}"] = values
    return out
