"""The one data object every recloop model, buffer, simulator and estimator reads.

A :class:`Dataset` holds interactions over contiguous user and item indices, the two
vocabularies that map them back to external ids, and optional side information. It is never
mutated: filtering and splitting return new datasets that share the vocabularies.

The module is one concept over ~470 lines: the :class:`Dataset`, the views derived from it
(sequences, user-item matrices, genres, titles, filters) and the column checks its
constructor runs; the loaders are in :mod:`recloop.data.sources`, the splits in
:mod:`recloop.data.split`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recloop.data.vocab import Vocabulary
from recloop.errors import DataError

#: Canonical column names of :attr:`Dataset.interactions`.
COLUMNS = ("user", "item", "timestamp", "rating")


@dataclass(frozen=True)
class Sequences:
    """Every user's interactions in chronological order, CSR-style.

    User ``u``'s history is ``items[indptr[u]:indptr[u + 1]]`` (oldest first); the same slice
    of ``ratings``/``timestamps`` gives its ratings and times. Ties in time keep the source's
    row order (see :meth:`Dataset.chronological_order`).
    """

    indptr: np.ndarray  # (U + 1,) int64
    items: np.ndarray  # (N,) int64
    ratings: np.ndarray  # (N,) float32
    timestamps: np.ndarray  # (N,) int64

    def of(self, user: int) -> np.ndarray:
        """The item indices of one user's history, oldest first."""
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    @property
    def lengths(self) -> np.ndarray:
        """(U,) history length of every user."""
        return np.diff(self.indptr)


class Dataset:
    """Interactions, vocabularies and side information.

    Build one with :meth:`from_frame` (validating external data) or a loader such as
    :func:`recloop.data.load_dataset`.

    Attributes:
        name: a short name used in results ("ml-100k").
        users: the user :class:`Vocabulary`.
        items: the item :class:`Vocabulary`.
        interactions: a DataFrame with int64 ``user``/``item`` indices, int64 ``timestamp``
            (Unix seconds) and float32 ``rating``, in the *source's* row order.
        item_info: a DataFrame indexed by item index with ``title``, ``year`` and ``genres``
            (a tuple of strings), or ``None``.
        user_info: a DataFrame indexed by user index (columns depend on the source), or
            ``None``.
    """

    def __init__(
        self,
        interactions: pd.DataFrame,
        users: Vocabulary,
        items: Vocabulary,
        item_info: pd.DataFrame | None = None,
        user_info: pd.DataFrame | None = None,
        name: str = "dataset",
    ) -> None:
        missing = [c for c in COLUMNS if c not in interactions.columns]
        if missing:
            raise DataError(f"interactions lack columns {missing}; use Dataset.from_frame")
        self.interactions = interactions.loc[:, list(COLUMNS)].reset_index(drop=True)
        self.users = users
        self.items = items
        self.item_info = item_info
        self.user_info = user_info
        self.name = name

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        columns: Mapping[str, str] | None = None,
        *,
        item_info: pd.DataFrame | None = None,
        user_info: pd.DataFrame | None = None,
        name: str = "dataset",
        on_duplicate: str = "error",
        source: str = "the data",
    ) -> Dataset:
        """Validate a table of interactions with external ids and build a dataset.

        Args:
            frame: one row per interaction.
            columns: maps recloop's names (``user``, ``item``, ``timestamp``, ``rating``) to
                the frame's column names. ``rating`` may map to ``None`` for implicit
                feedback (every rating becomes 1.0); a missing ``timestamp`` uses row order.
            item_info: optional, indexed by external item id: ``title``, ``year``,
                ``genres`` (tuple of strings or a ``|``-separated string).
            user_info: optional, indexed by external user id.
            name: dataset name.
            on_duplicate: what to do with rows repeating the same (user, item, timestamp):
                ``"error"`` (default), ``"first"`` or ``"last"`` to keep one of them.
            source: how to name the input in error messages (a file path, say).

        Raises:
            DataError: empty input, missing columns, NaN or non-numeric ratings or
                timestamps, missing ids, or duplicates when ``on_duplicate="error"``.
        """
        mapping = {"user": "user", "item": "item", "timestamp": "timestamp", "rating": "rating"}
        mapping.update(columns or {})
        if frame is None or len(frame) == 0:
            raise DataError(f"{source} is empty: it holds no interactions")
        required = [mapping["user"], mapping["item"]]
        optional = [mapping[c] for c in ("timestamp", "rating") if mapping[c] is not None]
        absent = [c for c in [*required, *optional] if c not in frame.columns]
        if absent:
            raise DataError(
                f"{source} lacks column(s) {absent}; it has {list(frame.columns)}. "
                "Map your column names, e.g. columns={'user': 'userId', 'item': 'movieId', "
                "'rating': 'rating', 'timestamp': 'ts'} (CLI: --columns user=userId,item=movieId,rating=rating,timestamp=ts)"
            )
        out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
        for key in ("user", "item"):
            col = frame[mapping[key]]
            if col.isna().any():
                rows = np.flatnonzero(col.isna().to_numpy())[:5].tolist()
                raise DataError(
                    f"{source}: column '{mapping[key]}' has missing {key} ids at rows {rows}"
                )
            out[key] = col.to_numpy()
        out["timestamp"] = (
            _numeric_column(frame[mapping["timestamp"]], mapping["timestamp"], source, time=True)
            if mapping["timestamp"] is not None
            else np.arange(len(frame), dtype=np.int64)
        )
        out["rating"] = (
            _numeric_column(frame[mapping["rating"]], mapping["rating"], source).astype(np.float32)
            if mapping["rating"] is not None
            else np.float32(1.0)
        )
        dup = out.duplicated(["user", "item", "timestamp"], keep=False)
        if dup.any():
            if on_duplicate == "error":
                rows = np.flatnonzero(dup.to_numpy())[:4].tolist()
                raise DataError(
                    f"{source} has {int(dup.sum())} duplicate rows (same user, item and timestamp), "
                    f"e.g. rows {rows}; remove them or pass on_duplicate='first'/'last' "
                    "in Python (the CLI reads files as they are)"
                )
            if on_duplicate not in ("first", "last"):
                raise DataError(
                    f"on_duplicate must be 'error', 'first' or 'last', not {on_duplicate!r}"
                )
            out = out[
                ~out.duplicated(
                    ["user", "item", "timestamp"],
                    keep="first" if on_duplicate == "first" else "last",
                )
            ]

        # Sorted ids give a stable, readable index order (user 1 → index 0 on MovieLens).
        users = Vocabulary(_sorted_unique(out["user"]), name="user")
        items = Vocabulary(_sorted_unique(out["item"]), name="item")
        inter = pd.DataFrame(
            {
                "user": users.index(out["user"].to_numpy()),
                "item": items.index(out["item"].to_numpy()),
                "timestamp": out["timestamp"].to_numpy(np.int64),
                "rating": out["rating"].to_numpy(np.float32),
            }
        )
        return cls(
            inter,
            users,
            items,
            item_info=_align_info(item_info, items, items_side=True),
            user_info=_align_info(user_info, users, items_side=False),
            name=name,
        )

    # ----------------------------------------------------------------- basic facts
    @property
    def n_users(self) -> int:
        """Number of users in the vocabulary."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of items in the vocabulary."""
        return len(self.items)

    def __len__(self) -> int:
        return len(self.interactions)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}: {self.n_users} users, {self.n_items} items, "
            f"{len(self)} interactions)"
        )

    def stats(self) -> dict[str, Any]:
        """Summary statistics (counts, density, history lengths, ratings, time span)."""
        inter = self.interactions
        per_user = np.bincount(inter["user"].to_numpy(), minlength=self.n_users)
        per_item = np.bincount(inter["item"].to_numpy(), minlength=self.n_items)
        ts = inter["timestamp"].to_numpy()
        ratings = inter["rating"]
        return {
            "name": self.name,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": len(inter),
            "density": len(inter) / max(1, self.n_users * self.n_items),
            "interactions_per_user_mean": float(per_user.mean()) if len(per_user) else 0.0,
            "interactions_per_user_median": float(np.median(per_user)) if len(per_user) else 0.0,
            "interactions_per_user_min": int(per_user.min()) if len(per_user) else 0,
            "interactions_per_item_mean": float(per_item.mean()) if len(per_item) else 0.0,
            "items_without_interactions": int((per_item == 0).sum()),
            "rating_mean": float(ratings.mean()) if len(inter) else float("nan"),
            "rating_values": {
                float(str(k)): int(v) for k, v in ratings.value_counts().sort_index().items()
            }
            if ratings.nunique() <= 20
            else None,
            "positive_share": float((ratings >= 4).mean()) if len(inter) else float("nan"),
            "time_first": int(ts.min()) if len(ts) else None,
            "time_last": int(ts.max()) if len(ts) else None,
            "has_item_info": self.item_info is not None,
            "has_user_info": self.user_info is not None,
        }

    # ----------------------------------------------------------------- derived views
    @cached_property
    def chronological_order(self) -> np.ndarray:
        """Row positions sorted by user, then timestamp, then source row order.

        This is recloop's one tie rule: interactions with equal timestamps keep the order in
        which the source listed them (a stable sort). On ML-100K, 415 of 943 users rated their
        last two movies in the same second, so the rule decides which one is "last".
        """
        inter = self.interactions
        rows = np.arange(len(inter))
        return np.lexsort((rows, inter["timestamp"].to_numpy(), inter["user"].to_numpy()))

    @cached_property
    def sequences(self) -> Sequences:
        """Every user's history in chronological order (see :class:`Sequences`)."""
        order = self.chronological_order
        inter = self.interactions
        counts = np.bincount(inter["user"].to_numpy(), minlength=self.n_users)
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return Sequences(
            indptr=indptr,
            items=inter["item"].to_numpy(np.int64)[order],
            ratings=inter["rating"].to_numpy(np.float32)[order],
            timestamps=inter["timestamp"].to_numpy(np.int64)[order],
        )

    def user_item_matrix(self, weights: str = "binary") -> sp.csr_matrix:
        """The (U, I) interaction matrix.

        Args:
            weights: ``"binary"`` (1 for every interacted pair, repeats collapsed),
                ``"count"`` (number of interactions) or ``"rating"`` (the latest rating).
        """
        inter = self.interactions
        u = inter["user"].to_numpy()
        i = inter["item"].to_numpy()
        shape = (self.n_users, self.n_items)
        if weights == "rating":
            order = self.chronological_order  # duplicates: the latest rating wins
            last = pd.DataFrame(
                {"u": u[order], "i": i[order], "r": inter["rating"].to_numpy()[order]}
            )
            last = last.drop_duplicates(["u", "i"], keep="last")
            return sp.csr_matrix(
                (last["r"].to_numpy(np.float32), (last["u"], last["i"])), shape=shape
            )
        m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=shape)
        m.sum_duplicates()
        if weights == "binary":
            m.data[:] = 1.0
        elif weights != "count":
            raise DataError(f"weights must be 'binary', 'count' or 'rating', not {weights!r}")
        return m

    def item_user_counts(self) -> np.ndarray:
        """(I,) number of distinct users who interacted with each item."""
        return np.asarray(self.user_item_matrix().sum(axis=0)).ravel().astype(np.int64)

    def genre_matrix(self) -> tuple[np.ndarray, list[str]]:
        """A binary (I, G) item × genre matrix and the genre names (empty without genres)."""
        if self.item_info is None or "genres" not in self.item_info:
            return np.zeros((self.n_items, 0), dtype=np.float32), []
        genres = self.item_info["genres"]
        names = sorted({g for gs in genres for g in gs})
        col = {g: j for j, g in enumerate(names)}
        m = np.zeros((self.n_items, len(names)), dtype=np.float32)
        for i, gs in enumerate(genres):
            for g in gs:
                m[i, col[g]] = 1.0
        return m, names

    def titles(self, items: np.ndarray) -> list[str]:
        """Human-readable titles of item indices (the external id when no title is known)."""
        ids = self.items.ids(items)
        if self.item_info is None or "title" not in self.item_info:
            return [str(x) for x in ids]
        t = self.item_info["title"].to_numpy()[np.asarray(items)]
        y = (
            self.item_info["year"].to_numpy()[np.asarray(items)]
            if "year" in self.item_info
            else None
        )
        out = []
        for k, title in enumerate(t):
            year = None if y is None or pd.isna(y[k]) else int(y[k])
            out.append(f"{title} ({year})" if year else str(title))
        return out

    # ----------------------------------------------------------------- new datasets
    def with_interactions(self, interactions: pd.DataFrame, name: str | None = None) -> Dataset:
        """A dataset with other interactions over the *same* vocabularies and side info."""
        return Dataset(
            interactions,
            self.users,
            self.items,
            item_info=self.item_info,
            user_info=self.user_info,
            name=name or self.name,
        )

    def before(self, cut: int) -> Dataset:
        """The past of a time cut: the interactions with a timestamp before ``cut`` (same
        vocabularies and side info; row order kept)."""
        inter = self.interactions
        return self.with_interactions(
            inter[inter["timestamp"].to_numpy() < cut].reset_index(drop=True)
        )

    def kcore(self, min_user: int = 5, min_item: int = 5) -> Dataset:
        """Iteratively drop users and items with too few interactions (k-core filtering).

        Repeats until every user has at least ``min_user`` and every item at least
        ``min_item`` interactions, then rebuilds contiguous vocabularies (ids are kept).
        Useful for noisy logs; MovieLens needs none (every user already has ≥ 20 ratings).

        Raises:
            DataError: nothing survives the filter.
        """
        inter = self.interactions
        while True:
            uc = inter["user"].map(inter["user"].value_counts())
            ic = inter["item"].map(inter["item"].value_counts())
            keep = (uc >= min_user) & (ic >= min_item)
            if keep.all():
                break
            inter = inter[keep]
        if len(inter) == 0:
            raise DataError(
                f"k-core filtering (min_user={min_user}, min_item={min_item}) removed every "
                "interaction; lower the thresholds"
            )
        frame = pd.DataFrame(
            {
                "user": self.users.ids(inter["user"].to_numpy()),
                "item": self.items.ids(inter["item"].to_numpy()),
                "timestamp": inter["timestamp"].to_numpy(),
                "rating": inter["rating"].to_numpy(),
            }
        )
        item_info = user_info = None
        if self.item_info is not None:
            item_info = self.item_info.set_axis(self.items.all_ids)
        if self.user_info is not None:
            user_info = self.user_info.set_axis(self.users.all_ids)
        return Dataset.from_frame(
            frame,
            item_info=item_info,
            user_info=user_info,
            name=f"{self.name}-core{min_user}x{min_item}",
        )


def _sorted_unique(col: pd.Series) -> np.ndarray:
    uniq = pd.unique(col.to_numpy())
    try:
        return np.sort(uniq)
    except TypeError:  # mixed types: order by their text
        return np.asarray(sorted(uniq, key=str), dtype=object)


def _numeric_column(col: pd.Series, name: str, source: str, time: bool = False) -> np.ndarray:
    """Convert a rating/timestamp column to numbers, or raise a one-line DataError."""
    if time and pd.api.types.is_datetime64_any_dtype(col):
        return (col.astype("datetime64[s]").astype(np.int64)).to_numpy()
    values = pd.to_numeric(col, errors="coerce")
    if time and values.isna().any() and not col.isna().any():
        parsed = pd.to_datetime(col, errors="coerce", format="ISO8601", utc=True)
        if not parsed.isna().any():
            return (parsed.dt.tz_localize(None).astype("datetime64[s]").astype(np.int64)).to_numpy()
    bad = values.isna().to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        example = col.iloc[rows[0]]
        what = "missing (NaN)" if pd.isna(example) else f"non-numeric (e.g. {example!r})"
        hint = "Unix seconds or ISO-8601 dates" if time else "numbers"
        raise DataError(
            f"{source}: column '{name}' has {int(bad.sum())} {what} values at rows {rows}; "
            f"it must hold {hint}. Fix or drop those rows"
        )
    arr = values.to_numpy(dtype=np.float64)
    if not np.isfinite(arr).all():
        rows = np.flatnonzero(~np.isfinite(arr))[:5].tolist()
        raise DataError(f"{source}: column '{name}' has infinite values at rows {rows}")
    return arr.astype(np.int64) if time else arr


def _align_info(
    info: pd.DataFrame | None, vocab: Vocabulary, items_side: bool
) -> pd.DataFrame | None:
    """Reindex side information by vocabulary order (missing entries become empty)."""
    if info is None:
        return None
    info = info.copy()
    if vocab.is_integer and info.index.dtype.kind not in "iu":
        info.index = pd.Index(pd.to_numeric(info.index.to_numpy(), errors="coerce"))
    elif not vocab.is_integer:
        info.index = info.index.astype(str)
    info = info[~info.index.duplicated()]
    aligned = info.reindex(pd.Index(vocab.all_ids)).reset_index(drop=True)
    if items_side:
        if "title" not in aligned:
            aligned["title"] = [str(x) for x in vocab.all_ids]
        aligned["title"] = aligned["title"].where(
            aligned["title"].notna(), pd.Series(vocab.all_ids).astype(str)
        )
        if "year" not in aligned:
            aligned["year"] = np.nan
        if "genres" not in aligned:
            aligned["genres"] = [() for _ in range(len(aligned))]
        aligned["genres"] = [_as_genres(g) for g in aligned["genres"]]
    return aligned


_NO_GENRE = frozenset({"(no genres listed)", "unknown"})  # MovieLens placeholders


def _as_genres(value: Any) -> tuple[str, ...]:
    if isinstance(value, tuple | list | np.ndarray):
        return tuple(str(v) for v in value if str(v))
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    text = str(value).strip()
    if text in _NO_GENRE:
        return ()
    parts = text.split("|") if "|" in text else text.split()
    return tuple(p for p in parts if p and p not in _NO_GENRE)
