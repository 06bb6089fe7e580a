"""The MOPO-style penalty: the ensemble members' disagreement on a slate's click probability."""

from __future__ import annotations

import numpy as np
import pytest

from recloop.errors import ConfigError
from recloop.sim.core import SimConfig, UserBatch
from recloop.sim.uncertainty import click_disagreement, slate_utilities
from recloop.sim.world import World, WorldConfig
from recloop.testing import toy_dataset


def test_click_disagreement_by_hand() -> None:
    # member A: one item of utility 0 → P(click) 1/2; member B: utility log 3 → 3/4;
    # the other slot is not clickable. std (population) of (1/2, 3/4) = 1/8.
    u = np.array([[[0.0, -np.inf]], [[np.log(3.0), -np.inf]]]).transpose(1, 0, 2)  # (1, 2, 2)
    np.testing.assert_allclose(click_disagreement(u), [0.125])
    # members that agree do not disagree; nothing clickable: P = 0 for all
    same = np.full((2, 3, 4), 0.7)
    np.testing.assert_allclose(click_disagreement(same), [0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(click_disagreement(np.full((1, 2, 3), -np.inf)), [0.0])
    # the gather: member logits at the slate, less boredom, -inf where not clickable
    logits = np.arange(2 * 2 * 5, dtype=np.float64).reshape(2, 2, 5)
    got = slate_utilities(logits, np.array([[4, 0], [1, 1]]), np.full((2, 2), 0.5),
                          np.array([[True, False], [True, True]]))  # fmt: skip
    np.testing.assert_allclose(got[0], [[3.5, -np.inf], [8.5, -np.inf]])
    np.testing.assert_allclose(got[1], [[10.5, 10.5], [15.5, 15.5]])


@pytest.fixture(scope="module")
def pair() -> World:
    cfg = WorldConfig(models=("gru4rec", "gru4rec"), negatives=0, epochs=2)
    return World.fit(toy_dataset(n_users=40), cfg, progress=False)


def test_the_penalty_takes_lambda_times_the_members_disagreement_off_each_reward(pair) -> None:  # type: ignore[no-untyped-def]
    base = SimConfig(slate_size=4, history_len=50, boredom=0.0, leave_bias=-20.0)
    lam = 3.0
    plain, penalised = UserBatch(pair, base, 6), UserBatch(pair, _with(base, lam), 6)
    users = np.arange(6)
    for b in (plain, penalised):
        b.reset(np.arange(6), users)
    members = [pair.member(j) for j in range(2)]
    np.testing.assert_allclose(penalised.member_logits[:, 1], members[1].logits(users), atol=1e-5)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    took = 0.0
    for _ in range(4):
        slates = plain.top_unseen(plain.logits)
        # what the penalty must be, from the member worlds themselves
        util = np.stack([penalised.member_logits[np.arange(6)[:, None], j, slates]
                         for j in range(2)], 1).astype(np.float64)  # fmt: skip
        clickable = ~penalised.seen[np.arange(6)[:, None], slates]
        p = 1.0 - np.stack([1.0 / (1.0 + np.exp(np.where(clickable, util[:, j], -np.inf)).sum(1))
                            for j in range(2)], 1)  # fmt: skip
        active = plain.active.copy()
        a, b = plain.step(slates, rng_a), penalised.step(slates, rng_b)
        np.testing.assert_array_equal(a.clicked, b.clicked)  # the penalty changes no click
        want = np.where(active, lam * p.std(1), 0.0)
        np.testing.assert_allclose(a.reward - b.reward, want, rtol=1e-4, atol=1e-6)
        took += want.sum()
        clicked = np.flatnonzero(b.clicked >= 0)
        for j in range(2):  # the members follow the clicks, as the world does
            np.testing.assert_allclose(penalised.member_logits[clicked, j],
                                       members[j].window_logits(penalised.history[clicked]),
                                       atol=1e-5)  # fmt: skip
    assert took > 0.0  # two fits of a toy world disagree somewhere


def _with(cfg: SimConfig, lam: float) -> SimConfig:
    from dataclasses import replace

    return replace(cfg, uncertainty_penalty=lam)


def test_the_penalty_needs_an_ensemble() -> None:
    world = World.fit(toy_dataset(n_users=40), progress=False)  # EASE alone
    with pytest.raises(ConfigError, match="2\\+ members"):
        UserBatch(world, SimConfig(uncertainty_penalty=1.0), 2)
    with pytest.raises(ConfigError, match="uncertainty_penalty"):
        SimConfig(uncertainty_penalty=float("nan"))
