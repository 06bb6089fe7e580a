"""Logging policies: the probabilities they report match Monte-Carlo frequencies."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from recloop.errors import ConfigError, DataError
from recloop.ope.policies import (
    Exploration,
    action_distribution,
    sample_slates,
    slate_probability,
    slot_marginals,
)

SCORES = np.array([[2.0, 1.0, 0.5, 0.0, -1.0]])
ALLOWED = np.array([[True, True, True, True, False]])  # item 4 is never shown


def test_action_distribution_by_hand() -> None:
    p = action_distribution(SCORES, Exploration("softmax", temperature=0.5), ALLOWED)
    e = np.exp(np.array([2.0, 1.0, 0.5, 0.0]) / 0.5)
    assert p[0, :4] == pytest.approx(e / e.sum()) and p[0, 4] == 0.0
    p = action_distribution(SCORES, Exploration("epsilon", epsilon=0.2), ALLOWED)
    assert p[0] == pytest.approx([0.8 + 0.05, 0.05, 0.05, 0.05, 0.0])
    # ties go to the lower index
    p = action_distribution(np.array([[1.0, 3.0, 3.0]]), Exploration("greedy"))
    assert p[0].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("kind", ["softmax", "epsilon"])
def test_slate_probabilities_match_frequencies(kind: str) -> None:
    exploration = Exploration(kind, epsilon=0.3, temperature=0.7)
    k, n = 3, 60_000
    rng = np.random.default_rng(0)
    scores = np.repeat(SCORES, n, axis=0)
    allowed = np.repeat(ALLOWED, n, axis=0)
    draw = sample_slates(scores, exploration, k, rng, allowed, n_sim=20_000)
    assert not np.isin(draw.slates, [4]).any()
    freq = Counter(map(tuple, draw.slates.tolist()))
    total = 0.0
    for slate in itertools.permutations(range(4), k):
        p = slate_probability(np.array([slate]), SCORES, exploration, ALLOWED)[0]
        total += p
        se = np.sqrt(p * (1 - p) / n)
        assert freq.get(slate, 0) / n == pytest.approx(p, abs=4 * se + 1e-9), slate
        rows = np.flatnonzero((draw.slates == slate).all(axis=1))
        if len(rows):
            assert draw.prob[rows] == pytest.approx(p)  # the draw reports the same probability
    assert total == pytest.approx(1.0)
    # slot marginals: reported per draw, and as a table, both match the frequencies
    marg, exact = slot_marginals(SCORES, exploration, k, ALLOWED, n_sim=200_000, seed=1)
    assert exact == (kind == "epsilon")
    for j in range(k):
        counts = np.bincount(draw.slates[:, j], minlength=5) / n
        assert counts == pytest.approx(marg[0, :, j], abs=0.01)
        assert draw.slot_prob[:, j] == pytest.approx(marg[0, draw.slates[:, j], j], abs=0.01)
    assert marg.sum(axis=1) == pytest.approx(np.ones((1, k)))


def test_greedy_slates_and_invalid_slates() -> None:
    draw = sample_slates(SCORES, Exploration("greedy"), 3, np.random.default_rng(0), ALLOWED)
    assert draw.slates.tolist() == [[0, 1, 2]] and draw.prob.tolist() == [1.0]
    soft = Exploration("softmax")
    # a repeated item or a disallowed item has probability 0
    assert slate_probability(np.array([[0, 0]]), SCORES, soft, ALLOWED)[0] == 0.0
    assert slate_probability(np.array([[0, 4]]), SCORES, soft, ALLOWED)[0] == 0.0
    eps = Exploration("epsilon", epsilon=0.5)
    # a non-greedy valid slate: 0.5 / (4 · 3)
    assert slate_probability(np.array([[3, 2]]), SCORES, eps, ALLOWED)[0] == pytest.approx(0.5 / 12)


def test_bad_exploration_and_inputs() -> None:
    with pytest.raises(ConfigError, match="unknown exploration 'boltzmann'"):
        Exploration("boltzmann")
    with pytest.raises(ConfigError, match="epsilon must lie in \\[0, 1\\]"):
        Exploration("epsilon", epsilon=1.5)
    with pytest.raises(ConfigError, match="temperature must be positive"):
        Exploration("softmax", temperature=0)
    with pytest.raises(DataError, match="needs at least 5 allowed items"):
        sample_slates(SCORES, Exploration(), 5, np.random.default_rng(0), ALLOWED)
    with pytest.raises(DataError, match="scores contain NaN"):
        action_distribution(np.array([[np.nan, 1.0]]), Exploration())


def test_extreme_scores_stay_valid_probabilities() -> None:
    soft = Exploration("softmax")
    # a near-certain first item: the second slot's probability must stay a probability
    scores = np.array([[50.0, 0.0, 0.0, 0.0]])
    p = slate_probability(np.array([[0, 1]]), scores, soft)[0]
    assert p == pytest.approx(1 / 3)  # item 0 first (≈ 1), then one of three equal items
    marg, exact = slot_marginals(scores, soft, 2)
    assert exact and marg[0, :, 1] == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3], abs=1e-12)
    # an allowed item whose probability underflows is still preferred to a disallowed one
    allowed = np.array([[True, False, True, True]])
    draw = sample_slates(np.array([[10.0, 0.0, 0.0, 0.0]]), Exploration("softmax", temperature=0.01),
                         2, np.random.default_rng(0), allowed)  # fmt: skip
    assert draw.slates[0, 1] in (2, 3) and draw.prob[0] > 0
    with pytest.raises(DataError, match="scores of allowed items must be finite"):
        action_distribution(np.array([[0.0, -np.inf]]), soft)


def test_second_slot_marginal_is_exact() -> None:
    soft = Exploration("softmax", temperature=0.7)
    marg, exact = slot_marginals(SCORES, soft, 2, ALLOWED)
    assert exact
    # P(a second) = Σ_{b≠a} P(b first) P(a | b gone), summed over the allowed slates
    expected = np.zeros(5)
    for b, a in itertools.permutations(range(4), 2):
        expected[a] += slate_probability(np.array([[b, a]]), SCORES, soft, ALLOWED)[0]
    assert marg[0, :, 1] == pytest.approx(expected, abs=1e-12)


def _exact_slot_marginals(scores: np.ndarray, soft: Exploration, k: int) -> np.ndarray:
    """(I, k) by enumerating every ordered slate (small I only)."""
    n = scores.shape[1]
    out = np.zeros((n, k))
    for slate in itertools.permutations(range(n), k):
        p = slate_probability(np.array([slate]), scores, soft)[0]
        for j, item in enumerate(slate):
            out[item, j] += p
    return out


def test_rao_blackwell_marginals_are_exact_in_expectation_and_tighter() -> None:
    scores = np.array([[2.0, 1.5, 1.0, 0.6, 0.3, 0.0, -0.5]])
    soft = Exploration("softmax", temperature=0.8)
    k = 5
    exact = _exact_slot_marginals(scores, soft, k)
    err = {}
    for rb in (False, True):
        errors = []
        for seed in range(20):
            marg, is_exact = slot_marginals(scores, soft, k, n_sim=200, seed=seed,
                                            rao_blackwell=rb)  # fmt: skip
            assert not is_exact
            np.testing.assert_allclose(marg[0, :, :2], exact[:, :2], atol=1e-12)  # exact slots
            np.testing.assert_allclose(marg[0].sum(axis=0), 1.0, atol=1e-12)
            errors.append(marg[0, :, 2:] - exact[:, 2:])
        e = np.array(errors)
        err[rb] = float(np.sqrt((e**2).mean()))
        # unbiased: the mean of 20 estimates is within a few standard errors of the truth
        assert np.abs(e.mean(axis=0)).max() < 4 * e.std(axis=0).max() / np.sqrt(20) + 1e-12
    assert err[True] < 0.7 * err[False]  # same number of draws, a smaller RMS error
    many, _ = slot_marginals(scores, soft, k, n_sim=20_000, seed=0, rao_blackwell=True)
    np.testing.assert_allclose(many[0], exact, atol=4 * err[True] / 10)  # 100× the draws


def test_rao_blackwell_survives_underflow() -> None:
    # every item after the first two is ~e^-2000 below the top: the left mass underflows
    scores = np.array([[20.0, 19.5, 0.0, -0.1, -0.2, -0.3]])
    soft = Exploration("softmax", temperature=0.01)
    marg, _ = slot_marginals(scores, soft, 4, n_sim=50, seed=0, rao_blackwell=True)
    assert np.isfinite(marg).all()
    np.testing.assert_allclose(marg[0].sum(axis=0), 1.0, atol=1e-9)
    exact = _exact_slot_marginals(scores, soft, 4)
    # exact given each drawn prefix; a prefix of probability 5e-5 is missing from 50 draws
    np.testing.assert_allclose(marg[0], exact, atol=1e-4)


def test_unique_rows_is_numpys_unique() -> None:
    from recloop.ope.policies import _unique_rows

    rng = np.random.default_rng(0)
    base = rng.normal(size=(5, 7))
    base[1, 0] = base[3, 0]  # rows that tie on their first column
    base[:, -1] = -np.inf  # a disallowed item
    z = base[rng.integers(0, 5, 40)]
    unique, inverse = _unique_rows(z)
    expected, expected_inverse = np.unique(z, axis=0, return_inverse=True)
    np.testing.assert_array_equal(unique, expected)
    np.testing.assert_array_equal(inverse, expected_inverse.reshape(-1))
    one, inv = _unique_rows(z[:1])
    np.testing.assert_array_equal(one, z[:1]) and np.testing.assert_array_equal(inv, [0])


def test_greedy_slates_rank_through_the_ranking_module_bit_for_bit() -> None:
    """The logging policies' greedy slates are the ranking module's top-k: identical to the
    stable sort they replaced (ties to the lower item index), ties and masks included."""
    from recloop.ope.policies import _greedy

    rng = np.random.default_rng(0)
    for _ in range(200):
        n, i = int(rng.integers(1, 6)), int(rng.integers(2, 30))
        s = rng.integers(0, 4, size=(n, i)).astype(np.float64)  # many ties
        mask = rng.random((n, i)) < 0.7
        mask[:, 0] = True
        k = int(rng.integers(1, i + 1))
        masked = np.where(mask, s, -np.inf)
        old = np.argsort(-masked, axis=1, kind="stable")[:, :k].astype(np.int64)
        got = _greedy(s, mask, k)
        assert got.dtype == np.int64 and np.array_equal(got, old)
