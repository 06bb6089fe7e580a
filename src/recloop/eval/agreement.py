"""Policy-ranking fidelity: does a simulated world order policies the way real data does?

A *world* gives each of ``P`` policies one value (its mean return in the simulator); a
*yardstick* gives each policy a value on each of ``N`` real units (replayed sessions, test
users), the ``(N, P)`` matrix ``yardstick`` with NaN for "no value on this unit". The figures:

- Kendall's τ-b between the world's values and the yardstick's per-policy means, with a
  bootstrap interval over the units;
- the share of policy pairs that both order the same way;
- the pairs the yardstick separates significantly (paired Wilcoxon test over the units,
  Holm over all pairs) and the world orders the other way, by name;
- the yardstick's own noise ceiling: τ between its per-policy means on two random halves of
  its units, the best agreement one can expect from any world.

Pure numpy/scipy (through :mod:`recloop.eval.stats`): arrays in, figures out. Invalid input
raises :class:`recloop.errors.DataError` (bad values, shapes) or
:class:`recloop.errors.ConfigError` (bad ``alpha`` / ``n_boot`` / labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from recloop.errors import ConfigError, DataError
from recloop.eval.stats import holm_bonferroni, paired_test

__all__ = ["Agreement", "kendall_tau", "policy_agreement"]

AGREEMENT_METRICS = (
    "kendall_tau",
    "pairs_same_order",
    "inversions_significant",
    "n_policies",
    "noise_ceiling_tau",
)


def _pairs(p: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """The ``P(P-1)/2`` index pairs ``(i, j)``, ``i < j``, in row-major order."""
    i, j = np.triu_indices(p, k=1)
    return i.astype(np.intp), j.astype(np.intp)


def _tau_rows(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """τ-b of every row of ``x`` against the same row of ``y`` (both ``(B, P)``).

    ``τ_b = (C - D) / sqrt((n0 - n1)(n0 - n2))``, where ``C - D`` is the sum over pairs of
    ``sign(x_i - x_j) * sign(y_i - y_j)`` and ``n0 - n1`` (``n0 - n2``) the number of pairs
    untied in ``x`` (``y``). NaN where a row holds a NaN or is constant in ``x`` or ``y``.
    """
    i, j = _pairs(x.shape[1])
    sx = np.sign(x[:, i] - x[:, j])
    sy = np.sign(y[:, i] - y[:, j])
    with np.errstate(invalid="ignore", divide="ignore"):
        num = np.sum(sx * sy, axis=1)
        den = np.sqrt(np.sum(sx != 0, axis=1) * np.sum(sy != 0, axis=1).astype(np.float64))
        tau = num / den
    tau[den == 0] = np.nan
    return np.asarray(tau, dtype=np.float64)


def kendall_tau(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's τ-b between two value vectors over the same policies.

    Ties are handled as τ-b: ``(C - D) / sqrt((n0 - n1)(n0 - n2))`` with ``C``/``D`` the
    concordant/discordant pairs, ``n0 = P(P-1)/2`` and ``n1``/``n2`` the pairs tied in
    ``x``/``y``. Equals ``scipy.stats.kendalltau(x, y, variant="b").statistic``.

    Args:
        x: ``(P,)`` finite values, one per policy.
        y: ``(P,)`` finite values of the same policies, in the same order.

    Returns:
        τ-b in [-1, 1]; NaN when every value of ``x`` or of ``y`` is the same (τ undefined).

    Raises:
        DataError: If the inputs are not 1-D of one length ``>= 2``, or hold a non-finite value.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.size != b.size:
        raise DataError(
            f"kendall_tau needs two 1-D vectors of one length; got shapes {a.shape} and {b.shape}"
        )
    if a.size < 2:
        raise DataError(f"kendall_tau needs at least 2 policies, got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise DataError("kendall_tau needs finite values (no NaN or inf)")
    return float(_tau_rows(a[None, :], b[None, :])[0])


@dataclass(frozen=True)
class Agreement:
    """How a world's policy order agrees with a yardstick's (see :func:`policy_agreement`).

    Attributes:
        names: The ``P`` policy names, in column order.
        n_units: ``N``, the yardstick's units (rows).
        tau: Kendall τ-b between the world's values and the yardstick's per-policy means.
        tau_low: Lower bound of the bootstrap percentile interval of ``tau`` (units resampled).
        tau_high: Upper bound of that interval.
        pairs_same_order: Share of the ``P(P-1)/2`` pairs that both order the same way; a pair
            tied on either side counts as *not* the same order.
        n_significant_pairs: Pairs the yardstick separates significantly (Holm-adjusted
            Wilcoxon p-value ``<= alpha``), whichever way the world orders them.
        significant_inversions: Those of them that the world orders the other way (strictly:
            a world tie is not an inversion, though it lowers ``pairs_same_order``), as
            ``(better_by_yardstick, worse_by_yardstick, holm_adjusted_p)``, most significant
            first.
        noise_ceiling: Mean over random half-splits of the units of τ-b between the two
            halves' per-policy means: the yardstick's agreement with itself.
        noise_ceiling_low: Lower bound of the percentile interval of those split τ values.
        noise_ceiling_high: Upper bound of that interval.
        alpha: The level used for the tests and (``1 - alpha``) the intervals.
        n_boot: Bootstrap resamples, and random half-splits, drawn.
    """

    names: tuple[str, ...]
    n_units: int
    tau: float
    tau_low: float
    tau_high: float
    pairs_same_order: float
    n_significant_pairs: int
    significant_inversions: tuple[tuple[str, str, float], ...]
    noise_ceiling: float
    noise_ceiling_low: float
    noise_ceiling_high: float
    alpha: float
    n_boot: int

    @property
    def n_policies(self) -> int:
        """``P``, the number of policies compared."""
        return len(self.names)

    def rows(self, **labels: Any) -> list[dict[str, Any]]:
        """Tidy rows, one figure a row, each carrying ``labels`` (benchmark, dataset, ...).

        Metrics: ``kendall_tau``, ``pairs_same_order``, ``inversions_significant`` (the count
        of significant inversions), ``n_policies`` and ``noise_ceiling_tau``; columns
        ``metric``, ``value``, ``ci_low``, ``ci_high`` (NaN where a figure has no interval)
        and ``n`` (the yardstick's units).

        Raises:
            ConfigError: If a label would overwrite one of those columns.
        """
        clash = sorted(set(labels) & {"metric", "value", "ci_low", "ci_high", "n"})
        if clash:
            raise ConfigError(f"labels may not overwrite the row's own columns: {clash}")
        nan = float("nan")
        figures = [
            ("kendall_tau", self.tau, self.tau_low, self.tau_high),
            ("pairs_same_order", self.pairs_same_order, nan, nan),
            ("inversions_significant", float(len(self.significant_inversions)), nan, nan),
            ("n_policies", float(self.n_policies), nan, nan),
            ("noise_ceiling_tau", self.noise_ceiling, self.noise_ceiling_low,
             self.noise_ceiling_high),
        ]  # fmt: skip
        return [
            {**labels, "metric": m, "value": v, "ci_low": lo, "ci_high": hi, "n": self.n_units}
            for m, v, lo, hi in figures
        ]


def _weighted_means(
    weights: NDArray[np.float64], values: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Per-policy means of ``values`` (``(N, P)``, NaN = missing) under each row of unit
    ``weights`` (``(B, N)``): ``(B, P)``, NaN where a policy has no weighted value."""
    present = ~np.isnan(values)
    sums = weights @ np.where(present, values, 0.0)
    counts = weights @ present.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    means[counts == 0] = np.nan
    return np.asarray(means, dtype=np.float64)


def _interval(values: NDArray[np.float64], alpha: float) -> tuple[float, float]:
    """Percentile interval at ``1 - alpha`` over the finite values (NaN, NaN if none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def policy_agreement(
    world: ArrayLike,
    yardstick: ArrayLike,
    names: list[str] | tuple[str, ...],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> Agreement:
    """How well a world's policy values order the policies the way a real yardstick does.

    - ``tau``: Kendall τ-b (:func:`kendall_tau`) between ``world`` and the yardstick's
      per-policy means (NaN-ignoring). Its interval resamples the ``N`` units with
      replacement ``n_boot`` times (``numpy.random.default_rng(seed)``) and takes the
      ``alpha/2`` and ``1 - alpha/2`` percentiles of the resampled τ (resamples where τ is
      undefined, e.g. a policy with no value in the resample, are left out).
    - ``pairs_same_order``: share of pairs ordered the same strict way by both; a tie on
      either side counts as not the same order.
    - ``significant_inversions``: every pair of policies is tested with
      :func:`recloop.eval.stats.paired_test` over the units where both have a value (its
      Wilcoxon p-value), Holm-adjusted over all ``P(P-1)/2`` pairs
      (:func:`recloop.eval.stats.holm_bonferroni`). A pair with adjusted p ``<= alpha`` is
      separated; the yardstick's better policy is the one with the larger paired mean. Those
      the world orders strictly the other way are the significant inversions. A pair with no
      unit where both have a value (or an undefined p-value) gets p = 1.
    - ``noise_ceiling``: ``n_boot`` random splits of the units into two halves (the first
      ``N // 2`` of a permutation and the rest), τ-b between the halves' per-policy means,
      averaged over the splits where it is defined, with its percentile interval.

    The bootstrap and the splits draw from one generator, so a seed reproduces both.

    Args:
        world: ``(P,)`` finite value of each policy in the world.
        yardstick: ``(N, P)`` value of each policy on each real unit; NaN = missing.
        names: The ``P`` policy names, distinct, in column order.
        n_boot: Bootstrap resamples and random half-splits, ``>= 1``.
        seed: Seed of ``numpy.random.default_rng``.
        alpha: Test level and ``1 - alpha`` interval coverage, in (0, 1).

    Returns:
        :class:`Agreement`.

    Raises:
        DataError: Fewer than 2 policies or 2 units, shapes that do not match, names of the
            wrong length or repeated, a non-finite world value, an infinite yardstick value,
            or a policy with no yardstick value at all.
        ConfigError: ``alpha`` not in (0, 1) or ``n_boot < 1``.
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ConfigError(f"n_boot must be a positive integer, got {n_boot}")
    n_boot = int(n_boot)
    w = np.asarray(world, dtype=np.float64)
    y = np.asarray(yardstick, dtype=np.float64)
    if w.ndim != 1:
        raise DataError(f"world must be a (P,) vector of policy values, got shape {w.shape}")
    p = int(w.size)
    if p < 2:
        raise DataError(f"policy agreement needs at least 2 policies, got {p}")
    if y.ndim != 2 or y.shape[1] != p:
        raise DataError(
            f"yardstick must be an (N, P) matrix with one column per world policy (P = {p}); "
            f"got shape {y.shape}"
        )
    names = tuple(str(n) for n in names)
    if len(names) != p:
        raise DataError(f"names must name the {p} policies, got {len(names)} names")
    if len(set(names)) != p:
        raise DataError(f"policy names must be distinct, got {list(names)}")
    if not np.all(np.isfinite(w)):
        bad = [names[k] for k in np.flatnonzero(~np.isfinite(w))]
        raise DataError(f"world values must be finite; not finite for {bad}")
    n = int(y.shape[0])
    if n < 2:
        raise DataError(f"the yardstick needs at least 2 units (rows), got {n}")
    if np.any(np.isinf(y)):
        raise DataError("yardstick values must be finite or NaN (missing); found inf")
    empty = [names[k] for k in np.flatnonzero(np.all(np.isnan(y), axis=0))]
    if empty:
        raise DataError(f"the yardstick has no value at all for policies {empty}")

    means = _weighted_means(np.ones((1, n)), y)
    tau = float(_tau_rows(w[None, :], means)[0])

    i, j = _pairs(p)
    sw = np.sign(w[i] - w[j])
    sy = np.sign(means[0, i] - means[0, j])
    same = float(np.mean(sw * sy > 0))

    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    offsets = (np.arange(n_boot)[:, None] * n + draws).ravel()
    counts = np.bincount(offsets, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)
    boot_tau = _tau_rows(np.broadcast_to(w, (n_boot, p)), _weighted_means(counts, y))
    tau_low, tau_high = _interval(boot_tau, alpha)

    half = np.zeros((n_boot, n), dtype=np.float64)
    perm = np.argsort(rng.random((n_boot, n)), axis=1)
    np.put_along_axis(half, perm[:, : n // 2], 1.0, axis=1)
    split_tau = _tau_rows(_weighted_means(half, y), _weighted_means(1.0 - half, y))
    finite = split_tau[np.isfinite(split_tau)]
    ceiling = float(finite.mean()) if finite.size else float("nan")
    ceiling_low, ceiling_high = _interval(split_tau, alpha)

    raw_p = np.ones(i.size, dtype=np.float64)
    diffs = np.zeros(i.size, dtype=np.float64)
    for k, (a, b) in enumerate(zip(i, j, strict=True)):
        if np.any(~np.isnan(y[:, a]) & ~np.isnan(y[:, b])):
            test = paired_test(y[:, a], y[:, b])
            if np.isfinite(test.wilcoxon_pvalue):
                raw_p[k], diffs[k] = test.wilcoxon_pvalue, test.mean_diff
    adjusted = holm_bonferroni(raw_p)
    separated = (adjusted <= alpha) & (diffs != 0)
    inversions = []
    for s in np.flatnonzero(separated):
        k = int(s)
        better, worse = (i[k], j[k]) if diffs[k] > 0 else (j[k], i[k])
        if w[better] < w[worse]:
            inversions.append((names[better], names[worse], float(adjusted[k])))
    inversions.sort(key=lambda t: (t[2], t[0], t[1]))

    return Agreement(
        names=names,
        n_units=n,
        tau=tau,
        tau_low=tau_low,
        tau_high=tau_high,
        pairs_same_order=same,
        n_significant_pairs=int(np.sum(separated)),
        significant_inversions=tuple(inversions),
        noise_ceiling=ceiling,
        noise_ceiling_low=ceiling_low,
        noise_ceiling_high=ceiling_high,
        alpha=float(alpha),
        n_boot=n_boot,
    )
