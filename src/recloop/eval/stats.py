"""Confidence intervals and paired significance tests over per-user metric values.

Per-user metric arrays (as returned by :func:`recloop.eval.metrics.ranking_metrics`) use NaN to
mean "not applicable for this user" (e.g. a user without test targets). Every function here
therefore ignores NaN values (or NaN pairs) instead of propagating them.

Invalid input raises :class:`recloop.errors.DataError` (bad values, lengths) or
:class:`recloop.errors.ConfigError` (bad ``confidence``); both subclass ``ValueError``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from recloop.errors import ConfigError, DataError

__all__ = [
    "MeanCI",
    "PairedTest",
    "holm_bonferroni",
    "mean_ci",
    "paired_test",
    "paired_tests_holm",
]


@dataclass(frozen=True)
class MeanCI:
    """Sample mean with a two-sided Student-t confidence interval.

    Attributes:
        mean: Sample mean of the non-NaN values.
        low: Lower bound of the interval (NaN when ``n == 1``).
        high: Upper bound of the interval (NaN when ``n == 1``).
        n: Number of non-NaN values used.
    """

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class PairedTest:
    """Result of comparing two methods on the same users.

    Attributes:
        n: Number of users with a non-NaN value for both methods.
        mean_a: Mean of ``a`` over those users.
        mean_b: Mean of ``b`` over those users.
        mean_diff: Mean of ``a - b``.
        diff_low: Lower bound of the Student-t confidence interval of the mean difference.
        diff_high: Upper bound of that interval.
        t_stat: Paired t statistic (``scipy.stats.ttest_rel``).
        t_pvalue: Two-sided p-value of the paired t-test.
        wilcoxon_stat: Wilcoxon signed-rank statistic (zero differences dropped).
        wilcoxon_pvalue: Two-sided p-value of the Wilcoxon signed-rank test.
    """

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    diff_low: float
    diff_high: float
    t_stat: float
    t_pvalue: float
    wilcoxon_stat: float
    wilcoxon_pvalue: float


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _as_1d(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def mean_ci(values: ArrayLike, confidence: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence interval, ignoring NaN values.

    The interval is ``mean ± t_{(1 + confidence) / 2, n - 1} * sd / sqrt(n)`` with the sample
    standard deviation (``ddof=1``). NaN values mean "not applicable" and are dropped first.

    Args:
        values: 1-D per-user values; NaN entries are ignored.
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        :class:`MeanCI`; with a single value ``low`` and ``high`` are NaN (no spread estimate).

    Raises:
        ValueError: If no non-NaN value remains or ``confidence`` is not in (0, 1).
    """
    _check_confidence(confidence)
    arr = _as_1d(values, "values")
    arr = arr[~np.isnan(arr)]
    n = int(arr.size)
    if n == 0:
        raise DataError(
            "mean_ci needs at least one non-NaN value; all values were NaN or the input was empty"
        )
    mean = float(arr.mean())
    if n == 1:
        return MeanCI(mean=mean, low=float("nan"), high=float("nan"), n=1)
    se = float(arr.std(ddof=1)) / np.sqrt(n)
    half = float(sps.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * se
    return MeanCI(mean=mean, low=mean - half, high=mean + half, n=n)


def paired_test(a: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of two methods on the same users.

    Pairs in which either value is NaN are dropped. With ``d = a - b``: the paired t-test
    (``scipy.stats.ttest_rel``), the Wilcoxon signed-rank test (``scipy.stats.wilcoxon`` with
    ``zero_method="wilcox"``, i.e. zero differences discarded) and a Student-t confidence interval
    for ``mean(d)``. If every difference is exactly zero both tests return statistic 0 and p-value
    1.0 (scipy would warn and return NaN). With a single pair the t-test is undefined and its
    statistic/p-value are NaN. scipy warnings (e.g. small-sample or precision warnings) are
    suppressed.

    Args:
        a: 1-D per-user values of method A.
        b: 1-D per-user values of method B, same users in the same order.
        confidence: Two-sided confidence level for the mean-difference interval.

    Returns:
        :class:`PairedTest` (all fields plain Python floats/ints).

    Raises:
        ValueError: If ``a`` and ``b`` differ in length, no complete pair remains, or
            ``confidence`` is not in (0, 1).
    """
    _check_confidence(confidence)
    x = _as_1d(a, "a")
    y = _as_1d(b, "b")
    if x.size != y.size:
        raise DataError(
            f"a and b must hold values for the same users; got lengths {x.size} and {y.size}"
        )
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n == 0:
        raise DataError("paired_test needs at least one pair where neither value is NaN")
    diff = x - y
    ci = mean_ci(diff, confidence)

    if np.all(diff == 0.0):
        t_stat, t_p, w_stat, w_p = 0.0, 1.0, 0.0, 1.0
    else:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if n >= 2:
                t_res = sps.ttest_rel(x, y)
                t_stat, t_p = float(t_res.statistic), float(t_res.pvalue)
            else:
                t_stat, t_p = float("nan"), float("nan")
            w_res = sps.wilcoxon(x, y, zero_method="wilcox")
            w_stat, w_p = float(w_res.statistic), float(w_res.pvalue)
    return PairedTest(
        n=n,
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        mean_diff=ci.mean,
        diff_low=ci.low,
        diff_high=ci.high,
        t_stat=t_stat,
        t_pvalue=t_p,
        wilcoxon_stat=w_stat,
        wilcoxon_pvalue=w_p,
    )


def holm_bonferroni(pvalues: ArrayLike) -> NDArray[np.float64]:
    """Holm step-down adjusted p-values for a family of hypotheses.

    With the ``m`` p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value is
    ``min(1, max_{j <= i} (m - j + 1) * p_(j))``; results are returned in the input order and are
    monotone in the raw p-values. Reject hypothesis ``i`` at level alpha iff ``adjusted[i] <=
    alpha``.

    Args:
        pvalues: 1-D p-values in [0, 1].

    Returns:
        ``(m,)`` float64 adjusted p-values.

    Raises:
        ValueError: If an input is NaN or outside [0, 1], or the input is not 1-D.
    """
    p = _as_1d(pvalues, "pvalues")
    if np.any(np.isnan(p)) or np.any((p < 0.0) | (p > 1.0)):
        raise DataError("pvalues must all lie in [0, 1] (no NaN)")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m, dtype=np.float64)
    out[order] = adjusted_sorted
    return out


def paired_tests_holm(
    pairs: Mapping[str, tuple[ArrayLike, ArrayLike]], confidence: float = 0.95
) -> dict[str, tuple[PairedTest, float]]:
    """:func:`paired_test` of every named ``(a, b)`` pair, the Wilcoxon p-values Holm-adjusted
    over the pairs (:func:`holm_bonferroni`).

    The pairs are one family of comparisons, the ones a table reports together: every
    variant against one reference, or one method against every baseline.

    Args:
        pairs: ``{name: (a, b)}``, per-user values of the two methods compared, as for
            :func:`paired_test`.
        confidence: Two-sided confidence level of each mean-difference interval.

    Returns:
        ``{name: (test, holm_p)}`` in the order of ``pairs`` (empty for no pairs), where
        ``holm_p`` is the test's Holm-adjusted Wilcoxon p-value.
    """
    tests = {name: paired_test(a, b, confidence) for name, (a, b) in pairs.items()}
    adjusted = holm_bonferroni([t.wilcoxon_pvalue for t in tests.values()])
    return {name: (t, float(p)) for (name, t), p in zip(tests.items(), adjusted, strict=True)}
