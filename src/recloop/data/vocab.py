"""External ids ↔ contiguous indices.

Every matrix in recloop is users × items over contiguous indices ``0..n-1``. A
:class:`Vocabulary` holds the external ids (what the user's data calls them) in index order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recloop.errors import DataError, UnknownIdError


class Vocabulary:
    """A bijection between external ids and indices ``0..len-1``.

    Ids are either all integers (stored as ``int64``) or all strings. Lookups coerce the
    query to the vocabulary's type, so ``"196"`` finds the integer id ``196``.

    Args:
        ids: the external ids, in index order; must be unique.
        name: what the ids are ("user", "item"); used in error messages.

    Example:
        >>> v = Vocabulary([10, 20, 30], name="item")
        >>> v.index([30, "10"]).tolist()
        [2, 0]
        >>> v.ids([1]).tolist()
        [20]
    """

    def __init__(self, ids: Iterable[Any], name: str = "id") -> None:
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray | pd.Index) else ids)
        arr = arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(str).astype(object)
        self.name = name
        self._ids = arr
        self._ids.setflags(write=False)
        self._index = pd.Index(arr)
        if not self._index.is_unique:
            dup = self._index[self._index.duplicated()][:3].tolist()
            raise DataError(f"{name} ids are not unique (e.g. {dup}); each id must appear once")

    @property
    def is_integer(self) -> bool:
        """True when the external ids are integers."""
        return self._ids.dtype.kind == "i"

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocabulary)
            and len(self) == len(other)
            and bool(np.all(self._ids == other._ids))
        )

    def __hash__(self) -> int:
        return hash((self.name, len(self)))

    def __repr__(self) -> str:
        head = ", ".join(map(str, self._ids[:3]))
        return f"Vocabulary({self.name}, n={len(self)}, ids=[{head}{', ...' if len(self) > 3 else ''}])"

    @property
    def all_ids(self) -> np.ndarray:
        """All external ids, in index order (read-only)."""
        return self._ids

    def _coerce(self, ids: Sequence[Any] | np.ndarray) -> np.ndarray:
        arr = np.asarray(ids)
        if self.is_integer:
            if arr.dtype.kind in "iu":
                return arr.astype(np.int64)
            out = np.empty(arr.shape, dtype=np.int64)
            for i, x in enumerate(arr.ravel()):
                try:
                    out.flat[i] = int(str(x))
                except ValueError:
                    out.flat[i] = -(2**62)  # never a valid id: reported as unknown below
            return out
        return arr.astype(str).astype(object)

    def index(self, ids: Sequence[Any] | np.ndarray, missing: str = "error") -> np.ndarray:
        """Indices of the given external ids.

        Args:
            ids: external ids (any array-like).
            missing: ``"error"`` raises :class:`UnknownIdError` naming the unknown ids;
                ``"negative"`` returns ``-1`` for them.

        Returns:
            ``int64`` indices, same shape as ``ids``.
        """
        raw = np.asarray(ids)
        query = self._coerce(raw)
        idx = self._index.get_indexer(query.ravel()).reshape(query.shape).astype(np.int64)
        if missing == "error" and (idx < 0).any():
            bad = raw.ravel()[(idx < 0).ravel()][:5].tolist()
            raise UnknownIdError(
                f"unknown {self.name} id(s) {bad}: not in this dataset's {len(self)} {self.name}s "
                f"(known ids look like {self._ids[:3].tolist()}; "
                f"`recloop data info` lists the dataset)"
            )
        return idx

    def ids(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """External ids of the given indices (``-1`` is not allowed)."""
        idx = np.asarray(indices, dtype=np.int64)
        bad = (idx < 0) | (idx >= len(self))
        if bad.any():
            raise UnknownIdError(
                f"{self.name} index {idx[bad][:5].tolist()} out of range 0..{len(self) - 1}"
            )
        return self._ids[idx]
