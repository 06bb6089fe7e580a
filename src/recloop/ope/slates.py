"""Off-policy estimators for slates: independent IPS (IIPS) and the pseudo-inverse (PI).

A slate log has ``n`` rounds of ``K`` slots; ``rewards[i, k]`` is the reward at slot ``k`` and
``pscore`` / ``target`` the logging and target policies' marginal probabilities of the logged
item at its slot. Both return an :class:`recloop.ope.estimators.Estimate`.

References:
    - IIPS: S. Li, Y. Abbasi-Yadkori, B. Kveton, S. Muthukrishnan, V. Vinay and Z. Wen. 2018.
      Offline evaluation of ranking policies with click models. KDD.
    - PI: A. Swaminathan, A. Krishnamurthy, A. Agarwal, M. Dudík, J. Langford, D. Jose and
      I. Zitouni. 2017. Off-policy evaluation for slate recommendation. NeurIPS.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike

from recloop.errors import ConfigError, DataError
from recloop.ope.estimators import F64, Estimate, _mean_estimate

__all__ = ["pseudo_inverse", "slate_independent_ips"]


def _slate(rewards: ArrayLike, pscore: ArrayLike, target: ArrayLike) -> tuple[F64, F64, F64]:
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.size == 0:
        raise DataError(
            f"slate rewards must have shape (n_rounds, slate_size) with one reward per slot, "
            f"got {r.shape}"
        )
    arrays = []
    for name, values in (("pscore", pscore), ("target", target)):
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != r.shape:
            raise DataError(
                f"slate {name} must have the shape of rewards {r.shape} (the probability of "
                f"each logged item at its slot), got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise DataError(f"slate {name} contains NaN or infinite values")
        arrays.append(arr)
    if not np.all(np.isfinite(r)):
        raise DataError("slate rewards contain NaN or infinite values")
    p, t = arrays
    if ((p <= 0) | (p > 1)).any():
        raise DataError(
            "slate pscore must lie in (0, 1]: each logged item needs the positive probability "
            "with which the logging policy put it at its slot"
        )
    if ((t < 0) | (t > 1)).any():
        raise DataError("slate target probabilities must lie in [0, 1]")
    return r, p, t


def slate_independent_ips(
    rewards: ArrayLike,
    pscore: ArrayLike,
    target: ArrayLike,
    *,
    confidence: float = 0.95,
    ci: str = "analytic",
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Independent IPS (IIPS) for slates: ``mean_i Σ_k w_ik r_ik``.

    ``pscore[i, k]`` and ``target[i, k]`` are the logging and target policies' marginal
    probabilities of putting the logged item ``a_ik`` at slot ``k``; ``w_ik`` is their ratio.
    The effective sample size is that of all slot weights divided by ``K``.
    Unbiased when the reward at a slot depends only on the item at that slot (no interaction
    between slots). The value is the expected total reward of a slate.
    """
    r, p, t = _slate(rewards, pscore, target)
    w = t / p
    terms = np.sum(w * r, axis=1)
    est = _mean_estimate("iips", terms, w.ravel(), confidence, ci, n_boot, seed)
    # the slot weights' ESS counts slots; report it in rounds, as the other estimators do
    return replace(est, ess=est.ess / r.shape[1])


def pseudo_inverse(
    rewards: ArrayLike,
    pscore: ArrayLike,
    target: ArrayLike,
    *,
    logging: str = "independent",
    target_anywhere: ArrayLike | None = None,
    n_items: int | None = None,
    confidence: float = 0.95,
    ci: str = "analytic",
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Pseudo-inverse (PI) for slates: ``mean_i g_i · Σ_k r_ik``.

    Uses only the slate's total reward, and is unbiased when that total is, in expectation, a
    sum of per-slot terms (the linearity assumption of Swaminathan et al. 2017). The factor
    ``g_i = θ_π(x_i)ᵀ Γ_μ(x_i)⁺ 1_{s_i}`` has a closed form for two logging policies:

    - ``logging="independent"``: each slot drawn independently (a product of slot
      distributions): ``g = Σ_k w_k − K + 1`` with ``w_k = target[i, k] / pscore[i, k]``.
    - ``logging="uniform"``: slates drawn uniformly without repeats from ``n_items`` items:
      ``g = (m − 1)·Σ_k t_k + (m − 1)/(m − K)·Σ_k u_k + 1 − K(m − 1)/(m − K)``, where ``t_k``
      is ``target[i, k]``, ``u_k = target_anywhere[i, k]`` is the target's expected number of
      times the logged item ``a_ik`` is shown (its probability of being in the slate, for a
      target that never repeats an item), and ``m = n_items``; ``pscore`` must then be
      ``1 / m`` everywhere. (Derived from the pseudo-inverse of the uniform policy's
      slot-indicator second-moment matrix; the tests check it against numpy's ``pinv``.)

    The diagnostics are computed on ``g``, which can be negative: the effective sample size
    and the largest factor are a rough guide here, not the weights' exact meaning.

    ``pscore`` and ``target`` are slot marginals as for :func:`slate_independent_ips`.
    """
    if logging not in ("independent", "uniform"):
        raise ConfigError(f"logging must be 'independent' or 'uniform', got {logging!r}")
    r, p, t = _slate(rewards, pscore, target)
    k = r.shape[1]
    if logging == "independent":
        g = np.sum(t / p, axis=1) - k + 1.0
    else:
        if target_anywhere is None or n_items is None:
            raise ConfigError(
                "logging='uniform' needs target_anywhere (the target's probability of each "
                "logged item in any slot) and n_items"
            )
        if n_items <= k:
            raise ConfigError(f"n_items must exceed the slate size {k}, got {n_items}")
        u = np.asarray(target_anywhere, dtype=np.float64)
        if u.shape != r.shape or not np.all(np.isfinite(u)) or (u < 0).any() or (u > 1).any():
            raise DataError(
                f"target_anywhere must have the shape of rewards {r.shape} with values in [0, 1]"
            )
        if not np.allclose(p, 1.0 / n_items, rtol=1e-6):
            raise DataError(
                f"logging='uniform' means every slot marginal is 1 / n_items = {1 / n_items:.6g}, "
                "but pscore differs; use logging='independent' or IIPS for other logging policies"
            )
        if (u < t - 1e-9).any():
            raise DataError(
                "target_anywhere must be at least the slot probability target: an item in a "
                "given slot is also in the slate"
            )
        m = float(n_items)
        c = (m - 1.0) / (m - k)
        g = (m - 1.0) * t.sum(axis=1) + c * u.sum(axis=1) + 1.0 - k * c
    terms = g * r.sum(axis=1)
    return _mean_estimate("pi", terms, g, confidence, ci, n_boot, seed)
