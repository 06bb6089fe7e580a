"""Off-policy estimators: the value of a target policy from logs collected under another.

Every estimator is a pure function over arrays. A log has ``n`` rounds; in round ``i`` the
behaviour (logging) policy chose ``actions[i]`` with probability ``pscore[i]`` and the reward
``rewards[i]`` was observed. The target policy is given as its full action distribution
``target_dist[i, a] = π(a | x_i)`` (each row sums to 1), so its probability of the logged
action is ``target_dist[i, actions[i]]``. Estimators that use a reward model take
``q_hat[i, a]``, its predicted reward of action ``a`` in round ``i``.

Context such as a slot position is folded into the round: for a log where each round shows one
item at one position (the Open Bandit Dataset), ``target_dist[i]`` is the target's distribution
over items *at that round's position*.

Each estimator returns an :class:`Estimate`: the value, a confidence interval, and the
diagnostics that say how far to trust it: the effective sample size of the importance weights
``(Σ w)² / Σ w²`` and the largest weight. The interval is analytic by default (a Student-t
interval over the per-round terms; for the self-normalised estimator, over its linearisation)
or a seeded percentile bootstrap over rounds.

References:
    - IPS: D. G. Horvitz and D. J. Thompson. 1952. A generalization of sampling without
      replacement from a finite universe. JASA 47, 260.
    - Clipped IPS: L. Bottou et al. 2013. Counterfactual reasoning and learning systems. JMLR 14.
    - SNIPS: A. Swaminathan and T. Joachims. 2015. The self-normalized estimator for
      counterfactual learning. NeurIPS.
    - DM and DR: M. Dudík, J. Langford and L. Li. 2011. Doubly robust policy evaluation and
      learning. ICML.
    - Switch-DR: Y.-X. Wang, A. Agarwal and M. Dudík. 2017. Optimal and adaptive off-policy
      evaluation in contextual bandits. ICML. (Here in the form of Y. Su et al. 2020, Doubly
      robust off-policy evaluation with shrinkage, ICML: the DR correction is kept only in rounds
      whose weight is at most ``tau``, which needs only the logged propensity.)

The module is one concept over ~460 lines: the one-item estimators, which share their input
checks, importance weights and intervals (DR is Switch-DR with ``tau = inf``, one function).
The slate estimators (IIPS and PI) are in :mod:`recloop.ope.slates`, the reward models in
:mod:`recloop.ope.regression`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from recloop.errors import ConfigError, DataError

__all__ = [
    "Estimate",
    "clipped_ips",
    "direct_method",
    "doubly_robust",
    "ips",
    "one_item_estimates",
    "snips",
    "switch_dr",
]

F64 = NDArray[np.float64]
_ATOL = 1e-6  # how far a row of target probabilities may be from summing to 1


@dataclass(frozen=True)
class Estimate:
    """An off-policy estimate with its interval and diagnostics.

    Attributes:
        method: Estimator name (``ips``, ``cips``, ``snips``, ``dm``, ``dr``, ``switch_dr``,
            ``iips``, ``pi``).
        value: The estimated value of the target policy (mean reward per round; per slate for
            the slate estimators).
        low: Lower bound of the confidence interval.
        high: Upper bound of the confidence interval.
        n: Number of logged rounds.
        ess: Effective sample size of the importance weights, ``(Σ w)² / Σ w²``; ``n`` for the
            direct method, which uses no weights. Far below ``n`` means a few rounds decide the
            estimate.
        max_weight: Largest importance weight (0 for the direct method).
        ci: How the interval was computed: ``analytic`` or ``bootstrap``.
    """

    method: str
    value: float
    low: float
    high: float
    n: int
    ess: float
    max_weight: float
    ci: str

    def covers(self, truth: float) -> bool:
        """Whether the interval contains ``truth``."""
        return bool(self.low <= truth <= self.high)

    def relative_error(self, truth: float) -> float:
        """``|value − truth| / |truth|``."""
        if truth == 0:
            raise DataError("relative error is undefined for a true value of 0")
        return abs(self.value - truth) / abs(truth)


# --------------------------------------------------------------------------- input checks


def _vector(values: ArrayLike, name: str, n: int | None = None) -> F64:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D (one value per logged round), got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty: off-policy estimation needs at least one logged round")
    if n is not None and arr.size != n:
        raise DataError(
            f"{name} has {arr.size} entries but the log has {n} rounds; pass one value per round"
        )
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite values; drop or fix those rounds")
    return arr


def _probabilities(values: ArrayLike, name: str, n: int) -> F64:
    arr = _vector(values, name, n)
    bad = (arr <= 0.0) | (arr > 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{name} must lie in (0, 1], but round {i} has {arr[i]!r} ({int(bad.sum())} bad "
            f"rounds); a logged action needs the positive probability with which it was chosen"
        )
    return arr


def _actions(actions: ArrayLike, n_actions: int) -> NDArray[np.int64]:
    arr = np.asarray(actions)
    if arr.ndim != 1 or arr.size == 0:
        raise DataError(f"actions must be a non-empty 1-D array of action indices, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"actions must be integer action indices, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n_actions:
        raise DataError(
            f"actions must index the {n_actions} columns of target_dist, but range over "
            f"[{arr.min()}, {arr.max()}]"
        )
    return arr.astype(np.int64)


def _distribution(target_dist: ArrayLike, n: int) -> F64:
    arr = np.asarray(target_dist, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise DataError(
            f"target_dist must have shape (n_rounds, n_actions) = ({n}, A), got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise DataError("target_dist contains NaN or infinite values")
    if (arr < 0).any():
        raise DataError("target_dist has negative probabilities")
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0) > _ATOL
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise DataError(
            f"each row of target_dist must sum to 1, but row {i} sums to {sums[i]:.6g} "
            f"({int(off.sum())} rows off); normalise the target policy's probabilities"
        )
    return arr


def _reward_model(q_hat: ArrayLike, shape: tuple[int, int]) -> F64:
    arr = np.asarray(q_hat, dtype=np.float64)
    if arr.shape != shape:
        raise DataError(
            f"q_hat must have the shape of target_dist {shape} (a predicted reward for every "
            f"round and action), got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise DataError("q_hat contains NaN or infinite predictions")
    return arr


@dataclass(frozen=True)
class _Bandit:
    actions: NDArray[np.int64]
    rewards: F64
    pscore: F64
    target: F64  # target probability of the logged action
    dist: F64  # full target distribution


def _bandit(
    actions: ArrayLike, rewards: ArrayLike, pscore: ArrayLike, target_dist: ArrayLike
) -> _Bandit:
    r = _vector(rewards, "rewards")
    n = r.size
    p = _probabilities(pscore, "pscore", n)
    dist = _distribution(target_dist, n)
    a = _actions(actions, dist.shape[1])
    if a.size != n:
        raise DataError(f"actions has {a.size} entries but rewards has {n}; pass one per round")
    return _Bandit(a, r, p, dist[np.arange(n), a], dist)


# --------------------------------------------------------------------------- intervals


def _check_ci(confidence: float, ci: str, n_boot: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if ci not in ("analytic", "bootstrap"):
        raise ConfigError(f"ci must be 'analytic' or 'bootstrap', got {ci!r}")
    if ci == "bootstrap" and n_boot < 10:
        raise ConfigError(f"n_boot must be at least 10 for a bootstrap interval, got {n_boot}")


def _t_interval(terms: F64, value: float, confidence: float) -> tuple[float, float]:
    n = terms.size
    if n < 2:
        return float("nan"), float("nan")
    half = (
        float(sps.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * float(terms.std(ddof=1)) / np.sqrt(n)
    )
    return value - half, value + half


def _bootstrap(
    statistic: Callable[[NDArray[np.int64]], float],
    n: int,
    confidence: float,
    n_boot: int,
    seed: int,
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(n_boot)])
    values = values[~np.isnan(values)]  # resamples where the statistic is undefined
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha))


def _weights_diagnostics(w: F64) -> tuple[float, float]:
    sq = float(np.sum(w * w))
    ess = float(np.sum(w)) ** 2 / sq if sq > 0 else 0.0
    return ess, float(w.max())


def _mean_estimate(
    method: str,
    terms: F64,
    w: F64 | None,
    confidence: float,
    ci: str,
    n_boot: int,
    seed: int,
) -> Estimate:
    """An estimator that is the mean of per-round terms."""
    _check_ci(confidence, ci, n_boot)
    value = float(terms.mean())
    if ci == "analytic":
        low, high = _t_interval(terms, value, confidence)
    else:
        low, high = _bootstrap(
            lambda idx: float(terms[idx].mean()), terms.size, confidence, n_boot, seed
        )
    ess, wmax = (float(terms.size), 0.0) if w is None else _weights_diagnostics(w)
    return Estimate(method, value, low, high, int(terms.size), ess, wmax, ci)


# --------------------------------------------------------------------------- estimators


def ips(
    actions: ArrayLike,
    rewards: ArrayLike,
    pscore: ArrayLike,
    target_dist: ArrayLike,
    *,
    confidence: float = 0.95,
    ci: str = "analytic",
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Inverse propensity scoring: ``mean(w_i r_i)`` with ``w_i = π(a_i|x_i) / μ(a_i|x_i)``.

    Unbiased when the logging propensities are right and the logging policy gives every action
    the target can take a positive probability; its variance grows with the weights.
    """
    b = _bandit(actions, rewards, pscore, target_dist)
    w = b.target / b.pscore
    return _mean_estimate("ips", w * b.rewards, w, confidence, ci, n_boot, seed)


def clipped_ips(
    actions: ArrayLike,
    rewards: ArrayLike,
    pscore: ArrayLike,
    target_dist: ArrayLike,
    *,
    clip: float = 10.0,
    confidence: float = 0.95,
    ci: str = "analytic",
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """IPS with each weight capped at ``clip``: ``mean(min(w_i, clip) r_i)``.

    Trades a bias (towards under-estimation for non-negative rewards) for bounded variance.
    """
    if not clip > 0:
        raise ConfigError(f"clip must be positive, got {clip}")
    b = _bandit(actions, rewards, pscore, target_dist)
    w = np.minimum(b.target / b.pscore, clip)
    return _mean_estimate("cips", w * b.rewards, w, confidence, ci, n_boot, seed)


def snips(
    actions: ArrayLike,
    rewards: ArrayLike,
    pscore: ArrayLike,
    target_dist: ArrayLike,
    *,
    confidence: float = 0.95,
    ci: str = "analytic",
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Self-normalised IPS: ``Σ w_i r_i / Σ w_i``.

    Slightly biased, consistent, and bounded by the reward range; usually far less variable than
    IPS. The analytic interval linearises the ratio: the per-round terms are
    ``w_i (r_i − V) / mean(w)`` (the delta method).
    """
    _check_ci(confidence, ci, n_boot)
    b = _bandit(actions, rewards, pscore, target_dist)
    w = b.target / b.pscore
    if w.sum() <= 0:
        raise DataError(
            "SNIPS is undefined: the target policy gives probability 0 to every logged action"
        )
    value = float(np.sum(w * b.rewards) / np.sum(w))
    if ci == "analytic":
        terms = w * (b.rewards - value) / w.mean()
        low, high = _t_interval(terms, value, confidence)
    else:

        def stat(idx: NDArray[np.int64]) -> float:
            s = w[idx].sum()  # a resample without any positive weight has no SNIPS value
            return float(np.sum(w[idx] * b.rewards[idx]) / s) if s > 0 else float("nan")

        low, high = _bootstrap(stat, w.size, confidence, n_boot, seed)
    ess, wmax = _weights_diagnostics(w)
    return Estimate("snips", value, low, high, int(w.size), ess, wmax, ci)


def direct_method(
    target_dist: ArrayLike,
    q_hat: ArrayLike,
    *,
    confidence: float = 0.95,
    ci: str = "analytic",
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Direct method: ``mean_i Σ_a π(a|x_i) q̂(x_i, a)``.

    Uses no propensities and has low variance, but inherits every bias of the reward model.
    The interval covers only the sampling noise of the contexts, not the model's bias.
    """
    dist = np.asarray(target_dist, dtype=np.float64)
    if dist.ndim != 2 or dist.shape[0] == 0:
        raise DataError(f"target_dist must have shape (n_rounds, n_actions), got {dist.shape}")
    dist = _distribution(dist, dist.shape[0])
    q = _reward_model(q_hat, dist.shape)
    terms = np.sum(dist * q, axis=1)
    return _mean_estimate("dm", terms, None, confidence, ci, n_boot, seed)


def doubly_robust(
    actions: ArrayLike,
    rewards: ArrayLike,
    pscore: ArrayLike,
    target_dist: ArrayLike,
    q_hat: ArrayLike,
    *,
    confidence: float = 0.95,
    ci: str = "analytic",
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Doubly robust: ``mean_i [Σ_a π(a|x_i) q̂(x_i,a) + w_i (r_i − q̂(x_i,a_i))]``.

    Unbiased if either the propensities or the reward model are right; with a good reward
    model its variance is below that of IPS. It is :func:`switch_dr` with ``tau = inf``.
    """
    b = _bandit(actions, rewards, pscore, target_dist)
    return _switched_dr("dr", b, q_hat, np.inf, confidence, ci, n_boot, seed)


def switch_dr(
    actions: ArrayLike,
    rewards: ArrayLike,
    pscore: ArrayLike,
    target_dist: ArrayLike,
    q_hat: ArrayLike,
    *,
    tau: float = 10.0,
    confidence: float = 0.95,
    ci: str = "analytic",
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Switch-DR: DR, but the correction ``w_i (r_i − q̂)`` is dropped where ``w_i > tau``.

    Rounds with extreme weights fall back on the reward model alone. ``tau = inf`` is DR; ``tau
    = 0`` is the direct method. The diagnostics describe the weights that were kept.
    """
    if not tau >= 0:
        raise ConfigError(f"tau must be non-negative, got {tau}")
    b = _bandit(actions, rewards, pscore, target_dist)
    return _switched_dr("switch_dr", b, q_hat, tau, confidence, ci, n_boot, seed)


def _switched_dr(
    method: str,
    b: _Bandit,
    q_hat: ArrayLike,
    tau: float,
    confidence: float,
    ci: str,
    n_boot: int,
    seed: int,
) -> Estimate:
    """The DR terms with the correction kept only where ``w_i <= tau`` (DR: ``tau = inf``)."""
    q = _reward_model(q_hat, b.dist.shape)
    w = b.target / b.pscore
    # with tau = inf every weight is kept as it is (even an overflowed inf), so DR is exact
    kept = np.where(w <= tau, w, 0.0)
    idx = np.arange(b.rewards.size)
    terms = np.sum(b.dist * q, axis=1) + kept * (b.rewards - q[idx, b.actions])
    return _mean_estimate(method, terms, kept, confidence, ci, n_boot, seed)


def one_item_estimates(
    actions: ArrayLike,
    rewards: ArrayLike,
    pscore: ArrayLike,
    target_dist: ArrayLike,
    q_hat: ArrayLike,
    *,
    clip: float = 10.0,
    tau: float = 10.0,
    confidence: float = 0.95,
) -> list[Estimate]:
    """IPS, clipped IPS, SNIPS, DM, DR and Switch-DR of one log, in that order."""
    a, r, p, d, c = actions, rewards, pscore, target_dist, confidence
    return [
        ips(a, r, p, d, confidence=c),
        clipped_ips(a, r, p, d, clip=clip, confidence=c),
        snips(a, r, p, d, confidence=c),
        direct_method(d, q_hat, confidence=c),
        doubly_robust(a, r, p, d, q_hat, confidence=c),
        switch_dr(a, r, p, d, q_hat, tau=tau, confidence=c),
    ]
