"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking.

Rendle, Freudenthaler, Gantner and Schmidt-Thieme. 2009. BPR: Bayesian personalized ranking
from implicit feedback. UAI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from recloop.config import option
from recloop.data.dataset import Dataset
from recloop.data.history import History
from recloop.errors import ConfigError
from recloop.models.base import Recommender
from recloop.progress import progress_bar


@dataclass(frozen=True)
class BPRConfig:
    """Hyper-parameters of :class:`BPRMF`."""

    factors: int = option(64, "Dimension of the user and item embeddings.")
    epochs: int = option(20, "Passes over the training interactions.")
    lr: float = option(5e-3, "Adam learning rate.")
    reg: float = option(1e-4, "L2 penalty on the embeddings and biases used in each triple.")
    batch_size: int = option(2048, "(user, positive, negative) triples per Adam step.")
    init_std: float = option(0.1, "Standard deviation of the normal initial embeddings.")
    seed: int = option(0, "Seed of the initialisation and the negative sampling.")

    def __post_init__(self) -> None:
        checks = [
            (self.factors >= 1, f"factors must be >= 1, not {self.factors}"),
            (self.epochs >= 1, f"epochs must be >= 1, not {self.epochs}"),
            (self.lr > 0, f"lr must be > 0, not {self.lr}"),
            (self.reg >= 0, f"reg must be >= 0, not {self.reg}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, not {self.batch_size}"),
            (self.init_std > 0, f"init_std must be > 0, not {self.init_std}"),
            (self.seed >= 0, f"seed must be >= 0, not {self.seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


class BPRMF(Recommender):
    """Matrix factorisation with the BPR pairwise loss (Rendle et al., UAI 2009).

    ``x_ui = p_u · q_i + b_i``. Each epoch visits every distinct training (user, item) pair
    once in random order, pairs it with an item drawn uniformly from those the user has *not*
    interacted with, and minimises ``−log σ(x_ui − x_uj)`` plus
    ``reg · (‖p_u‖² + ‖q_i‖² + ‖q_j‖² + b_i² + b_j²)`` (batch means) with Adam.

    Scores ignore the ``history`` argument: the user's factors already summarise their
    training history (users with no training interactions keep their random initial factors).

    Training is deterministic given ``seed`` (a local ``torch.Generator`` for initialisation,
    ``numpy.random.default_rng(seed)`` for shuffling and negatives; global RNG state is never
    touched), for a fixed number of torch threads.
    """

    name: ClassVar[str] = "bpr"
    uses_history: ClassVar[bool] = False  # the user's factors (see above)
    Config: ClassVar[type] = BPRConfig
    config: BPRConfig

    def _fit(self, dataset: Dataset, progress: bool) -> None:
        cfg = self.config
        n_users, n_items = self.n_users_, self.n_items_
        x = dataset.user_item_matrix()  # (U, I) binary: repeats count once
        counts = np.diff(x.indptr)
        users = np.repeat(np.arange(n_users, dtype=np.int64), counts)  # (N,)
        items = x.indices.astype(np.int64)  # (N,)
        # Users who interacted with every item have no negative: leave them out of training.
        trainable = counts[users] < n_items
        users, items = users[trainable], items[trainable]
        pos_keys = np.sort(users * n_items + items)  # (N,) for binary-search membership tests

        gen = torch.Generator().manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        std = cfg.init_std
        user_f = torch.nn.Parameter(torch.randn(n_users, cfg.factors, generator=gen) * std)
        item_f = torch.nn.Parameter(torch.randn(n_items, cfg.factors, generator=gen) * std)
        item_b = torch.nn.Parameter(torch.zeros(n_items))
        opt = _adam([user_f, item_f, item_b], cfg.lr)

        n = len(users)
        with progress_bar(cfg.epochs, f"BPR-MF ({n:,} pairs)", enabled=progress) as bar:
            for _ in range(cfg.epochs):
                order = rng.permutation(n)
                u_ep, i_ep = users[order], items[order]  # (N,)
                j_ep = _sample_negatives(u_ep, pos_keys, n_items, rng)  # (N,)
                u_t, i_t, j_t = (torch.from_numpy(a) for a in (u_ep, i_ep, j_ep))
                total = 0.0
                for s in range(0, n, cfg.batch_size):
                    batch = slice(s, s + cfg.batch_size)
                    u, i, j = u_t[batch], i_t[batch], j_t[batch]  # (B,) each
                    # index_select: its backward is much faster than fancy indexing on CPU
                    pu = user_f.index_select(0, u)  # (B, d)
                    qi, qj = item_f.index_select(0, i), item_f.index_select(0, j)  # (B, d)
                    bi, bj = item_b.index_select(0, i), item_b.index_select(0, j)  # (B,)
                    diff = (pu * (qi - qj)).sum(dim=1) + bi - bj  # (B,) x_ui - x_uj
                    loss = -F.logsigmoid(diff).mean()
                    penalty = (
                        (pu.square() + qi.square() + qj.square()).sum(dim=1)
                        + bi.square()
                        + bj.square()
                    )
                    objective = loss + cfg.reg * penalty.mean()
                    opt.zero_grad(set_to_none=True)
                    objective.backward()
                    opt.step()
                    total += float(loss.detach()) * len(u)
                bar.set(loss=total / max(n, 1))
                bar.advance()

        self.user_factors_ = user_f.detach().numpy().astype(np.float32)  # (U, d)
        self.item_factors_ = item_f.detach().numpy().astype(np.float32)  # (I, d)
        self.item_bias_ = item_b.detach().numpy().astype(np.float32)  # (I,)

    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        # (B, d) @ (d, I) + (I,) -> (B, I); history is not used (see the class docstring).
        return self.user_factors_[users] @ self.item_factors_.T + self.item_bias_[None, :]

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "item_bias": self.item_bias_,
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_ = state["user_factors"].astype(np.float32)
        self.item_factors_ = state["item_factors"].astype(np.float32)
        self.item_bias_ = state["item_bias"].astype(np.float32)


def _adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam, fused where this torch supports it on CPU (several times faster per step)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # torch < 2.4 has no fused CPU Adam
        return torch.optim.Adam(params, lr=lr, foreach=True)


def _sample_negatives(
    users: np.ndarray,
    pos_keys: np.ndarray,
    n_items: int,
    rng: np.random.Generator,
    pool: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) items drawn uniformly from those each user has not interacted with.

    Draws come from ``pool`` (item indices) when given, else from every item. Draws for
    everyone at once, then redraws only the collisions until none remain (each user has at
    least one negative, so this ends; the expected number of rounds is small unless a user
    has seen almost the whole pool).
    """

    def draw(size: int) -> np.ndarray:
        if pool is None:
            return rng.integers(0, n_items, size=size, dtype=np.int64)
        return pool[rng.integers(0, len(pool), size=size, dtype=np.int64)]

    neg = draw(len(users))
    todo = np.arange(len(users))
    while len(todo):
        keys = users[todo] * n_items + neg[todo]
        at = np.minimum(np.searchsorted(pos_keys, keys), len(pos_keys) - 1)
        todo = todo[pos_keys[at] == keys]
        neg[todo] = draw(len(todo))
    return neg
