"""What a model may condition on: users' known interactions, chronological, as CSR arrays."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from recloop.data.dataset import Dataset


@dataclass(frozen=True)
class History:
    """Users' known interactions, chronological, CSR-style (what a model may condition on).

    ``items[indptr[u]:indptr[u + 1]]`` is user ``u``'s history, oldest first.
    """

    indptr: np.ndarray  # (U + 1,) int64
    items: np.ndarray  # (N,) int64
    n_items: int

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> History:
        """The chronological histories of every user in ``dataset``."""
        seq = dataset.sequences
        return cls(seq.indptr, seq.items, dataset.n_items)

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @cached_property
    def matrix(self) -> sp.csr_matrix:
        """Binary (U, I) matrix of known interactions."""
        lengths = np.diff(self.indptr)
        users = np.repeat(np.arange(self.n_users), lengths)
        m = sp.csr_matrix(
            (np.ones(len(self.items), np.float32), (users, self.items)),
            shape=(self.n_users, self.n_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def rows(self, users: np.ndarray) -> sp.csr_matrix:
        """(B, I) binary rows of the given users."""
        return self.matrix[users]

    def last(self, users: np.ndarray) -> np.ndarray:
        """(B,) each user's most recent item, ``-1`` for users without history."""
        start, end = self.indptr[users], self.indptr[users + 1]
        out = np.full(len(users), -1, dtype=np.int64)
        has = end > start
        out[has] = self.items[end[has] - 1]
        return out
