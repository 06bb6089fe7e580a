"""Exact-value tests for recloop.eval.stats against hand-computed intervals and tests."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from recloop.eval.stats import (
    MeanCI,
    PairedTest,
    holm_bonferroni,
    mean_ci,
    paired_test,
    paired_tests_holm,
)

T_975_3 = 3.182446305284  # Student-t 0.975 quantile with 3 degrees of freedom (tables: 3.182)


def test_mean_ci_hand_computed() -> None:
    # values 1 2 3 4: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5
    # sd = sqrt(5 / 3) = 1.2909944; se = sd / sqrt(4) = 0.6454972
    # half-width = t_{0.975,3} * se = 3.1824463 * 0.6454972 = 2.0542603
    # (6 significant digits: 2.054260; a figure of 2.054262 seen elsewhere is a rounding slip)
    ci = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert ci.n == 4
    assert ci.mean == pytest.approx(2.5)
    half = T_975_3 * math.sqrt(5.0 / 3.0) / 2.0
    assert half == pytest.approx(2.0542603, abs=1e-6)
    assert ci.low == pytest.approx(2.5 - 2.0542603, abs=1e-6)
    assert ci.high == pytest.approx(2.5 + 2.0542603, abs=1e-6)
    assert isinstance(ci, MeanCI)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ci.mean = 0.0  # type: ignore[misc]


def test_mean_ci_ignores_nan_and_other_confidence() -> None:
    ci = mean_ci(np.array([np.nan, 1.0, 2.0, np.nan, 3.0, 4.0]))
    assert ci.n == 4
    assert (ci.low, ci.high) == pytest.approx((0.4457397, 4.5542603), abs=1e-6)
    # 90%: t_{0.95,3} = 2.3533634 -> half-width 2.3533634 * 0.6454972 = 1.5190908
    ci90 = mean_ci([1.0, 2.0, 3.0, 4.0], confidence=0.90)
    assert ci90.high - ci90.mean == pytest.approx(2.3533634 * 0.6454972, abs=1e-6)


def test_mean_ci_edge_cases() -> None:
    one = mean_ci([0.7, np.nan])
    assert one.n == 1 and one.mean == pytest.approx(0.7)
    assert math.isnan(one.low) and math.isnan(one.high)
    constant = mean_ci([2.0, 2.0, 2.0])
    assert (constant.low, constant.mean, constant.high) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="at least one non-NaN"):
        mean_ci([np.nan, np.nan])
    with pytest.raises(ValueError, match="at least one non-NaN"):
        mean_ci([])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=1.5)


def test_paired_test_hand_computed() -> None:
    # a - b = 0.2, 0.0, 0.4, 0.3 -> mean 0.225
    # deviations -0.025 -0.225 0.175 0.075 -> squares sum to 0.0875; var = 0.0875/3 = 0.0291667
    # sd = 0.1707825; se = sd / 2 = 0.0853913; t = 0.225 / 0.0853913 = 2.6349302
    # CI half-width = 3.1824463 * 0.0853913 = 0.2717538 -> [-0.0467538, 0.4967538]
    # Wilcoxon (zero difference dropped): 3 positive differences, ranks 1 2 3 all positive ->
    # W = min(W+, W-) = 0; exact two-sided p = 2 * P(W- = 0) = 2 * (1 / 2^3) = 0.25
    a = np.array([0.5, 0.6, 0.9, 0.4])
    b = np.array([0.3, 0.6, 0.5, 0.1])
    res = paired_test(a, b)
    assert isinstance(res, PairedTest)
    assert res.n == 4
    assert res.mean_a == pytest.approx(0.6)
    assert res.mean_b == pytest.approx(0.375)
    assert res.mean_diff == pytest.approx(0.225)
    se = math.sqrt(0.0875 / 3.0) / 2.0
    assert se == pytest.approx(0.0853913, abs=1e-7)
    assert res.diff_low == pytest.approx(0.225 - T_975_3 * se)
    assert res.diff_high == pytest.approx(0.225 + T_975_3 * se)
    assert (res.diff_low, res.diff_high) == pytest.approx((-0.0467538, 0.4967538), abs=1e-6)
    assert res.t_stat == pytest.approx(0.225 / se)
    assert res.t_stat == pytest.approx(2.6349302, abs=1e-6)
    # p-value of the t statistic with 3 df, and scipy's own paired test, agree
    assert res.t_pvalue == pytest.approx(2.0 * sps.t.sf(0.225 / se, df=3))
    assert res.t_pvalue == pytest.approx(float(sps.ttest_rel(a, b).pvalue))
    assert res.wilcoxon_stat == 0.0
    assert res.wilcoxon_pvalue == pytest.approx(0.25)
    w = sps.wilcoxon(a, b, zero_method="wilcox")
    assert res.wilcoxon_pvalue == pytest.approx(float(w.pvalue))


def test_paired_test_drops_nan_pairs() -> None:
    a = np.array([0.5, np.nan, 0.6, 0.9, 0.4, 0.2])
    b = np.array([0.3, 0.1, 0.6, 0.5, 0.1, np.nan])
    res = paired_test(a, b)
    assert res.n == 4
    assert res.mean_diff == pytest.approx(0.225)
    assert res.wilcoxon_pvalue == pytest.approx(0.25)


def test_paired_test_identical_inputs_no_warnings() -> None:
    a = np.array([0.1, 0.5, 0.5, 0.9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = paired_test(a, a.copy())
    assert res.t_pvalue == 1.0 and res.wilcoxon_pvalue == 1.0
    assert res.t_stat == 0.0 and res.wilcoxon_stat == 0.0
    assert res.mean_diff == 0.0 and res.diff_low == 0.0 and res.diff_high == 0.0


def test_paired_test_single_pair_and_constant_difference_no_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single = paired_test([1.0], [0.0])
        constant = paired_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert single.n == 1 and math.isnan(single.t_pvalue)
    assert constant.mean_diff == pytest.approx(1.0)
    assert constant.diff_low == pytest.approx(1.0) and constant.diff_high == pytest.approx(1.0)


def test_paired_test_errors() -> None:
    with pytest.raises(ValueError, match="3 and 2"):
        paired_test([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="neither value is NaN"):
        paired_test([np.nan, 1.0], [1.0, np.nan])


def test_holm_bonferroni_hand_computed() -> None:
    # sorted: 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> running max 0.06
    # back in input order [0.01, 0.04, 0.03] -> [0.03, 0.06, 0.06]
    assert holm_bonferroni([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    # sorted 0.01*4 = 0.04, 0.02*3 = 0.06, 0.04*2 = 0.08, 0.5*1 = 0.5
    assert holm_bonferroni([0.04, 0.01, 0.02, 0.5]).tolist() == pytest.approx(
        [0.08, 0.04, 0.06, 0.5]
    )
    # capped at 1: 0.5 * 2 = 1.0, 0.6 * 1 -> running max 1.0
    assert holm_bonferroni([0.5, 0.6]).tolist() == [1.0, 1.0]
    assert holm_bonferroni([]).shape == (0,)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm_bonferroni([0.1, 1.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm_bonferroni([0.1, np.nan])


def test_holm_bonferroni_monotone_in_raw_pvalues() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(20) ** 3
    adj = holm_bonferroni(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)
    assert np.all(adj >= p) and np.all(adj <= 1.0)


def test_paired_tests_holm_adjusts_over_the_family() -> None:
    rng = np.random.default_rng(1)
    ref = rng.random(40)
    pairs = {
        "up": (ref + 0.2 + 0.05 * rng.random(40), ref),
        "same": (ref + 0.01 * rng.standard_normal(40), ref),
        "down": (ref - 0.1 * rng.random(40), ref),
    }
    found = paired_tests_holm(pairs)
    assert list(found) == ["up", "same", "down"]  # the order of the pairs
    raw = {k: paired_test(a, b).wilcoxon_pvalue for k, (a, b) in pairs.items()}
    # Holm by hand: ascending p_(i) times (m - i + 1), running maximum, capped at 1
    running = 0.0
    for i, k in enumerate(sorted(raw, key=raw.__getitem__)):
        running = max(running, min(1.0, (3 - i) * raw[k]))
        assert found[k][1] == pytest.approx(running)
        assert found[k][0] == paired_test(*pairs[k])
    assert found["up"][1] < 0.05 < found["same"][1]
    assert paired_tests_holm({}) == {}


def test_errors_are_recloop_errors() -> None:
    from recloop.errors import ConfigError, DataError

    with pytest.raises(DataError):
        paired_test([1.0], [1.0, 2.0])
    with pytest.raises(ConfigError):
        mean_ci([1.0, 2.0], confidence=0.0)
