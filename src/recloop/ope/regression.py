"""Reward models for the direct method and doubly robust estimators.

A reward model used by DR must not be fitted on the very rounds it corrects: the correction
``w (r − q̂)`` is then shrunk towards 0 on exactly the rounds the model memorised, and DR
inherits the model's optimism. :func:`cross_fitted_rates` therefore predicts each round with a
model fitted on the other folds (cross-fitting, as in Chernozhukov et al. 2018).

Two reward models: :func:`smoothed_rates`, a shrunk mean per (slot, item), which ignores the
user; and :class:`ContextClickModel`, one logistic regression per slot over the round's
context and the item's features (the Open Bandit Pipeline's ``RegressionModel`` with its
logistic base model), which uses the user features the logs ship.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from recloop.errors import ConfigError, DataError

__all__ = [
    "ContextClickModel",
    "cross_fitted_context_rates",
    "cross_fitted_rates",
    "smoothed_rates",
]


def smoothed_rates(
    groups: NDArray[np.int64],
    actions: NDArray[np.int64],
    rewards: NDArray[np.float64],
    n_groups: int,
    n_actions: int,
    strength: float,
) -> NDArray[np.float64]:
    """Mean reward per (group, action), shrunk towards the group's mean reward.

    ``q[g, a] = (Σ r over rounds with (g, a) + strength · m_g) / (count(g, a) + strength)``,
    where ``m_g`` is the mean reward of group ``g`` (the overall mean for an empty group).
    Returns an array of shape ``(n_groups, n_actions)``.
    """
    total = np.zeros((n_groups, n_actions))
    count = np.zeros((n_groups, n_actions))
    np.add.at(total, (groups, actions), rewards)
    np.add.at(count, (groups, actions), 1.0)
    overall = float(rewards.mean()) if rewards.size else 0.0
    g_count = count.sum(axis=1)
    g_mean = np.where(g_count > 0, total.sum(axis=1) / np.maximum(g_count, 1.0), overall)
    return (total + strength * g_mean[:, None]) / (count + strength)


def cross_fitted_rates(
    groups: ArrayLike,
    actions: ArrayLike,
    rewards: ArrayLike,
    n_groups: int,
    n_actions: int,
    *,
    n_folds: int = 3,
    strength: float = 10.0,
    seed: int = 0,
    origin: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Predicted reward of every action in every round, each round predicted out of fold.

    ``groups`` is a small discrete context per round (for the Open Bandit Dataset, the slot).
    The rounds are split at random into ``n_folds`` folds; the rounds of one fold are predicted
    by :func:`smoothed_rates` fitted on the others. Returns ``q_hat`` of shape
    ``(n_rounds, n_actions)``, ready for :func:`recloop.ope.direct_method` and friends.

    ``origin`` gives each round's row in an original log when the rounds are a resample with
    repeats (a bootstrap): copies of one logged round then share a fold, so no round is
    predicted by a model that saw a copy of it.
    """
    g = np.asarray(groups, dtype=np.int64)
    a = np.asarray(actions, dtype=np.int64)
    r = np.asarray(rewards, dtype=np.float64)
    if not (g.shape == a.shape == r.shape) or g.ndim != 1 or g.size == 0:
        raise DataError("groups, actions and rewards must be non-empty 1-D arrays of one length")
    if g.min() < 0 or g.max() >= n_groups or a.min() < 0 or a.max() >= n_actions:
        raise DataError("groups or actions fall outside [0, n_groups) or [0, n_actions)")
    if n_folds < 2 or n_folds > g.size:
        raise ConfigError(f"n_folds must be between 2 and the number of rounds, got {n_folds}")
    if strength <= 0:
        raise ConfigError(f"strength must be positive, got {strength}")
    if origin is None:
        fold = np.random.default_rng(seed).permutation(g.size) % n_folds
    else:
        o = np.asarray(origin, dtype=np.int64)
        if o.shape != g.shape or o.min() < 0:
            raise DataError("origin must give a non-negative original row for every round")
        fold = np.random.default_rng(seed).permutation(int(o.max()) + 1)[o] % n_folds
    q_hat = np.empty((g.size, n_actions))
    for f in range(n_folds):
        train = fold != f
        table = smoothed_rates(g[train], a[train], r[train], n_groups, n_actions, strength)
        q_hat[~train] = table[g[~train]]
    return q_hat


class ContextClickModel:
    """Click probability per slot: ``σ(w_k · [x, e_a] + b_k)`` for context ``x`` and item
    features ``e_a``, one L2-regularised logistic regression per slot ``k`` (scikit-learn's
    ``LogisticRegression``, ``C`` its inverse penalty).

    A slot whose training rounds hold one class only (no click at all) predicts its observed
    rate (shrunk to the rounds' overall rate by half a round), since a logistic fit needs both.
    """

    def __init__(self, len_list: int, action_context: ArrayLike, *, c: float = 100.0,
                 max_iter: int = 10_000, seed: int = 12345) -> None:  # fmt: skip
        if c <= 0:
            raise ConfigError(f"the logistic regression's C must be positive, got {c}")
        self.len_list = len_list
        self.items = np.asarray(action_context, dtype=np.float64)
        self.c, self.max_iter, self.seed = c, max_iter, seed
        self.weights: list[tuple[NDArray[np.float64], NDArray[np.float64], float] | float] = []

    def fit(self, context: ArrayLike, positions: ArrayLike, actions: ArrayLike,
            rewards: ArrayLike) -> ContextClickModel:  # fmt: skip
        from sklearn.linear_model import LogisticRegression

        x = np.asarray(context, dtype=np.float64)
        k, a = np.asarray(positions, np.int64), np.asarray(actions, np.int64)
        r = np.asarray(rewards, dtype=np.float64)
        overall = float(r.mean()) if r.size else 0.0
        self.weights = []
        d = x.shape[1]
        for slot in range(self.len_list):
            rows = k == slot
            y = r[rows]
            if y.size == 0 or y.min() == y.max():
                self.weights.append((float(y.sum()) + 0.5 * overall) / (y.size + 0.5))
                continue
            model = LogisticRegression(C=self.c, max_iter=self.max_iter,
                                       random_state=self.seed)  # fmt: skip
            model.fit(np.c_[x[rows], self.items[a[rows]]], y)
            w = model.coef_[0]
            self.weights.append((w[:d], w[d:], float(model.intercept_[0])))
        return self

    def predict(self, context: ArrayLike, positions: ArrayLike) -> NDArray[np.float64]:
        """(n, n_actions) click probability of every item at each round's slot."""
        from scipy.special import expit

        x = np.asarray(context, dtype=np.float64)
        k = np.asarray(positions, np.int64)
        out = np.empty((x.shape[0], self.items.shape[0]))
        for slot, w in enumerate(self.weights):
            rows = k == slot
            if isinstance(w, float):
                out[rows] = w
            else:
                wc, wa, b = w
                out[rows] = expit((x[rows] @ wc)[:, None] + (self.items @ wa)[None, :] + b)
        return out


def cross_fitted_context_rates(
    context: ArrayLike,
    action_context: ArrayLike,
    positions: ArrayLike,
    actions: ArrayLike,
    rewards: ArrayLike,
    len_list: int,
    *,
    n_folds: int = 3,
    c: float = 100.0,
    seed: int = 0,
    origin: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """:func:`cross_fitted_rates` with :class:`ContextClickModel`: each round's
    ``(n_rounds, n_actions)`` click probabilities at its slot from a model fitted on the other
    folds (``origin`` keeps a bootstrap's copies of a round in one fold)."""
    x = np.asarray(context, dtype=np.float64)
    k = np.asarray(positions, dtype=np.int64)
    a = np.asarray(actions, dtype=np.int64)
    r = np.asarray(rewards, dtype=np.float64)
    n = k.size
    if x.ndim != 2 or x.shape[0] != n or a.shape != k.shape or r.shape != k.shape or n == 0:
        raise DataError("context (n, d), positions, actions and rewards must describe the same "
                        "non-empty rounds")  # fmt: skip
    if n_folds < 2 or n_folds > n:
        raise ConfigError(f"n_folds must be between 2 and the number of rounds, got {n_folds}")
    o = np.arange(n) if origin is None else np.asarray(origin, dtype=np.int64)
    fold = np.random.default_rng(seed).permutation(int(o.max()) + 1)[o] % n_folds
    q_hat = np.empty((n, np.asarray(action_context).shape[0]))
    for f in range(n_folds):
        train = fold != f
        model = ContextClickModel(len_list, action_context, c=c).fit(
            x[train], k[train], a[train], r[train]
        )
        q_hat[~train] = model.predict(x[~train], k[~train])
    return q_hat


#: The inverse penalties :func:`select_c` chooses from.
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def select_c(context: ArrayLike, action_context: ArrayLike, positions: ArrayLike,
             actions: ArrayLike, rewards: ArrayLike, len_list: int, *, n_folds: int = 3,
             grid: tuple[float, ...] = C_GRID, seed: int = 0) -> float:  # fmt: skip
    """The ``C`` of :class:`ContextClickModel` with the best cross-validated log-loss of the
    logged clicks (the logs alone: no ground truth is used), the strongest penalty on ties."""
    a = np.asarray(actions, dtype=np.int64)
    r = np.asarray(rewards, dtype=np.float64)
    best, best_loss = grid[0], np.inf
    for c in sorted(grid):
        q = cross_fitted_context_rates(context, action_context, positions, a, r, len_list,
                                       n_folds=n_folds, c=c, seed=seed)  # fmt: skip
        p = np.clip(q[np.arange(a.size), a], 1e-9, 1 - 1e-9)
        loss = float(-np.mean(r * np.log(p) + (1 - r) * np.log1p(-p)))
        if loss < best_loss - 1e-12:
            best, best_loss = c, loss
    return best
