"""Linear bandits: the exploration width by hand, and each agent finds a fixed best arm."""

from __future__ import annotations

import numpy as np
import pytest

from recloop.errors import ConfigError
from recloop.rl.bandits import KINDS, BanditBatch, LinearBandit


def test_confidence_width_matches_the_explicit_features() -> None:
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(7, 3))
    bandit = LinearBandit(phi, kind="linucb")
    hist = np.array([[0, 2, 5], [0, 0, 1], [4, 6, 7]])
    for _ in range(3):  # a non-trivial posterior
        slates = rng.integers(0, 7, (3, 2))
        bandit.learn_batch(BanditBatch(hist, slates, rng.random((3, 2))))
    taste = bandit.taste(hist)
    np.testing.assert_allclose(taste[1], phi[0])  # one item, padding ignored
    x = bandit._features(taste, np.broadcast_to(np.arange(7), (3, 7)))
    explicit = np.einsum("bnd,de,bne->bn", x, bandit.a_inv, x)
    np.testing.assert_allclose(bandit._quadratic(taste, chunk=2), explicit, rtol=1e-10)
    # the ridge solution is the least-squares fit of the rewards seen so far
    assert np.allclose(bandit.a @ bandit.theta, bandit.b)


@pytest.mark.parametrize("kind", KINDS)
def test_each_bandit_finds_the_best_arm(kind: str) -> None:
    """10 arms, one-hot features; arm 7 pays 1 with probability 0.8, the others 0.2."""
    n, best = 10, 7
    p = np.full(n, 0.2)
    p[best] = 0.8
    bandit = LinearBandit(np.eye(n), kind=kind, seed=3, epsilon=0.1)
    rng = np.random.default_rng(1)
    history = np.zeros((16, 1), dtype=np.int64)  # no history: the taste part stays 0
    picks = []
    for _ in range(150):
        slates = bandit.act(history, 1)
        rewards = (rng.random(slates.shape) < p[slates]).astype(float)
        bandit.learn_batch(BanditBatch(history, slates, rewards))
        picks.append(slates[:, 0])
    late = np.concatenate(picks[-50:])
    assert (late == best).mean() >= 0.85, (kind, np.bincount(late, minlength=n))


def test_history_items_are_never_recommended_and_options_are_checked() -> None:
    bandit = LinearBandit(np.eye(5), kind="thompson")
    slates = bandit.act(np.array([[1, 2, 3]] * 20), 2)  # items 0, 1, 2 are known
    assert set(np.unique(slates)) <= {3, 4} and (slates[:, 0] != slates[:, 1]).all()
    with pytest.raises(ConfigError, match="unknown bandit"):
        LinearBandit(np.eye(3), kind="ucb2")
    with pytest.raises(ConfigError, match="finite"):
        LinearBandit(np.array([[np.nan, 1.0]]))
    with pytest.raises(ConfigError, match="epsilon"):
        LinearBandit(np.eye(3), kind="epsilon_greedy", epsilon=1.5)


def test_thompson_draws_follow_each_update_and_float32_matches() -> None:
    """The cached Cholesky factor of A⁻¹ is the current posterior's: after an update the
    draws equal ones computed from scratch with the new A⁻¹; float32 scores are the float64
    ones to single precision, from the same random numbers."""
    rng = np.random.default_rng(3)
    bandit = LinearBandit(rng.normal(size=(30, 4)), kind="thompson", scale=0.7)
    hist = np.array([[1, 2, 0]])

    def by_hand(seed: int) -> np.ndarray:
        chol = np.linalg.cholesky(bandit.a_inv + 1e-12 * np.eye(8))
        thetas = bandit.theta + 0.7 * np.random.default_rng(seed).standard_normal((6, 8)) @ chol.T
        taste = bandit.phi[[0, 1]].mean(0)
        return (thetas[:, :4] + taste * thetas[:, 4:]) @ bandit.phi.T

    before = bandit.sample_scores(hist, 6, np.random.default_rng(0))
    np.testing.assert_allclose(before, by_hand(0), rtol=1e-12)
    slates = rng.integers(0, 30, (4, 2))
    bandit.learn_batch(BanditBatch(np.tile(hist, (4, 1)), slates, rng.random((4, 2))))
    after = bandit.sample_scores(hist, 6, np.random.default_rng(0))
    np.testing.assert_allclose(after, by_hand(0), rtol=1e-12)
    assert not np.allclose(after, before)
    single = bandit.sample_scores(hist, 6, np.random.default_rng(0), np.float32)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, after, rtol=1e-4, atol=1e-5)


def test_tied_arms_go_to_the_lower_index() -> None:
    # before any feedback every one of 300 one-hot arms has the same upper bound: the slate is
    # the lowest-index arms the user does not have, on every CPU
    bandit = LinearBandit(np.eye(300), kind="linucb")
    assert bandit.act(np.zeros((1, 1), dtype=np.int64), 3).tolist() == [[0, 1, 2]]
    assert bandit.act(np.array([[1, 2, 3]]), 3).tolist() == [[3, 4, 5]]  # ids 1-3: arms 0-2


def test_an_uninformed_epsilon_greedy_shows_random_slates() -> None:
    """Before its first reward θ̂ = 0 ties all 300 arms: ε-greedy, even with ε = 0, shows
    seeded random slates rather than arms 0, 1, 2; once a reward arrives it is greedy."""
    history = np.zeros((50, 1), dtype=np.int64)

    def fresh(seed: int) -> LinearBandit:
        return LinearBandit(np.eye(300), kind="epsilon_greedy", epsilon=0.0, seed=seed)

    first = fresh(0).act(history, 3)
    np.testing.assert_array_equal(first, fresh(0).act(history, 3))  # the seed fixes them
    assert len(np.unique(first)) > 100, np.unique(first)  # 150 draws of 300 arms, not [0, 1, 2]
    assert (first[:, 0] != first[:, 1]).all() and (first != fresh(1).act(history, 3)).any()
    bandit = fresh(0)
    bandit.learn_batch(BanditBatch(history[:1], np.array([[5, 6, 7]]), np.zeros((1, 3))))
    assert len(np.unique(bandit.act(history, 1))) > 20  # no reward yet: still uninformed
    bandit.learn_batch(BanditBatch(history[:1], np.array([[5, 6, 7]]), np.array([[0, 1.0, 0]])))
    assert (bandit.act(history, 1) == 6).all()  # informed: the rewarded arm, for every user
