"""Ranking: the top-k of a score matrix and the rank of held-out targets, with the tie rule.

Every layer that ranks items by score (models' ``recommend``, the evaluation protocol, the
simulator, the agents, the server, the logging policies) ranks through this module, so there
is one tie rule. Samplers that order random keys (Gumbel-top-k, Thompson draws) are the
exception: exact ties have probability zero (tests/test_house.py lists them).

* **Top-k lists** (:func:`top_k`) order items by score descending, ties to the lower item
  index, exactly as a full stable sort would.
* **Target ranks** (:func:`rank_targets`) break ties *against* the target: every non-target
  item whose score equals a target's score is ranked ahead of it, so a constant scorer gets
  no credit. Among several tied targets of one user, the one listed first ranks first.
* **Exclusion.** Items marked in ``exclude`` (typically the user's known history) are removed
  from the ranking before anything is counted. A target may not be excluded.

Pure numpy (plus ``scipy.sparse`` for the exclusion matrix), in bounded-memory chunks.
Invalid input raises :class:`recloop.errors.DataError` or :class:`recloop.errors.ConfigError`
(both subclass ``ValueError``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from recloop.errors import ConfigError, DataError

__all__ = ["rank_targets", "top_k"]

# Upper bound on the number of score cells materialised at once by the chunked kernels
# (4M cells = 32 MiB of float64), which keeps peak memory flat for any batch size.
_CHUNK_CELLS = 1 << 22


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _as_scores(scores: ArrayLike) -> NDArray[np.floating]:
    """Returns ``scores`` as a 2-D float array, raising on bad shapes or NaN."""
    arr = np.asarray(scores)
    if arr.ndim != 2:
        raise DataError(f"scores must be a 2-D (users, items) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise DataError(f"scores must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    nan_rows = np.isnan(arr).any(axis=1)
    n_nan = int(np.count_nonzero(nan_rows))
    if n_nan:
        raise DataError(f"scores contain NaN for {n_nan} users; the model produced invalid scores")
    return arr


def _as_exclude(
    exclude: ArrayLike | sp.spmatrix | None, shape: tuple[int, ...]
) -> sp.csr_matrix | None:
    """Returns ``exclude`` as a CSR matrix with explicit zeros removed (or ``None``)."""
    if exclude is None:
        return None
    if sp.issparse(exclude):
        mat = sp.csr_matrix(exclude, copy=True)
    else:
        dense = np.asarray(exclude)
        if dense.ndim != 2:
            raise DataError(f"exclude must be a 2-D (users, items) matrix, got shape {dense.shape}")
        mat = sp.csr_matrix(dense != 0)
    if mat.shape != tuple(shape):
        raise DataError(
            f"exclude has shape {mat.shape} but scores have shape {tuple(shape)}; "
            "they must match (users, items)"
        )
    mat.eliminate_zeros()
    return mat


def _as_index_array(values: ArrayLike, name: str) -> NDArray[np.int64]:
    """Returns a 1-D int64 array, raising if ``values`` is not integer-valued."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{name} must have an integer dtype, got {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_indptr(target_indptr: ArrayLike, n_targets: int | None) -> NDArray[np.int64]:
    """Validates a CSR ``indptr`` array (starts at 0, non-decreasing, ends at ``n_targets``)."""
    indptr = _as_index_array(target_indptr, "target_indptr")
    if indptr.size == 0:
        raise DataError("target_indptr must have length n_users + 1 >= 1, got length 0")
    if indptr[0] != 0:
        raise DataError(f"target_indptr must start at 0, got {indptr[0]}")
    if np.any(np.diff(indptr) < 0):
        raise DataError("target_indptr must be non-decreasing")
    if n_targets is not None and indptr[-1] != n_targets:
        raise DataError(
            f"target_indptr ends at {indptr[-1]} but there are {n_targets} targets; they must agree"
        )
    return indptr


def rank_targets(
    scores: ArrayLike,
    target_indptr: ArrayLike,
    target_items: ArrayLike,
    exclude: ArrayLike | sp.spmatrix | None = None,
) -> NDArray[np.int64]:
    """Computes the 0-based rank of every held-out target in its user's full ranking.

    The rank of target ``t`` (score ``s_t``) of user ``b`` is::

        #{non-excluded j : s_j > s_t}
        + #{non-excluded non-target j : s_j == s_t}
        + #{targets j of user b listed before t : s_j == s_t}

    i.e. excluded items are removed, ties with non-targets are broken against the target and ties
    among targets follow their order in ``target_items``. Rank 0 is the top of the list.

    The computation is vectorised: each target's score row is compared with its target score in
    chunks of at most ~4M cells, so memory stays bounded and there is no Python loop over users.

    Args:
        scores: ``(B, I)`` array of scores for ``B`` users over all ``I`` items (higher = better).
            Integer or boolean scores are converted to float64; float32 is kept as is.
        target_indptr: ``(B + 1,)`` int CSR row pointer; user ``b``'s targets are
            ``target_items[target_indptr[b]:target_indptr[b + 1]]``. Users may have no target.
        target_items: ``(T,)`` int item indices in ``[0, I)``; no duplicates within a user.
        exclude: Optional ``(B, I)`` sparse matrix (any scipy format) or dense array; non-zero
            entries are removed from the user's ranking. ``None`` excludes nothing.

    Returns:
        ``(T,)`` int64 array of 0-based ranks, aligned with ``target_items``.

    Raises:
        ValueError: If shapes disagree, scores contain NaN, target indices are out of range or
            duplicated within a user, or a target is also excluded.
    """
    s = _as_scores(scores)
    n_users, n_items = s.shape
    items = _as_index_array(target_items, "target_items")
    indptr = _check_indptr(target_indptr, items.size)
    if indptr.size != n_users + 1:
        raise DataError(
            f"target_indptr has shape {indptr.shape} but scores have shape {s.shape}; "
            f"expected target_indptr of shape ({n_users + 1},)"
        )
    if items.size and (int(items.min()) < 0 or int(items.max()) >= n_items):
        bad = items[(items < 0) | (items >= n_items)]
        raise DataError(
            f"target_items must lie in [0, {n_items}) for scores of shape {s.shape}; "
            f"got out-of-range indices such as {bad[:5].tolist()}"
        )
    excl = _as_exclude(exclude, s.shape)

    n_targets = items.size
    ranks = np.empty(n_targets, dtype=np.int64)
    if n_targets == 0:
        return ranks
    users = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr))

    # Duplicated targets would be counted twice among the "tied targets"; reject them.
    order = np.lexsort((items, users))
    dup = (users[order][1:] == users[order][:-1]) & (items[order][1:] == items[order][:-1])
    if np.any(dup):
        first = order[1:][dup][0]
        raise DataError(
            f"target_items contains duplicate item {int(items[first])} for user "
            f"{int(users[first])}; each target must be listed once per user"
        )

    target_scores = s[users, items]

    # Ties among targets of the same user: group targets by (user, score); within a group the
    # target listed first gets the best rank. ``group_size`` is removed from the tie count of the
    # full row (which includes every tied target) and ``pos_in_group`` is added back.
    order = np.lexsort((np.arange(n_targets), target_scores, users))
    u_sorted = users[order]
    s_sorted = target_scores[order]
    new_group = np.ones(n_targets, dtype=bool)
    new_group[1:] = (u_sorted[1:] != u_sorted[:-1]) | (s_sorted[1:] != s_sorted[:-1])
    group_id = np.cumsum(new_group) - 1
    group_start = np.flatnonzero(new_group)
    group_size = np.diff(np.append(group_start, n_targets))
    pos_in_group = np.empty(n_targets, dtype=np.int64)
    pos_in_group[order] = np.arange(n_targets) - group_start[group_id]
    size_of_group = np.empty(n_targets, dtype=np.int64)
    size_of_group[order] = group_size[group_id]

    # Strictly-greater and equal counts over the non-excluded part of each target's row.
    # Excluded cells are set to NaN in a working copy: NaN compares False with everything, so
    # they drop out of both counts without a separate mask.
    work_dtype = np.result_type(s.dtype, np.float32)
    chunk = max(1, _CHUNK_CELLS // max(n_items, 1))
    for start in range(0, n_targets, chunk):
        stop = min(start + chunk, n_targets)
        rows = users[start:stop]
        block = s[rows].astype(work_dtype, copy=False)
        if excl is not None:
            sub = excl[rows]
            r = np.repeat(np.arange(stop - start), np.diff(sub.indptr))
            block[r, sub.indices] = np.nan
            hit = np.isnan(block[np.arange(stop - start), items[start:stop]])
            if np.any(hit):
                j = start + int(np.flatnonzero(hit)[0])
                raise DataError(
                    f"{int(np.count_nonzero(hit))} target(s) are also excluded, e.g. item "
                    f"{int(items[j])} of user {int(users[j])}; a held-out target must not be "
                    "part of the excluded history"
                )
        ts = target_scores[start:stop, None]
        greater = np.count_nonzero(block > ts, axis=1)
        equal = np.count_nonzero(block == ts, axis=1)
        ranks[start:stop] = greater + equal - size_of_group[start:stop]
    ranks += pos_in_group
    return ranks


def top_k(
    scores: ArrayLike,
    k: int,
    exclude: ArrayLike | sp.spmatrix | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.floating]]:
    """Returns each user's ``k`` best non-excluded items, deterministically ordered.

    Items are sorted by score descending with ties broken by lower item index first, exactly as a
    full stable sort would order them. The implementation is O(I) per user: ``np.partition``
    finds the k-th best value, every item at least that good is a candidate, items tied with the
    k-th value are trimmed to the lowest indices that fit, and only the ~k candidates are sorted.
    (Arbitrary choices inside the partition never matter, because only its k-th *value* is used.)

    Args:
        scores: ``(B, I)`` scores (higher = better). Must not contain NaN.
        k: Number of items per user (> 0). If ``k > I`` only ``I`` columns are returned.
        exclude: Optional ``(B, I)`` sparse/dense matrix; non-zero entries are never returned.

    Returns:
        Tuple ``(items, item_scores)`` of shape ``(B, min(k, I))``: int64 item indices and their
        scores (dtype of ``scores``, or float64 for integer input). Slots for which no
        non-excluded item remains hold item ``-1`` and score ``-inf``.

    Raises:
        ValueError: If ``k <= 0``, scores contain NaN or shapes disagree.
    """
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ConfigError(f"k must be a positive int, got {k!r}")
    s = _as_scores(scores)
    n_users, n_items = s.shape
    excl = _as_exclude(exclude, s.shape)
    kk = min(int(k), n_items)
    items_out = np.full((n_users, kk), -1, dtype=np.int64)
    scores_out = np.full((n_users, kk), -np.inf, dtype=s.dtype)
    if kk == 0 or n_users == 0:
        return items_out, scores_out

    chunk = max(1, _CHUNK_CELLS // n_items)
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        nb = stop - start
        neg = -s[start:stop]  # ascending ``neg`` = descending score; a fresh copy
        if excl is not None:
            sub = excl[start:stop]
            r = np.repeat(np.arange(nb), np.diff(sub.indptr))
            neg[r, sub.indices] = np.nan  # NaN sorts after everything and never compares equal
        # Candidates: every item at least as good as the k-th best value. ``np.partition`` of the
        # values (cheaper than argpartition) gives that value; all items tied with it are kept
        # here and trimmed below, so which tied item the partition picked does not matter.
        if kk < n_items:
            kth = np.partition(neg, kk - 1, axis=1)[:, kk - 1]
            mask = neg <= kth[:, None]
            short = np.isnan(kth)  # fewer than kk non-excluded items: take them all
            if np.any(short):
                mask[short] = ~np.isnan(neg[short])
        else:
            kth = np.full(nb, np.nan, dtype=neg.dtype)
            mask = ~np.isnan(neg)
        rows, cols = np.nonzero(mask)  # row-major, so item index ascending within a row
        vals = neg[rows, cols]
        # Boundary ties: keep only the lowest-index items tied with the k-th value, as many as
        # the slots left after the strictly better items.
        tied = vals == kth[rows]
        if np.any(tied):
            need = kk - np.bincount(rows[~tied], minlength=nb)
            tied_at = np.flatnonzero(tied)
            tied_rows = rows[tied_at]
            n_tied = np.bincount(tied_rows, minlength=nb)
            rank_in_row = np.arange(tied_at.size) - (np.cumsum(n_tied) - n_tied)[tied_rows]
            keep = np.ones(rows.size, dtype=bool)
            keep[tied_at] = rank_in_row < need[tied_rows]
            rows, cols, vals = rows[keep], cols[keep], vals[keep]
        order = np.lexsort((cols, vals, rows))  # by row, then score desc, then lower index
        rows, cols = rows[order], cols[order]
        counts = np.bincount(rows, minlength=nb)
        slot = np.arange(rows.size) - (np.cumsum(counts) - counts)[rows]
        items_out[start + rows, slot] = cols
        scores_out[start + rows, slot] = s[start + rows, cols]
    return items_out, scores_out
