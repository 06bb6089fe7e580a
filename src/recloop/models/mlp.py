"""The MLP tower: NCF-MLP (He, Liao, Zhang, Nie, Hu and Chua. Neural Collaborative
Filtering. WWW 2017).

User and item embeddings are concatenated and fed through a ReLU tower; a final linear
unit gives the logit of P(interaction | user, item). Training is binary cross-entropy on
each observed (user, item) pair against ``negatives`` items drawn uniformly from those the
user has not interacted with (fresh draws every epoch).

Scoring all items would cost ``B × I`` passes through the tower; the first layer is split
instead (``W [p_u; q_i] = W_u p_u + W_i q_i``), so only the narrower layers run per pair.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recloop.config import option
from recloop.data.dataset import Dataset
from recloop.data.history import History
from recloop.models.bpr import _sample_negatives
from recloop.models.items import ItemConfig, ItemTable, TextFeatures
from recloop.models.neural import TorchRecommender

#: Cells of the (users × items × first width) activation block scored at once.
_SCORE_CELLS = 1 << 24


@dataclass(frozen=True)
class MLPConfig(ItemConfig):
    """Hyper-parameters of :class:`MLPTower` (training options first)."""

    dim: int = option(64, "User and item embedding dimension.")
    widths: tuple[int, ...] = option((256, 128, 64), "ReLU tower widths (the seed: 1024,512,256).")
    negatives: int = option(4, "Sampled negatives per observed pair (NCF uses 4).")
    dropout: float = option(0.0, "Dropout after each hidden layer.")
    batch_size: int = option(1024, "Observed pairs per AdamW step (each with its negatives).")
    epochs: int = option(50, "Maximum passes over the observed pairs.")
    patience: int = option(3, "Stop after this many epochs without a better valid NDCG@10.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(
            (self.dim >= 1, f"dim must be >= 1, not {self.dim}"),
            (len(self.widths) >= 1 and min(self.widths) >= 1,
             f"widths must be one or more positive integers, not {self.widths}"),
            (self.negatives >= 1, f"negatives must be >= 1, not {self.negatives}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), not {self.dropout}"),
        )  # fmt: skip


class _Tower(nn.Module):
    def __init__(self, n_users: int, items: Callable[[], ItemTable], cfg: MLPConfig) -> None:
        super().__init__()
        self.dim = cfg.dim
        self.user = nn.Embedding(n_users, cfg.dim)
        self.items = items()  # built uninitialised; drawn after the users, as always
        nn.init.normal_(self.user.weight, std=0.05)
        self.items.init_()
        self.first = nn.Linear(2 * cfg.dim, cfg.widths[0])
        widths = list(cfg.widths)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], 1)
        self.drop = nn.Dropout(cfg.dropout)

    def _rest(self, h: torch.Tensor) -> torch.Tensor:
        """First-layer pre-activations (..., w0) → logits (...)."""
        h = self.drop(F.relu(h))
        for layer in self.hidden:
            h = self.drop(F.relu(layer(h)))
        return self.out(h).squeeze(-1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(N,) users, (N,) items → (N,) logits."""
        x = torch.cat([self.user(users), self.items.rows(items)], dim=-1)
        return self._rest(self.first(x))

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) users → (B, I) logits of every item, with the first layer split in two."""
        w_user, w_item = self.first.weight[:, : self.dim], self.first.weight[:, self.dim :]
        a = self.user(users) @ w_user.T + self.first.bias  # (B, w0)
        c = self.items.weight() @ w_item.T  # (I, w0)
        step = max(1, _SCORE_CELLS // max(1, a.shape[0] * a.shape[1]))
        parts = [
            self._rest(a[:, None, :] + c[None, s : s + step, :]) for s in range(0, len(c), step)
        ]
        return torch.cat(parts, dim=1)


class MLPTower(TextFeatures, TorchRecommender):
    """NCF-MLP tower: user and item embeddings through ReLU layers, trained with BCE.

    Scores ignore the ``history`` argument: the user embedding summarises the training
    history (as in BPR-MF).
    """

    name: ClassVar[str] = "mlp"
    uses_history: ClassVar[bool] = False  # the user embedding (see above)
    Config: ClassVar[type] = MLPConfig
    config: MLPConfig
    module_: _Tower

    def _build(self) -> _Tower:
        items = partial(self._item_table, self.config.dim, std=0.05, init=False)
        return _Tower(self.n_users_, items, self.config)

    def _prepare(self, dataset: Dataset) -> None:
        x = dataset.user_item_matrix()  # (U, I) binary: repeats count once
        counts = np.diff(x.indptr)
        users = np.repeat(np.arange(self.n_users_, dtype=np.int64), counts)
        items = x.indices.astype(np.int64)
        # With text, negatives come from the catalogue seen in training (see SequentialRecommender)
        seen = np.flatnonzero(np.bincount(items, minlength=self.n_items_) > 0)
        self._pool = seen if self.config.uses_text and len(seen) < self.n_items_ else None
        n_pool = self.n_items_ if self._pool is None else len(self._pool)
        keep = counts[users] < n_pool  # users who saw the whole pool have no negative
        self._pairs_u, self._pairs_i = users[keep], items[keep]
        self._pos_keys = np.sort(self._pairs_u * self.n_items_ + self._pairs_i)

    def _release(self) -> None:
        for name in ("_pairs_u", "_pairs_i", "_pos_keys", "_pool"):
            self.__dict__.pop(name, None)

    def _plan(self, rng: np.random.Generator) -> Sequence[tuple[torch.Tensor, ...]]:
        cfg = self.config
        n, k = len(self._pairs_u), cfg.negatives
        order = rng.permutation(n)
        u, i = self._pairs_u[order], self._pairs_i[order]
        neg = _sample_negatives(np.repeat(u, k), self._pos_keys, self.n_items_, rng, self._pool)
        neg = neg.reshape(n, k)
        u_t, i_t, n_t = torch.from_numpy(u), torch.from_numpy(i), torch.from_numpy(neg)
        return [(u_t[s : s + cfg.batch_size], i_t[s : s + cfg.batch_size],
                 n_t[s : s + cfg.batch_size]) for s in range(0, n, cfg.batch_size)]  # fmt: skip

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        u, i, neg = batch  # (B,), (B,), (B, k)
        k = neg.shape[1]
        users = torch.cat([u, u.repeat_interleave(k)])
        items = torch.cat([i, neg.reshape(-1)])
        labels = torch.cat([torch.ones(len(u)), torch.zeros(len(u) * k)])
        return F.binary_cross_entropy_with_logits(self.module_(users, items), labels)

    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        self.module_.eval()
        with torch.inference_mode():
            parts = [self.module_.score_all(torch.from_numpy(users[s : s + 256])).numpy()
                     for s in range(0, len(users), 256)]  # fmt: skip
        return np.concatenate(parts) if parts else np.zeros((0, self.n_items_), np.float32)
