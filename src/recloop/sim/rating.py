"""The world's like model: expected ratings from biased matrix factorisation.

A clicked item is liked with probability ``P(rating ≥ t)`` under an expected rating
``r̂ = μ + b_u + b_i + p_u · q_i`` (Koren 2008) and a Gaussian residual (:class:`RatingModel`),
fitted by alternating ridge regressions on the world's logs. :class:`~recloop.sim.world.World`
holds one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr


@dataclass
class RatingModel:
    """Expected ratings ``μ + b_u + b_i + p_u · q_i`` and a Gaussian residual ``σ``.

    Biased matrix factorisation fitted by alternating ridge regressions (each user's
    ``(p_u, b_u)`` given the items, then each item's ``(q_i, b_i)`` given the users), with
    ``factors = 0`` the classic baseline predictor of user and item biases.
    """

    mean: float
    user_bias: np.ndarray  # (U,) float64
    item_bias: np.ndarray  # (I,) float64
    sigma: float
    user_factors: np.ndarray | None = None  # (U, d)
    item_factors: np.ndarray | None = None  # (I, d)

    @classmethod
    def fit(cls, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int,
            n_items: int, l2: float, factors: int = 0, sweeps: int = 10,
            seed: int = 0) -> RatingModel:  # fmt: skip
        """Fit by ``sweeps`` alternating ridge sweeps (penalty ``l2`` on factors and biases)."""
        mu = float(ratings.mean())
        rng = np.random.default_rng(seed)
        p = rng.normal(0.0, 0.1, (n_users, factors))
        q = rng.normal(0.0, 0.1, (n_items, factors))
        bu, bi = np.zeros(n_users), np.zeros(n_items)
        by_user, by_item = _groups(users, n_users), _groups(items, n_items)
        for _ in range(sweeps):
            _ridge_sweep(by_user, items, ratings - mu, q, bi, p, bu, l2)
            _ridge_sweep(by_item, users, ratings - mu, p, bu, q, bi, l2)
        model = cls(mu, bu, bi, 0.0, p if factors else None, q if factors else None)
        model.sigma = float(np.sqrt(np.mean((ratings - model.expected(users, items)) ** 2)))
        return model

    def expected(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        r = self.mean + self.user_bias[users] + self.item_bias[items]
        if self.user_factors is not None and self.item_factors is not None:
            r = r + np.einsum("nd,nd->n", self.user_factors[users], self.item_factors[items])
        return np.asarray(r)

    def like_prob(self, users: np.ndarray, items: np.ndarray, threshold: float) -> np.ndarray:
        """P(integer rating ≥ threshold) under ``N(r̂, σ²)`` noise and rounding."""
        z = (self.expected(users, items) - (threshold - 0.5)) / max(self.sigma, 1e-6)
        return np.asarray(ndtr(z))


def _groups(keys: np.ndarray, n: int) -> list[np.ndarray]:
    order = np.argsort(keys, kind="stable")
    return np.split(order, np.cumsum(np.bincount(keys, minlength=n))[:-1])


def _ridge_sweep(groups: list[np.ndarray], other: np.ndarray, target: np.ndarray,
                 other_f: np.ndarray, other_b: np.ndarray, own_f: np.ndarray,
                 own_b: np.ndarray, l2: float) -> None:  # fmt: skip
    """Solve each row's ``(factors, bias)`` by ridge regression given the other side."""
    d = own_f.shape[1]
    reg = l2 * np.eye(d + 1)
    for k, rows in enumerate(groups):
        if not len(rows):
            continue
        j = other[rows]
        x = np.c_[other_f[j], np.ones(len(rows))]  # (n, d + 1)
        y = target[rows] - other_b[j]
        w = np.linalg.solve(x.T @ x + reg, x.T @ y)
        own_f[k], own_b[k] = w[:d], w[d]
