"""Reward models for the direct method and doubly robust estimators.

A reward model used by DR must not be fitted on the very rounds it corrects: the correction
``w (r − q̂)`` is then shrunk towards 0 on exactly the rounds the model memorised, and DR
inherits the model's optimism. :func:`cross_fitted_rates` therefore predicts each round with a
model fitted on the other folds (cross-fitting, as in Chernozhukov et al. 2018).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from recloop.errors import ConfigError, DataError

__all__ = ["cross_fitted_rates", "smoothed_rates"]


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
