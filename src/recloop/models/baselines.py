"""Non-neural baselines: random, popularity, first-order Markov chain, ItemKNN and EASE.

Every strong recommender has to beat these, so they live in one numpy/scipy module (it must
not import torch: ``recloop --help`` and the baselines stay light). All of them score the
whole catalogue for a batch of users; the history-conditioned ones (Markov, ItemKNN, EASE) use
the ``history`` passed to :meth:`~recloop.models.base.Recommender.score`, so at test time they
see the train + validation interactions while their weights come from training only.

References:
    Deshpande and Karypis. 2004. Item-based top-N recommendation algorithms. ACM TOIS 22, 1.
    Rendle, Freudenthaler and Schmidt-Thieme. 2010. Factorizing personalized Markov chains
    for next-basket recommendation. WWW.
    Steck. 2019. Embarrassingly shallow autoencoders for sparse data. WWW.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from recloop.config import option
from recloop.data.dataset import Dataset
from recloop.data.history import History
from recloop.data.ranking import top_k
from recloop.errors import ConfigError
from recloop.models.base import Recommender

#: Dense cells (float32) per chunk of the item-item similarity computation (~64 MB).
_CHUNK_CELLS = 1 << 24


def _require(ok: bool, message: str) -> None:
    """Raise a :class:`ConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def _csr_state(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays for safetensors (no pickle)."""
    return {
        f"{prefix}.indptr": m.indptr.astype(np.int64),
        f"{prefix}.indices": m.indices.astype(np.int64),
        f"{prefix}.data": m.data.astype(np.float32),
    }


def _csr_from_state(prefix: str, state: dict[str, np.ndarray], n: int) -> sp.csr_matrix:
    """The (n, n) CSR matrix stored by :func:`_csr_state`."""
    return sp.csr_matrix(
        (state[f"{prefix}.data"], state[f"{prefix}.indices"], state[f"{prefix}.indptr"]),
        shape=(n, n),
    )


# --------------------------------------------------------------------------- random
@dataclass(frozen=True)
class RandomConfig:
    """Hyper-parameters of :class:`RandomRecommender`."""

    seed: int = option(0, "Seed; scores depend only on (seed, user), not on the batch.")

    def __post_init__(self) -> None:
        _require(self.seed >= 0, f"seed must be >= 0, not {self.seed}")


class RandomRecommender(Recommender):
    """Uniformly random scores: the floor every model must clear.

    User ``u``'s scores are ``default_rng([seed, u]).random(I)``, so they are the same whether
    ``u`` is scored alone or in a batch, and the same on every call.
    """

    name: ClassVar[str] = "random"
    uses_history: ClassVar[bool] = False  # (seed, user) alone
    Config: ClassVar[type] = RandomConfig
    config: RandomConfig

    def _fit(self, dataset: Dataset, progress: bool) -> None:
        pass  # nothing to learn, by design

    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        out = np.empty((len(users), self.n_items_), dtype=np.float32)  # (B, I)
        for b, u in enumerate(users):
            out[b] = np.random.default_rng([self.config.seed, int(u)]).random(
                self.n_items_, dtype=np.float32
            )
        return out


# --------------------------------------------------------------------------- popularity
class Popularity(Recommender):
    """Most popular items: score = number of distinct training users per item.

    The same ranking for every user (with ``exclude_seen`` the user's own items drop out).
    """

    name: ClassVar[str] = "pop"
    uses_history: ClassVar[bool] = False  # one ranking for everyone

    def _fit(self, dataset: Dataset, progress: bool) -> None:
        self.counts_ = dataset.item_user_counts().astype(np.float32)  # (I,)

    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        return np.tile(self.counts_, (len(users), 1))  # (B, I)

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.counts_ = state["counts"].astype(np.float32)


# --------------------------------------------------------------------------- markov
@dataclass(frozen=True)
class MarkovConfig:
    """Hyper-parameters of :class:`Markov`."""

    backoff: float = option(
        1e-3, "Weight of normalised popularity (in [0, 1]) added to the transition scores."
    )

    def __post_init__(self) -> None:
        _require(self.backoff >= 0, f"backoff must be >= 0, not {self.backoff}")


class Markov(Recommender):
    """First-order Markov chain over items: what follows the user's last item?

    ``T[i, j]`` counts how often item ``j`` directly followed item ``i`` in a user's
    chronological training history, row-normalised to transition probabilities (the
    "MC" half of FPMC, Rendle et al., WWW 2010, without factorisation). A user's scores are
    the row of their *last* item in the history given to :meth:`score` (train + valid at
    test time), plus ``backoff`` times popularity scaled to [0, 1], which breaks ties and is
    the whole score for users without history or whose last item was never followed.
    """

    name: ClassVar[str] = "markov"
    uses_history: ClassVar[bool] = True  # the last item of the history
    Config: ClassVar[type] = MarkovConfig
    config: MarkovConfig

    def _fit(self, dataset: Dataset, progress: bool) -> None:
        seq = dataset.sequences
        n = self.n_items_
        owner = np.repeat(np.arange(dataset.n_users), seq.lengths)  # (N,) user of each event
        same = owner[:-1] == owner[1:]  # (N-1,) consecutive events of one user
        src, dst = seq.items[:-1][same], seq.items[1:][same]
        t = sp.csr_matrix((np.ones(len(src), np.float32), (src, dst)), shape=(n, n))
        t.sum_duplicates()
        out_deg = np.asarray(t.sum(axis=1)).ravel()  # (I,)
        t = sp.csr_matrix(sp.diags(1.0 / np.maximum(out_deg, 1.0)) @ t, dtype=np.float32)
        self.transitions_ = t  # (I, I) row-stochastic where the row has any transition
        pop = dataset.item_user_counts().astype(np.float32)
        self.popularity_ = pop / max(float(pop.max()), 1.0)  # (I,) in [0, 1]

    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        last = history.last(users)  # (B,), -1 without history
        out = np.tile(np.float32(self.config.backoff) * self.popularity_, (len(users), 1))
        has = last >= 0
        if has.any():
            out[has] += self.transitions_[last[has]].toarray()
        return out  # (B, I)

    def _state(self) -> dict[str, np.ndarray]:
        return {**_csr_state("transitions", self.transitions_), "popularity": self.popularity_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.transitions_ = _csr_from_state("transitions", state, self.n_items_)
        self.popularity_ = state["popularity"].astype(np.float32)


# --------------------------------------------------------------------------- itemknn
@dataclass(frozen=True)
class ItemKNNConfig:
    """Hyper-parameters of :class:`ItemKNN`."""

    neighbours: int = option(100, "Most similar items kept per item (the k of k-NN).")
    shrink: float = option(10.0, "Shrinkage added to the cosine denominator; damps rare items.")

    def __post_init__(self) -> None:
        _require(self.neighbours >= 1, f"neighbours must be >= 1, not {self.neighbours}")
        _require(self.shrink >= 0, f"shrink must be >= 0, not {self.shrink}")


class ItemKNN(Recommender):
    """Item-based k-nearest-neighbour collaborative filtering (Deshpande & Karypis, TOIS 2004).

    With binary user-item matrix ``X`` and item columns ``x_i``,
    ``sim(i, j) = x_i·x_j / (‖x_i‖ ‖x_j‖ + shrink)`` and ``sim(i, i) = 0``. Row ``i`` of the
    sparse matrix ``S`` keeps item ``i``'s ``neighbours`` most similar items; a user's
    scores are ``x_u @ S``, the summed similarity of each item to the user's history.
    """

    name: ClassVar[str] = "itemknn"
    uses_history: ClassVar[bool] = True  # x_u of the history
    Config: ClassVar[type] = ItemKNNConfig
    config: ItemKNNConfig

    def _fit(self, dataset: Dataset, progress: bool) -> None:
        x = dataset.user_item_matrix()  # (U, I) binary
        xt = x.T.tocsr()  # (I, U)
        n = self.n_items_
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel()).astype(np.float32)  # (I,)
        k = min(self.config.neighbours, n - 1)
        rows, cols, vals = [], [], []
        if k > 0:
            step = max(1, _CHUNK_CELLS // n)
            for s in range(0, n, step):
                e = min(s + step, n)
                sim = (xt[s:e] @ x).toarray()  # (C, I) co-occurrence counts
                denom = norms[s:e, None] * norms[None, :] + np.float32(self.config.shrink)
                denom[denom == 0] = 1.0  # items nobody interacted with (co-counts are 0 too)
                sim /= denom
                sim[np.arange(e - s), np.arange(s, e)] = 0.0  # no self-similarity
                # ties to the lower item index, on any CPU (argpartition's choice among
                # tied similarities depends on the SIMD sort numpy picks for the CPU)
                top, val = top_k(sim, k)  # (C, k)
                keep = val > 0  # zero similarity is no neighbour (keeps S sparse)
                rows.append(np.broadcast_to(np.arange(s, e)[:, None], top.shape)[keep])
                cols.append(top[keep])
                vals.append(val[keep])
        if rows:
            r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        else:
            r = c = np.zeros(0, np.int64)
            v = np.zeros(0, np.float32)
        self.similarity_ = sp.csr_matrix((v.astype(np.float32), (r, c)), shape=(n, n))  # (I, I)

    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        return np.asarray((history.rows(users) @ self.similarity_).toarray(), np.float32)

    def history_item_rows(self, items: np.ndarray) -> np.ndarray:
        """(n, I) rows of the item-item similarity: the score is ``x_u @ S``."""
        return np.asarray(self.similarity_[items].toarray())

    def _state(self) -> dict[str, np.ndarray]:
        return _csr_state("similarity", self.similarity_)

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.similarity_ = _csr_from_state("similarity", state, self.n_items_)


# --------------------------------------------------------------------------- EASE
@dataclass(frozen=True)
class EASEConfig:
    """Hyper-parameters of :class:`EASE`."""

    l2: float = option(500.0, "L2 penalty λ on the item-item weights (Steck: 100-1000 on ML).")

    def __post_init__(self) -> None:
        _require(self.l2 >= 0, f"l2 must be >= 0, not {self.l2}")


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder (Steck, WWW 2019).

    Closed form of ``min_B ‖X − XB‖² + λ‖B‖²`` subject to ``diag(B) = 0``:
    ``G = XᵀX + λI``, ``P = G⁻¹``, ``B_ij = −P_ij / P_jj`` for ``i ≠ j`` and ``B_ii = 0``.
    A user's scores are ``x_u @ B`` over the history given to :meth:`score`. The inverse is
    taken in float64 (Cholesky); ``B`` is dense (I, I) float32, so this suits catalogues up to
    a few tens of thousands of items.
    """

    name: ClassVar[str] = "ease"
    uses_history: ClassVar[bool] = True  # x_u of the history
    Config: ClassVar[type] = EASEConfig
    config: EASEConfig

    def _fit(self, dataset: Dataset, progress: bool) -> None:
        x = dataset.user_item_matrix()  # (U, I) binary
        g = (x.T @ x).toarray().astype(np.float64)  # (I, I) Gram matrix
        g[np.diag_indices_from(g)] += self.config.l2
        # G is symmetric positive (semi-)definite: Cholesky + triangular inverse halve the work.
        scale = float(np.diag(g).max())
        c, info = lapack.dpotrf(g, lower=False, overwrite_a=True)
        # A pivot this small means G is singular to working precision (dpotrf may not notice).
        if info == 0 and float(np.diag(c).min()) ** 2 > len(c) * np.finfo(np.float64).eps * scale:
            p, info = lapack.dpotri(c, lower=False, overwrite_c=True)
        else:
            info = max(info, 1)
        if info != 0:
            raise ConfigError(
                f"EASE: XᵀX + {self.config.l2}·I is singular (items without interactions?); "
                "use a positive l2"
            )
        p = np.triu(p) + np.triu(p, 1).T  # dpotri fills the upper triangle only
        b = -p / np.diag(p)[None, :]  # column-wise: B_ij = -P_ij / P_jj
        b[np.diag_indices_from(b)] = 0.0
        self.weights_ = b.astype(np.float32)  # (I, I)

    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        return np.asarray(history.rows(users) @ self.weights_, dtype=np.float32)  # (B, I)

    def history_item_rows(self, items: np.ndarray) -> np.ndarray:
        """(n, I) rows of EASE's item-item weights: the score is ``x_u @ B``."""
        return np.asarray(self.weights_[items])

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights_ = state["weights"].astype(np.float32)
