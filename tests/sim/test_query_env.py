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


def test_version_1_query_ids_take_the_default_worlds_users(parts) -> None:  # type: ignore[no-untyped-def]
    world, model = parts
    env = gym.make("recloop/MovieLens100K-Query-v1", world=world, model=model, slate_size=3,
                   reach=1.0)  # fmt: skip
    inner = env.unwrapped
    assert inner.config.leave_returning and inner.config.leave_shape == "real"  # type: ignore[attr-defined]
    assert inner.config.slate_size == 3 and inner.reach == 1.0  # type: ignore[attr-defined]
    env.reset(seed=0)
    env.step(env.action_space.sample())


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


@pytest.mark.slow
def test_ppo_learns_the_query_action_on_a_toy_chain() -> None:
    """SB3's PPO, standard MLP policy and wrappers only, learns to act by query vectors on a
    known rule (users watch the next item of a chain): from the catalogue-mean query
    (``residual=False``, a = 0) it must close at least half the gap to the large model's own
    greedy slate and beat random actions. Measured: random 0.91, a = 0 1.00, greedy 1.10,
    PPO 1.10 after 20,000 steps and 1.16 after 40,000 (1,000 evaluation sessions)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from recloop.sim.world import WorldConfig
    from recloop.testing import chain_dataset

    torch.manual_seed(0)
    ds = chain_dataset(n_users=200, n_items=60, length=16)
    world = World.fit(ds, WorldConfig(models=("gru4rec",), negatives=0, epochs=20),
                      progress=False)  # fmt: skip
    split = leave_one_out(ds)
    model = SASRec(seed=0, max_len=20, dim=16, epochs=30, patience=5).fit(split.train, valid=split)
    opts = {"slate_size": 5, "session_cap": 10, "history_len": 20}

    def mean_return(policy, residual: bool = False, n: int = 1000) -> float:  # type: ignore[no-untyped-def]
        env = QueryRecEnv(world, model, residual=residual, **opts)
        total = 0.0
        for i in range(n):
            obs, _ = env.reset(seed=10_000 + i)
            done = False
            while not done:
                obs, r, term, trunc, _ = env.step(policy(obs))
                total += r
                done = term or trunc
        return total / n

    d = model.item_vectors().shape[1]
    rng = np.random.default_rng(0)
    zero = mean_return(lambda o: np.zeros(d))
    greedy = mean_return(lambda o: np.zeros(d), residual=True)
    random = mean_return(lambda o: rng.uniform(-1, 1, d))
    assert greedy > zero > random  # the toy separates them
    venv = make_vec_env(lambda: QueryRecEnv(world, model, residual=False, **opts), n_envs=8,
                        seed=0)  # fmt: skip
    ppo = PPO("MlpPolicy", venv, seed=0, n_steps=128, batch_size=256, ent_coef=0.0, verbose=0,
              device="cpu", policy_kwargs={"net_arch": [64, 64], "log_std_init": -1.0})  # fmt: skip
    ppo.learn(40_000)
    learned = mean_return(lambda o: ppo.predict(o, deterministic=True)[0])
    print(f"random {random:.3f}, a = 0 {zero:.3f}, greedy {greedy:.3f}, PPO {learned:.3f}")
    assert learned >= zero + 0.5 * (greedy - zero), (random, zero, greedy, learned)
