"""Exact-value tests for recloop.eval.agreement on hand-made policy panels."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as sps

from recloop.errors import ConfigError, DataError
from recloop.eval import Agreement, kendall_tau, policy_agreement

# ----------------------------------------------------------------------------- kendall_tau


def test_kendall_tau_one_inverted_pair_of_three() -> None:
    # pairs (1,2) (1,3) concordant, (2,3) discordant: (2 - 1) / sqrt(3 * 3) = 1/3
    assert kendall_tau([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]) == pytest.approx(1.0 / 3.0)


def test_kendall_tau_one_inverted_pair_of_four() -> None:
    # 6 pairs, 5 concordant, 1 discordant: (5 - 1) / sqrt(6 * 6) = 2/3
    assert kendall_tau([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 4.0, 3.0]) == pytest.approx(2.0 / 3.0)


def test_kendall_tau_b_with_ties() -> None:
    # x ties one pair: n0 - n1 = 5, n0 - n2 = 6; the 5 untied pairs concordant: 5 / sqrt(30)
    assert kendall_tau([1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]) == pytest.approx(
        5.0 / math.sqrt(30.0)
    )
    # a tie on each side: C - D = 1 (pair 0-2), n0 - n1 = n0 - n2 = 2: 1 / 2
    assert kendall_tau([1.0, 1.0, 2.0], [1.0, 2.0, 2.0]) == pytest.approx(0.5)


def test_kendall_tau_extremes_and_undefined() -> None:
    assert kendall_tau([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == 1.0
    assert kendall_tau([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == -1.0
    assert math.isnan(kendall_tau([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_kendall_tau_matches_scipy_variant_b() -> None:
    rng = np.random.default_rng(3)
    for _ in range(100):
        p = int(rng.integers(2, 12))
        x = rng.integers(0, 4, p).astype(float)  # small range: many ties
        y = rng.integers(0, 4, p).astype(float)
        ours = kendall_tau(x, y)
        ref = float(sps.kendalltau(x, y, variant="b").statistic)
        if math.isnan(ref):
            assert math.isnan(ours)
        else:
            assert ours == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize(
    ("x", "y"),
    [([1.0, 2.0], [1.0, 2.0, 3.0]), ([1.0], [2.0]), ([1.0, np.nan], [1.0, 2.0]),
     ([[1.0, 2.0]], [[1.0, 2.0]])],
)  # fmt: skip
def test_kendall_tau_rejects_bad_input(x: list, y: list) -> None:
    with pytest.raises(DataError):
        kendall_tau(x, y)


# ----------------------------------------------------------------------- policy_agreement


def _three_policies() -> np.ndarray:
    """Yardstick (10 units) over A, B, C: A and B both far above C on every unit (distinct
    differences, so the exact two-sided Wilcoxon p is 2 / 2**10 = 1/512); A and B differ by
    small differences of both signs (mean +0.2): not separated."""
    k = np.arange(10.0)
    c = 10.0 * k
    a = c + 50.0 + k  # A - C = 50..59
    d = np.array([3.0, -2.0, 4.0, -1.0, 2.0, -3.0, 1.0, -4.0, 7.0, -5.0])
    b = a - d  # B - C = 47 53 48 54 52 58 55 61 51 64
    return np.column_stack([a, b, c])


def test_one_significant_inversion_named_and_one_unseparated_ignored() -> None:
    y = _three_policies()
    # yardstick means: A > B > C. The world: B > C > A inverts A-C (separated) and A-B (not).
    res = policy_agreement([0.0, 2.0, 1.0], y, ["A", "B", "C"], n_boot=100)
    # pairs A-B and A-C discordant, B-C concordant: (1 - 2) / 3
    assert res.tau == pytest.approx(-1.0 / 3.0)
    assert res.pairs_same_order == pytest.approx(1.0 / 3.0)
    assert res.n_significant_pairs == 2  # A-C and B-C
    # Holm over 3 pairs: the two smallest p = 1/512 each, adjusted max(3, 2) / 512
    assert res.significant_inversions == (("A", "C", pytest.approx(3.0 / 512.0)),)
    assert res.n_policies == 3
    assert res.n_units == 10


def test_world_equal_to_yardstick_means_agrees_fully() -> None:
    y = _three_policies()
    res = policy_agreement(np.nanmean(y, axis=0), y, ["A", "B", "C"], n_boot=100)
    assert res.tau == 1.0
    assert res.pairs_same_order == 1.0
    assert res.significant_inversions == ()
    assert res.n_significant_pairs == 2


def test_reversed_world_names_every_significant_pair() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(12, 1))
    # four policies 10 apart on every unit, plus small noise: every pair separated
    y = base + 10.0 * np.arange(4.0) + 0.1 * rng.normal(size=(12, 4))
    names = ["p0", "p1", "p2", "p3"]
    res = policy_agreement(-np.nanmean(y, axis=0), y, names, n_boot=100)
    assert res.tau == -1.0
    assert res.pairs_same_order == 0.0
    assert res.n_significant_pairs == 6
    assert {(b, w) for b, w, _ in res.significant_inversions} == {
        (f"p{i}", f"p{j}") for i in range(4) for j in range(4) if i > j
    }
    assert all(p <= 0.05 for _, _, p in res.significant_inversions)
    assert res.tau_low == res.tau_high == -1.0  # every resample keeps the order
    assert res.noise_ceiling == 1.0


def test_world_tie_is_not_same_order_nor_inversion() -> None:
    y = _three_policies()  # yardstick: A > B > C, with B-C separated
    # the world ties B and C: not the same order, but not ordered the other way either
    res = policy_agreement([3.0, 1.0, 1.0], y, ["A", "B", "C"], n_boot=50)
    assert res.pairs_same_order == pytest.approx(2.0 / 3.0)
    assert res.significant_inversions == ()
    # tau-b: C - D = 2, n0 - n1 = 2 (world), n0 - n2 = 3: 2 / sqrt(6)
    assert res.tau == pytest.approx(2.0 / math.sqrt(6.0))


def test_missing_values_use_nanmean_and_drop_pairs() -> None:
    y = _three_policies()
    y_missing = np.vstack([y, [np.nan, -1000.0, np.nan]])  # one unit with B only
    # B's mean drops below C's: yardstick now A > C > B
    assert np.nanmean(y_missing, axis=0)[1] < np.nanmean(y_missing, axis=0)[2]
    res = policy_agreement([3.0, 1.0, 2.0], y_missing, ["A", "B", "C"], n_boot=50)
    assert res.tau == 1.0
    # the paired tests drop the unit (a NaN on one side), so B-C stays significant, and the
    # paired mean difference (not the NaN-mean) says which is better: B, which the world
    # puts below C
    assert res.significant_inversions == (("B", "C", pytest.approx(3.0 / 512.0)),)


def _noisy_panel() -> np.ndarray:
    rng = np.random.default_rng(7)
    y = rng.normal(size=(20, 5)) + 0.3 * np.arange(5.0)
    y[3, 1] = np.nan
    y[11, 4] = np.nan
    return y


def test_bootstrap_reproducible_with_a_seed_and_different_with_another() -> None:
    y = _noisy_panel()
    world = [0.0, 1.0, 2.0, 4.0, 3.0]
    names = list("abcde")
    one = policy_agreement(world, y, names, n_boot=200, seed=1)
    assert policy_agreement(world, y, names, n_boot=200, seed=1) == one
    other = policy_agreement(world, y, names, n_boot=200, seed=2)
    assert other.tau == one.tau  # the point estimate does not depend on the seed
    assert other.noise_ceiling != one.noise_ceiling
    assert -1.0 <= one.tau_low <= one.tau_high <= 1.0
    assert -1.0 <= one.noise_ceiling_low <= one.noise_ceiling <= one.noise_ceiling_high <= 1.0


def test_bootstrap_matches_a_direct_resampling() -> None:
    # the vectorised bootstrap equals resampling the rows and taking NaN-means; this pins the
    # draw order: the bootstrap's draws come first from default_rng(seed)
    y = _noisy_panel()
    world = np.array([0.0, 1.0, 2.0, 4.0, 3.0])
    n_boot, alpha = 60, 0.1
    res = policy_agreement(world, y, list("abcde"), n_boot=n_boot, seed=5, alpha=alpha)
    draws = np.random.default_rng(5).integers(0, y.shape[0], size=(n_boot, y.shape[0]))
    taus = [
        sps.kendalltau(world, np.nanmean(y[rows], axis=0), variant="b").statistic for rows in draws
    ]
    low, high = np.percentile(taus, [5.0, 95.0])
    assert res.tau_low == pytest.approx(low)
    assert res.tau_high == pytest.approx(high)


def test_noise_ceiling_of_a_noise_free_yardstick_is_one() -> None:
    y = np.tile([1.0, 3.0, 2.0], (6, 1))
    res = policy_agreement([1.0, 3.0, 2.0], y, ["a", "b", "c"], n_boot=20)
    assert res.noise_ceiling == res.noise_ceiling_low == res.noise_ceiling_high == 1.0
    # 6 units all one way: Wilcoxon p = 2 / 2**6 each, Holm over 3 pairs: 3/32 > 0.05
    assert res.n_significant_pairs == 0


def test_result_is_frozen() -> None:
    res = policy_agreement([1.0, 2.0], [[1.0, 2.0], [1.5, 2.5]], ["a", "b"], n_boot=10)
    assert isinstance(res, Agreement)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.tau = 0.0  # type: ignore[misc]


def test_rows_are_tidy_and_labelled() -> None:
    y = _three_policies()
    res = policy_agreement([0.0, 2.0, 1.0], y, ["A", "B", "C"], n_boot=50)
    rows = res.rows(benchmark="sim_fidelity", dataset="toy", method="ease", variant="replay")
    assert [r["metric"] for r in rows] == [
        "kendall_tau",
        "pairs_same_order",
        "inversions_significant",
        "n_policies",
        "noise_ceiling_tau",
    ]
    by = {r["metric"]: r for r in rows}
    assert all(r["benchmark"] == "sim_fidelity" and r["variant"] == "replay" for r in rows)
    assert by["kendall_tau"]["value"] == pytest.approx(-1.0 / 3.0)
    assert (by["kendall_tau"]["ci_low"], by["kendall_tau"]["ci_high"]) == (
        res.tau_low,
        res.tau_high,
    )
    assert by["inversions_significant"]["value"] == 1.0
    assert by["n_policies"]["value"] == 3.0
    assert by["noise_ceiling_tau"]["value"] == res.noise_ceiling
    for m in ("pairs_same_order", "inversions_significant", "n_policies"):
        assert math.isnan(by[m]["ci_low"]) and math.isnan(by[m]["ci_high"])
    assert all(r["n"] == 10 for r in rows)
    with pytest.raises(ConfigError):
        res.rows(metric="x")


@pytest.mark.parametrize(
    ("world", "yardstick", "names"),
    [
        ([1.0], [[1.0], [2.0]], ["a"]),  # one policy
        ([1.0, 2.0], [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], ["a", "b"]),  # shape mismatch
        ([1.0, 2.0], [1.0, 2.0], ["a", "b"]),  # yardstick not 2-D
        ([1.0, 2.0], [[1.0, 2.0], [1.0, 2.0]], ["a"]),  # names of the wrong length
        ([1.0, 2.0], [[1.0, 2.0], [1.0, 2.0]], ["a", "a"]),  # repeated names
        ([1.0, np.nan], [[1.0, 2.0], [1.0, 2.0]], ["a", "b"]),  # non-finite world
        ([1.0, np.inf], [[1.0, 2.0], [1.0, 2.0]], ["a", "b"]),
        ([1.0, 2.0], [[1.0, 2.0]], ["a", "b"]),  # one unit
        ([1.0, 2.0], [[1.0, np.nan], [1.0, np.nan]], ["a", "b"]),  # a policy with no value
        ([1.0, 2.0], [[1.0, np.inf], [1.0, 2.0]], ["a", "b"]),  # inf in the yardstick
    ],
)
def test_policy_agreement_rejects_bad_data(world: list, yardstick: list, names: list) -> None:
    with pytest.raises(DataError):
        policy_agreement(world, yardstick, names, n_boot=10)


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"alpha": 1.0}, {"n_boot": 0}, {"n_boot": 2.5}])
def test_policy_agreement_rejects_bad_config(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        policy_agreement([1.0, 2.0], [[1.0, 2.0], [1.5, 2.5]], ["a", "b"], **kwargs)
