"""Beyond-accuracy metrics of top-k lists: catalogue coverage, intra-list diversity, novelty.

Pure numpy functions of ``(B, k)`` item-index lists (``-1`` = padding, ignored), such as the
first output of :func:`recloop.eval.metrics.top_k`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from recloop.data.ranking import _CHUNK_CELLS
from recloop.errors import DataError
from recloop.eval.metrics import _as_topk_items, _check_items_in_range

__all__ = ["catalogue_coverage", "intra_list_diversity", "novelty"]


def catalogue_coverage(topk_items: ArrayLike, n_items: int) -> float:
    """Fraction of the catalogue that appears in at least one recommendation list.

    Args:
        topk_items: ``(B, k)`` int item indices, ``-1`` = padding (ignored).
        n_items: Catalogue size ``I`` (> 0).

    Returns:
        ``#distinct recommended items / n_items`` in ``[0, 1]``.

    Raises:
        ValueError: If ``n_items <= 0`` or an index is out of ``[-1, n_items)``.
    """
    if n_items <= 0:
        raise DataError(f"n_items must be positive, got {n_items}")
    items = _as_topk_items(topk_items)
    _check_items_in_range(items, n_items, "topk_items")
    return float(np.unique(items[items >= 0]).size / n_items)


def unit_rows(x: ArrayLike) -> NDArray[np.float64]:
    """Each row scaled to unit length (an all-zero row stays zero), as float64."""
    a = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return np.divide(a, norms, out=np.zeros_like(a), where=norms > 0)


def intra_list_diversity(
    topk_items: ArrayLike, item_features: ArrayLike | sp.spmatrix | sp.sparray
) -> NDArray[np.float64]:
    """Mean pairwise cosine distance between the items of each recommendation list.

    For every list, the mean over unordered pairs of distinct positions (both holding a valid
    item) of ``1 - cos(f_i, f_j)``. An item with an all-zero feature vector has cosine similarity
    0 to every item (including a repeat of itself), i.e. distance 1.

    Args:
        topk_items: ``(B, k)`` int item indices, ``-1`` = padding (ignored).
        item_features: ``(I, F)`` item feature matrix (e.g. binary genres); dense or sparse.

    Returns:
        ``(B,)`` float64 array; NaN for lists with fewer than two valid items.

    Raises:
        ValueError: If shapes are invalid or an index is out of range.
    """
    items = _as_topk_items(topk_items)
    if isinstance(item_features, (sp.spmatrix, sp.sparray)):
        feats = item_features.toarray()
    else:
        feats = np.asarray(item_features)
    if feats.ndim != 2:
        raise DataError(f"item_features must be a 2-D (items, features) array, got {feats.shape}")
    feats = feats.astype(np.float64)
    _check_items_in_range(items, feats.shape[0], "topk_items")
    unit = unit_rows(feats)

    n_users, k = items.shape
    out = np.full(n_users, np.nan, dtype=np.float64)
    if k < 2 or n_users == 0:
        return out
    upper = np.triu(np.ones((k, k), dtype=bool), 1)
    chunk = max(1, _CHUNK_CELLS // max(k * max(feats.shape[1], k), 1))
    for start in range(0, n_users, chunk):
        block = items[start : start + chunk]
        valid = block >= 0
        vec = unit[np.where(valid, block, 0)] * valid[..., None]  # (b, k, F), padding -> 0
        sim = np.clip(vec @ vec.transpose(0, 2, 1), -1.0, 1.0)  # (b, k, k)
        pair = upper & valid[:, :, None] & valid[:, None, :]
        n_pairs = np.count_nonzero(pair, axis=(1, 2))
        dist_sum = np.where(pair, 1.0 - sim, 0.0).sum(axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + chunk] = np.where(n_pairs > 0, dist_sum / n_pairs, np.nan)
    return out


def novelty(topk_items: ArrayLike, item_counts: ArrayLike, n_users: int) -> NDArray[np.float64]:
    """Mean self-information of the items in each recommendation list.

    Each item's self-information is ``-log2(p_i)`` with ``p_i = max(count_i, 1) / n_users``, so
    items never seen in training are treated as seen once (finite novelty).

    Args:
        topk_items: ``(B, k)`` int item indices, ``-1`` = padding (ignored).
        item_counts: ``(I,)`` number of training users who interacted with each item.
        n_users: Number of training users (> 0, >= every count).

    Returns:
        ``(B,)`` float64 mean self-information in bits; NaN for lists with no valid item.

    Raises:
        ValueError: If ``n_users <= 0``, counts are negative or exceed ``n_users``, or an index
            is out of range.
    """
    if n_users <= 0:
        raise DataError(f"n_users must be positive, got {n_users}")
    items = _as_topk_items(topk_items)
    counts = np.asarray(item_counts, dtype=np.float64)
    if counts.ndim != 1:
        raise DataError(f"item_counts must be 1-D (items,), got shape {counts.shape}")
    if counts.size and (counts.min() < 0 or counts.max() > n_users):
        raise DataError(
            f"item_counts must lie in [0, n_users={n_users}] (users per item), got range "
            f"[{counts.min()}, {counts.max()}]"
        )
    _check_items_in_range(items, counts.size, "topk_items")
    info = -np.log2(np.maximum(counts, 1.0) / n_users)
    valid = items >= 0
    per_slot = np.where(valid, info[np.where(valid, items, 0)] if info.size else 0.0, 0.0)
    n_valid = np.count_nonzero(valid, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_valid > 0, per_slot.sum(axis=1) / n_valid, np.nan)
