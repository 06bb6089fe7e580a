"""UserBatch.fork and utility: copies start in their slot's exact state."""

from __future__ import annotations

import numpy as np
import pytest

from recloop.data import load_dataset
from recloop.sim.core import SimConfig, UserBatch
from recloop.sim.world import World


@pytest.fixture(scope="module")
def world() -> World:
    return World.fit(load_dataset("ml-100k"), progress=False)


def test_fork_copies_state_and_steps_independently(world) -> None:
    sim = SimConfig(slate_size=3, leave_bias=0.0)
    batch = UserBatch(world, sim, 3)
    batch.reset(np.arange(3), world.active_users[:3])
    batch.step(batch.top_unseen(batch.logits), np.random.default_rng(0))  # move off the start
    forks = batch.fork(np.array([2, 0]), 2)
    assert forks.size == 4 and forks.users.tolist() == [batch.users[2]] * 2 + [batch.users[0]] * 2
    for name in ("logits", "seen", "history", "taste", "streak", "steps", "active"):
        assert np.array_equal(getattr(forks, name)[0], getattr(batch, name)[2]), name
        assert np.array_equal(getattr(forks, name)[3], getattr(batch, name)[0]), name
    before = batch.seen.copy()
    forks.step(forks.top_unseen(forks.logits), np.random.default_rng(1))
    assert np.array_equal(batch.seen, before)  # stepping the copies leaves the original alone


def test_utility_matches_the_step_rule(world) -> None:
    sim = SimConfig(slate_size=1, leave_bias=0.0)
    batch = UserBatch(world, sim, 2)
    batch.reset(np.arange(2), world.active_users[:2])
    items = np.array([[5, 40, 300], [7, 8, 9]])
    rep = batch.repetition(np.arange(2), items)
    expected = batch.logits[np.arange(2)[:, None], items] - sim.boredom * rep
    assert np.allclose(batch.utility()[np.arange(2)[:, None], items], expected, atol=1e-5)
