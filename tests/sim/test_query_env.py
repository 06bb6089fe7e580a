"""The query-vector environment: standard checkers, and its action means what it says."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from recloop.data.split import leave_one_out
from recloop.errors import ConfigError
from recloop.models.sequential import SASRec
from recloop.sim import QUERY_ENV_IDS, QueryRecEnv, World
from recloop.sim.core import top_unseen
from recloop.testing import toy_dataset


@pytest.fixture(scope="module")
def parts() -> tuple[World, SASRec]:
    ds = toy_dataset(n_users=40)
    split = leave_one_out(ds)
    model = SASRec(seed=0, max_len=10, dim=16, epochs=3).fit(split.train, valid=split)
    return World.fit(ds, progress=False), model


def test_the_environment_passes_gymnasiums_and_sb3s_checkers(parts) -> None:  # type: ignore[no-untyped-def]
    from gymnasium.utils.env_checker import check_env

    world, model = parts
    check_env(QueryRecEnv(world, model, slate_size=3, session_cap=5), skip_render_check=True)
    sb3 = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3.check_env(QueryRecEnv(world, model, residual=False, slate_size=3, session_cap=5))
    assert set(QUERY_ENV_IDS) <= set(gym.registry)


def test_a_zero_residual_action_is_the_large_models_greedy_slate(parts) -> None:  # type: ignore[no-untyped-def]
    world, model = parts
    env = QueryRecEnv(world, model, slate_size=3, session_cap=5)
    obs, info = env.reset(seed=0, options={"user": 2})
    assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
    batch = env._batch
    with torch.inference_mode():
        greedy = model.token_scorer()(torch.from_numpy(batch.history[:, -10:].copy())).numpy()
    want = top_unseen(greedy, batch.seen, 3)[0]
    _, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert info["slate"].tolist() == want.tolist()
    # a non-residual action is a query around the states' mean: the extreme corners differ
    env2 = QueryRecEnv(world, model, residual=False, slate_size=3, session_cap=5)
    env2.reset(seed=0, options={"user": 2})
    a = env2.query(np.ones(env2.action_space.shape))
    b = env2.query(-np.ones(env2.action_space.shape))
    np.testing.assert_allclose((a + b) / 2, env2.mean)
    with pytest.raises(ConfigError, match="action"):
        env2.query(np.zeros(3))
