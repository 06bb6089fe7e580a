"""Stable-Baselines3 on the simulator: PPO trained on :class:`~recloop.sim.RecEnv` as it is.

The environment goes to SB3 through its standard vectorisation only (``make_vec_env``, a
``DummyVecEnv`` of ``RecEnv``); the ``Dict`` observation takes SB3's ``MultiInputPolicy``
and the ``MultiDiscrete([I] * K)`` slate action its factorised categorical head. SB3 knows
nothing of recommendation: it may propose repeated or already-seen items, which the
environment shows and never clicks, as documented. That is the point of the check.

Needs the ``rl`` extra: ``pip install -c constraints.txt -e ".[rl]"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recloop.errors import ConfigError
from recloop.progress import progress_bar
from recloop.rl.agents import Agent
from recloop.sim.core import SimConfig, UserBatch, Users
from recloop.sim.env import RecEnv, observe
from recloop.sim.world import World


def _sb3() -> Any:
    try:
        import stable_baselines3
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ConfigError(
            "PPO needs Stable-Baselines3: pip install -c constraints.txt -e '.[rl]'"
        ) from err
    return stable_baselines3


class SB3Agent(Agent):
    """A trained SB3 policy acting on the simulator's observations (simulator only)."""

    name = "ppo_sb3"
    learns_from_feedback = True  # by PPO, in the arena

    def __init__(self, model: Any, slate_size: int) -> None:
        super().__init__(slate_size)
        self.model = model

    def act(self, users: Users, rng: np.random.Generator, explore: bool = False) -> np.ndarray:
        if not isinstance(users, UserBatch):
            raise ConfigError("the SB3 agent acts on simulator observations (a UserBatch)")
        obs = observe(users, np.arange(users.size))
        actions, _ = self.model.predict(obs, deterministic=not explore)
        return np.asarray(actions, dtype=np.int64).reshape(users.size, self.k)


def train_ppo(world: World, config: SimConfig, steps: int, seed: int, n_envs: int = 8,
              progress: bool = False, **ppo: Any) -> SB3Agent:  # fmt: skip
    """Train SB3's PPO for ``steps`` environment steps on ``n_envs`` copies of ``RecEnv``.

    ``ppo`` overrides PPO's options (defaults: ``n_steps=256``, ``batch_size=256``, SB3's
    other defaults).
    """
    sb3 = _sb3()
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(lambda: RecEnv(world, config), n_envs=n_envs, seed=seed)
    options = {"n_steps": 256, "batch_size": 256, "verbose": 0, "device": "cpu", **ppo}
    model = sb3.PPO("MultiInputPolicy", env, seed=seed, **options)

    with progress_bar(steps, "training ppo_sb3", progress) as bar:

        class Advance(BaseCallback):
            def _on_step(self) -> bool:
                bar.advance(n_envs)
                return True

        model.learn(total_timesteps=steps, callback=Advance())
    return SB3Agent(model, config.slate_size)
