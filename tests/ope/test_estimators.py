"""Off-policy estimators: exact values by hand, unbiasedness on logs with a known answer, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from recloop.errors import ConfigError, DataError
from recloop.ope import (
    clipped_ips,
    direct_method,
    doubly_robust,
    ips,
    pseudo_inverse,
    slate_independent_ips,
    snips,
    switch_dr,
)

# Four rounds, two actions. Target probability of the logged action: 0.8, 0.5, 0.2, 1.0,
# so the weights are w = [1.6, 2.0, 0.4, 4.0].
A = np.array([0, 1, 0, 1])
R = np.array([1.0, 0.0, 0.0, 1.0])
P = np.array([0.5, 0.25, 0.5, 0.25])
PI = np.array([[0.8, 0.2], [0.5, 0.5], [0.2, 0.8], [0.0, 1.0]])
Q = np.array([[0.5, 0.1], [0.4, 0.2], [0.3, 0.6], [0.2, 0.7]])


def test_ips_by_hand() -> None:
    e = ips(A, R, P, PI)
    # w·r = [1.6, 0, 0, 4.0]
    assert e.value == pytest.approx(5.6 / 4)
    # sample sd of [1.6, 0, 0, 4]: squared deviations 0.04 + 1.96 + 1.96 + 6.76 = 10.72
    half = sps.t.ppf(0.975, 3) * np.sqrt(10.72 / 3) / 2
    assert (e.low, e.high) == pytest.approx((1.4 - half, 1.4 + half))
    assert e.ess == pytest.approx(8.0**2 / (1.6**2 + 2.0**2 + 0.4**2 + 4.0**2))
    assert e.max_weight == pytest.approx(4.0)
    assert e.n == 4 and e.method == "ips" and e.ci == "analytic"


def test_clipped_ips_and_snips_by_hand() -> None:
    # weights clipped at 2: [1.6, 2, 0.4, 2] → w·r = [1.6, 0, 0, 2]
    assert clipped_ips(A, R, P, PI, clip=2.0).value == pytest.approx(3.6 / 4)
    assert clipped_ips(A, R, P, PI, clip=2.0).max_weight == pytest.approx(2.0)
    # Σ w r / Σ w = 5.6 / 8
    s = snips(A, R, P, PI)
    assert s.value == pytest.approx(0.7)
    # delta-method terms w (r − 0.7) / mean(w), mean(w) = 2
    terms = np.array([1.6 * 0.3, 2.0 * -0.7, 0.4 * -0.7, 4.0 * 0.3]) / 2.0
    half = sps.t.ppf(0.975, 3) * terms.std(ddof=1) / 2
    assert (s.low, s.high) == pytest.approx((0.7 - half, 0.7 + half))


def test_dm_dr_switch_by_hand() -> None:
    # Σ_a π q per round: 0.42, 0.30, 0.54, 0.70
    assert direct_method(PI, Q).value == pytest.approx(1.96 / 4)
    assert direct_method(PI, Q).ess == 4 and direct_method(PI, Q).max_weight == 0
    # corrections w (r − q(a)): 0.8, −0.4, −0.12, 1.2 → terms 1.22, −0.10, 0.42, 1.90
    assert doubly_robust(A, R, P, PI, Q).value == pytest.approx(3.44 / 4)
    # tau = 2 drops round 3's correction (w = 4): terms 1.22, −0.10, 0.42, 0.70
    assert switch_dr(A, R, P, PI, Q, tau=2.0).value == pytest.approx(2.24 / 4)
    # the limits: tau = inf is DR, tau = 0 is DM
    assert switch_dr(A, R, P, PI, Q, tau=np.inf).value == pytest.approx(3.44 / 4)
    assert switch_dr(A, R, P, PI, Q, tau=0.0).value == pytest.approx(1.96 / 4)


def test_slate_estimators_by_hand() -> None:
    rewards = np.array([[1.0, 0.0], [0.0, 1.0]])
    pscore = np.array([[0.5, 0.5], [0.25, 0.5]])
    target = np.array([[1.0, 0.25], [0.5, 0.5]])
    # w = [[2, 0.5], [2, 1]]: IIPS terms 2·1 + 0.5·0 = 2 and 2·0 + 1·1 = 1
    iips = slate_independent_ips(rewards, pscore, target)
    assert iips.value == pytest.approx(1.5)
    assert iips.ess == pytest.approx(5.5**2 / (4 + 0.25 + 4 + 1) / 2)  # slot weights, per round
    assert iips.max_weight == pytest.approx(2.0)
    # PI: (Σ w − K + 1) · Σ r = 1.5 · 1 and 2 · 1
    assert pseudo_inverse(rewards, pscore, target).value == pytest.approx(1.75)


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    n = 400
    a = rng.integers(0, 2, n)
    r = rng.random(n)
    p = np.full(n, 0.5)
    pi = np.tile([0.3, 0.7], (n, 1))
    e1 = ips(a, r, p, pi, ci="bootstrap", n_boot=200, seed=3)
    e2 = ips(a, r, p, pi, ci="bootstrap", n_boot=200, seed=3)
    assert e1 == e2 and e1.ci == "bootstrap"
    assert e1.low < e1.value < e1.high
    # the bootstrap and analytic intervals agree for a mean of 400 terms
    t = ips(a, r, p, pi)
    assert e1.high - e1.low == pytest.approx(t.high - t.low, rel=0.2)


# --------------------------------------------------------------------------- known answers


def _bandit_world(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contexts × actions: true mean rewards, logging and target distributions."""
    rng = np.random.default_rng(seed)
    n_ctx, n_act = 5, 4
    q = rng.uniform(0.05, 0.9, size=(n_ctx, n_act))
    mu = rng.dirichlet(np.ones(n_act) * 2.0, size=n_ctx)
    mu = 0.8 * mu + 0.2 / n_act  # every action possible
    pi = rng.dirichlet(np.ones(n_act) * 0.5, size=n_ctx)
    return q, mu, pi


def _logs(q: np.ndarray, mu: np.ndarray, pi: np.ndarray, n: int, rng: np.random.Generator):
    ctx = rng.integers(0, q.shape[0], n)
    u = rng.random(n)[:, None]
    act = (u > np.cumsum(mu[ctx], axis=1)).sum(axis=1)
    rew = (rng.random(n) < q[ctx, act]).astype(float)
    return act, rew, mu[ctx, act], pi[ctx], ctx


def test_estimators_are_unbiased_and_their_intervals_cover() -> None:
    q, mu, pi = _bandit_world(0)
    truth = float(np.mean(np.sum(pi * q, axis=1)))  # contexts are uniform
    wrong_q = np.clip(q + 0.25, 0, 1)  # a biased reward model
    rng = np.random.default_rng(1)
    reps, n = 300, 200
    values: dict[str, list[float]] = {"ips": [], "dr": [], "dm": [], "snips": []}
    covered = 0
    for _ in range(reps):
        act, rew, ps, dist, ctx = _logs(q, mu, pi, n, rng)
        e = ips(act, rew, ps, dist)
        values["ips"].append(e.value)
        covered += e.covers(truth)
        values["dr"].append(doubly_robust(act, rew, ps, dist, wrong_q[ctx]).value)
        values["dm"].append(direct_method(dist, wrong_q[ctx]).value)
        values["snips"].append(snips(act, rew, ps, dist).value)
    for name in ("ips", "dr"):
        v = np.array(values[name])
        se = v.std(ddof=1) / np.sqrt(reps)
        assert abs(v.mean() - truth) < 3.5 * se, name  # unbiased, even with a wrong model
    # the band has power: DM with the wrong reward model is far outside it
    dm = np.array(values["dm"])
    assert abs(dm.mean() - truth) > 10 * dm.std(ddof=1) / np.sqrt(reps)
    # SNIPS is consistent: its bias at n = 200 is small next to its spread
    sn = np.array(values["snips"])
    assert abs(sn.mean() - truth) < 0.25 * sn.std(ddof=1)
    assert 0.88 <= covered / reps <= 0.99


def _indicator(slate: tuple[int, ...], n_items: int) -> np.ndarray:
    v = np.zeros((n_items, len(slate)))
    v[list(slate), np.arange(len(slate))] = 1.0
    return v.ravel()


@pytest.mark.parametrize("logging", ["independent", "uniform"])
def test_pi_closed_forms_match_the_numerical_pseudo_inverse(logging: str) -> None:
    """PI's factor is θ_πᵀ Γ_μ⁺ 1_s; check the closed forms against numpy's pinv."""
    rng = np.random.default_rng(5)
    m, k = 5, 3
    if logging == "independent":
        mu = rng.dirichlet(np.ones(m), size=k).T  # slot k draws item a w.p. mu[a, k]
        slates = list(itertools.product(range(m), repeat=k))
        probs = [float(np.prod(mu[list(s), np.arange(k)])) for s in slates]
    else:
        mu = np.full((m, k), 1.0 / m)
        slates = list(itertools.permutations(range(m), k))
        probs = [1.0 / len(slates)] * len(slates)
    gamma = sum(
        p * np.outer(_indicator(s, m), _indicator(s, m)) for p, s in zip(probs, slates, strict=True)
    )
    pinv = np.linalg.pinv(gamma)
    for _ in range(5):
        # the target: a random mixture of four slates without repeats; theta = its slot marginals
        mix = rng.dirichlet(np.ones(4))
        theta = np.zeros((m, k))
        for w in mix:
            theta[rng.permutation(m)[:k], np.arange(k)] += w
        s = slates[rng.integers(len(slates))]
        expected = theta.ravel() @ pinv @ _indicator(s, m)
        cols = np.arange(k)
        reward = np.zeros((1, k))
        reward[0, 0] = 1.0  # total reward 1, so the estimate is the factor itself
        got = pseudo_inverse(
            reward,
            mu[list(s), cols][None, :],
            theta[list(s), cols][None, :],
            logging=logging,
            target_anywhere=theta[list(s)].sum(axis=1)[None, :],
            n_items=m,
        ).value
        assert got == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("logging", ["independent", "uniform"])
def test_slate_estimators_are_unbiased(logging: str) -> None:
    """Additive per-slot rewards; a target that mixes two slates; two logging policies."""
    rng = np.random.default_rng(2)
    n_items, k = 6, 3
    cols = np.arange(k)
    q = rng.uniform(0.05, 0.6, size=(n_items, k))  # click rate of item a at slot j
    slates = np.array([[0, 1, 2], [3, 1, 5]])  # the target shows slate 0 w.p. 0.7, else slate 1
    probs = np.array([0.7, 0.3])
    truth = float(sum(p * q[s, cols].sum() for p, s in zip(probs, slates, strict=True)))
    marg = np.zeros((n_items, k))  # target marginal of item a at slot j
    for p, s in zip(probs, slates, strict=True):
        marg[s, cols] += p
    mu = rng.dirichlet(np.ones(n_items) * 3, size=k).T  # the independent logging policy
    reps, n = 200, 300
    est: dict[str, list[float]] = {"iips": [], "pi": []}
    for _ in range(reps):
        if logging == "uniform":
            logged = np.argsort(rng.random((n, n_items)), axis=1)[:, :k]
            pscore = np.full((n, k), 1.0 / n_items)
        else:
            u = rng.random((n, k))
            logged = np.stack(
                [(u[:, j, None] > np.cumsum(mu[:, j])).sum(axis=1) for j in cols], axis=1
            )
            pscore = mu[logged, cols]
        rew = (rng.random((n, k)) < q[logged, cols]).astype(float)
        target = marg[logged, cols]
        anywhere = marg.sum(axis=1)[logged]
        est["iips"].append(slate_independent_ips(rew, pscore, target).value)
        est["pi"].append(
            pseudo_inverse(
                rew, pscore, target, logging=logging, target_anywhere=anywhere, n_items=n_items
            ).value
        )
    for name, v in est.items():
        arr = np.array(v)
        assert abs(arr.mean() - truth) < 3.5 * arr.std(ddof=1) / np.sqrt(reps), name


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pscore": [0.5, 0.0, 0.5, 0.25]}, "pscore must lie in \\(0, 1\\], but round 1"),
        ({"pscore": [0.5, 1.5, 0.5, 0.25]}, "pscore must lie in \\(0, 1\\]"),
        ({"rewards": [1.0, 0.0, 0.0]}, "pscore has 4 entries but the log has 3"),
        ({"rewards": [1.0, np.nan, 0.0, 1.0]}, "rewards contains NaN"),
        ({"target_dist": [[0.8, 0.3], [0.5, 0.5], [0.2, 0.8], [0.0, 1.0]]}, "row 0 sums to 1.1"),
        ({"target_dist": PI[:3]}, "target_dist must have shape"),
        ({"actions": [0, 1, 2, 1]}, "actions must index the 2 columns"),
        ({"actions": [0.0, 1.0, 0.0, 1.0]}, "actions must be integer"),
        ({"rewards": []}, "rewards is empty"),
    ],
)
def test_bad_inputs_name_the_problem(kwargs: dict, message: str) -> None:
    args = {"actions": A, "rewards": R, "pscore": P, "target_dist": PI} | kwargs
    with pytest.raises(DataError, match=message):
        ips(**args)


def test_bad_options_and_models() -> None:
    with pytest.raises(DataError, match="q_hat must have the shape of target_dist"):
        doubly_robust(A, R, P, PI, Q[:, :1])
    with pytest.raises(ConfigError, match="clip must be positive"):
        clipped_ips(A, R, P, PI, clip=0)
    with pytest.raises(ConfigError, match="tau must be non-negative"):
        switch_dr(A, R, P, PI, Q, tau=-1)
    with pytest.raises(ConfigError, match="ci must be 'analytic' or 'bootstrap'"):
        ips(A, R, P, PI, ci="exact")
    with pytest.raises(ConfigError, match="confidence must lie"):
        ips(A, R, P, PI, confidence=1.0)
    with pytest.raises(DataError, match="probability 0 to every logged action"):
        snips(
            A,
            R,
            P,
            np.tile([0.0, 1.0], (4, 1)) * (A[:, None] == 0)
            + np.tile([1.0, 0.0], (4, 1)) * (A[:, None] == 1),
        )
    with pytest.raises(DataError, match="slate pscore must have the shape of rewards"):
        pseudo_inverse(np.ones((2, 3)), np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(DataError, match="slate pscore must lie in \\(0, 1\\]"):
        slate_independent_ips(np.ones((1, 2)), np.array([[0.5, 0.0]]), np.ones((1, 2)))
    with pytest.raises(ConfigError, match="logging='uniform' needs target_anywhere"):
        pseudo_inverse(np.ones((1, 2)), np.full((1, 2), 0.5), np.ones((1, 2)), logging="uniform")
    with pytest.raises(DataError, match="every slot marginal is 1 / n_items"):
        pseudo_inverse(np.ones((1, 2)), np.full((1, 2), 0.5), np.full((1, 2), 0.5),
                       logging="uniform", target_anywhere=np.ones((1, 2)), n_items=4)  # fmt: skip
    with pytest.raises(DataError, match="target_anywhere must be at least"):
        pseudo_inverse(np.ones((1, 2)), np.full((1, 2), 0.25), np.full((1, 2), 0.5),
                       logging="uniform", target_anywhere=np.full((1, 2), 0.1), n_items=4)  # fmt: skip
    with pytest.raises(DataError, match="relative error is undefined"):
        ips(A, R, P, PI).relative_error(0.0)
