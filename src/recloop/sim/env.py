"""The Gymnasium environment over a learned :class:`~recloop.sim.world.World`, and its batched twin.

``RecEnv`` is a standard ``gymnasium.Env`` (one user per episode); ``BatchRecEnv`` steps many
users at once through the same :class:`~recloop.sim.core.UserBatch` code. Registered ids:
``recloop/MovieLens100K-v0`` and ``recloop/MovieLens1M-v0`` in the EASE world, and ``-v1`` of
each in the fidelity panel's default world (three GRU4Rec seeds, the sequential users;
``world_name=`` picks any named world). ``gymnasium.make`` fits the world once per process
and dataset; pass ``world=`` to reuse one you fitted.

Observation (``Dict``):

* ``history``: ``(history_len,)`` int64, the user's most recent items as ``index + 1``,
  oldest first, left-padded with 0;
* ``user``: ``(G + 3,)`` float32, the recent-genre taste (one value per genre, in [0, 1]),
  the streak of steps without a like / 10, the session progress ``step / session_cap``,
  and ``log1p(history length) / 10``.

Action: ``MultiDiscrete([I] * K)``, a slate of ``K`` item indices (repeats are ignored after
their first position; see :mod:`recloop.sim.core`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from recloop.config import make_config
from recloop.errors import ConfigError, UnknownIdError
from recloop.sim.core import SimConfig, StepResult, UserBatch
from recloop.sim.world import World, WorldConfig
from recloop.sim.worlds import env_world
from recloop.sim.worlds import world_options as named_options

ENV_IDS = {"recloop/MovieLens100K-v0": "ml-100k", "recloop/MovieLens1M-v0": "ml-1m",
           "recloop/MovieLens100K-v1": "ml-100k", "recloop/MovieLens1M-v1": "ml-1m",
           "recloop/MovieLens100K-v2": "ml-100k", "recloop/MovieLens1M-v2": "ml-1m"}  # fmt: skip

#: Version 2 of an id runs in the fidelity panel's default world for its dataset
#: (:func:`recloop.sim.worlds.default_world_of`, its models and user dynamics); version 1 in
#: the world it was registered with (ML-100K: ``gru4rec_x3``, the genre dynamics set by hand);
#: version 0 keeps the EASE world (:func:`recloop.sim.worlds.env_world`).


def observation_space(world: World, config: SimConfig) -> spaces.Dict:
    g = world.dataset.genre_matrix()[0].shape[1]
    longest = int(np.diff(world.history.indptr).max(initial=0)) + config.session_cap
    high = np.r_[np.ones(g), config.session_cap / 10.0, 1.0, np.log1p(longest) / 10.0]
    return spaces.Dict(
        {
            "history": spaces.Box(0, world.n_items, (config.history_len,), dtype=np.int64),
            "user": spaces.Box(np.zeros(g + 3, np.float32), high.astype(np.float32)),
        }
    )


def observe(batch: UserBatch, slots: np.ndarray) -> dict[str, np.ndarray]:
    """The observations of ``slots`` (see the module docstring)."""
    cfg = batch.config
    extra = np.stack(
        [
            batch.streak[slots] / 10.0,
            batch.steps[slots] / cfg.session_cap,
            np.log1p(batch.n_seen[slots]) / 10.0,
        ],
        1,
    )
    return {
        "history": batch.history[slots].copy(),
        "user": np.concatenate([batch.taste[slots], extra], 1).astype(np.float32),
    }


def _info(batch: UserBatch, slots: np.ndarray, res: StepResult | None) -> dict[str, Any]:
    info: dict[str, Any] = {"user": batch.users[slots].copy()}
    if res is not None:
        info |= {"clicked": res.clicked[slots], "liked": res.liked[slots],
                 "click_prob": res.click_prob[slots]}  # fmt: skip
    return info


class RecEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """One simulated user per episode (see the module docstring).

    ``reset(seed=..., options={"user": u})`` starts user ``u``'s session; without it the user
    is drawn uniformly from the dataset's users with a logged history.
    ``info`` carries ``user``, and after a step ``clicked`` (item index or −1), ``liked`` and
    ``click_prob`` (the probability that some slate item was clicked).
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium declares it as an attribute

    def __init__(self, world: World, config: SimConfig | None = None, **overrides: Any) -> None:
        self.world = world
        self.config = make_config(SimConfig, {**(vars(config) if config else {}), **overrides})
        self._batch = UserBatch(world, self.config, 1)
        self.observation_space = observation_space(world, self.config)  # type: ignore[assignment]
        self.action_space = spaces.MultiDiscrete([world.n_items] * self.config.slate_size)
        self._users = world.active_users
        self._slot = np.zeros(1, dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:  # fmt: skip
        super().reset(seed=seed)
        user = (options or {}).get("user")
        if user is None:
            user = int(self._users[self.np_random.integers(len(self._users))])
        elif not 0 <= int(user) < self.world.dataset.n_users:
            raise UnknownIdError(
                f"user index {user} out of range 0..{self.world.dataset.n_users - 1}"
            )
        self._batch.reset(self._slot, np.array([int(user)]))
        obs = observe(self._batch, self._slot)
        return {k: v[0] for k, v in obs.items()}, {k: v[0] for k, v in _info(
            self._batch, self._slot, None).items()}  # fmt: skip

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if not self._batch.active[0]:
            raise ConfigError("the episode is over; call reset() before step()")
        slate = np.asarray(action).reshape(1, -1)
        res = self._batch.step(slate, self.np_random)
        obs = observe(self._batch, self._slot)
        info = {k: v[0] for k, v in _info(self._batch, self._slot, res).items()}
        return ({k: v[0] for k, v in obs.items()}, float(res.reward[0]), bool(res.terminated[0]),
                bool(res.truncated[0]), info)  # fmt: skip


class BatchRecEnv:
    """``n`` users stepped at once; a finished slot restarts with a new user on the next step.

    ``reset(seed)`` → observations of all slots; ``step(slates (n, K))`` → ``(obs, reward,
    terminated, truncated, info)`` arrays of length ``n``, the same transitions ``RecEnv``
    produces one at a time. Slots whose session ended in step ``t`` hold that final
    observation; at step ``t + 1`` they start a new user and ignore their slate row
    (``info["reset"]`` marks them), Gymnasium's "next-step" autoreset.
    """

    def __init__(self, world: World, n: int, config: SimConfig | None = None,
                 **overrides: Any) -> None:  # fmt: skip
        self.world = world
        self.config = make_config(SimConfig, {**(vars(config) if config else {}), **overrides})
        self.batch = UserBatch(world, self.config, n)
        self.n = n
        self._users = world.active_users
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None = None, users: np.ndarray | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:  # fmt: skip
        """Start ``n`` sessions: of ``users`` (n user indices) if given, else of random users.

        Users drawn later, when a slot restarts, always come from the generator.
        """
        self.rng = np.random.default_rng(seed)
        slots = np.arange(self.n)
        if users is None:
            users = self._draw(self.n)
        else:
            users = np.asarray(users, dtype=np.int64)
            if users.shape != (self.n,):
                raise ConfigError(f"users must hold {self.n} user indices, not {users.shape}")
            if ((users < 0) | (users >= self.world.dataset.n_users)).any():
                raise UnknownIdError(f"user index out of range 0..{self.world.dataset.n_users - 1}")
        self.batch.reset(slots, users)
        return observe(self.batch, slots), _info(self.batch, slots, None)

    def _draw(self, n: int) -> np.ndarray:
        return self._users[self.rng.integers(len(self._users), size=n)]

    def step(self, slates: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray,
                                                np.ndarray, dict[str, Any]]:  # fmt: skip
        restart = np.flatnonzero(~self.batch.active)
        if len(restart):
            self.batch.reset(restart, self._draw(len(restart)))
            self.batch.active[restart] = False  # they sit this step out
        res = self.batch.step(slates, self.rng)
        self.batch.active[restart] = True
        slots = np.arange(self.n)
        info = _info(self.batch, slots, res)
        info["reset"] = np.isin(slots, restart)
        return observe(self.batch, slots), res.reward, res.terminated, res.truncated, info


@lru_cache(maxsize=4)
def cached_world(data: str, world_items: tuple[tuple[str, Any], ...]) -> World:
    """A world fitted once per process for a dataset name and world options."""
    from recloop.data import load_dataset

    return World.fit(load_dataset(data), WorldConfig(**dict(world_items)), progress=False)


def make_env(data: str = "ml-100k", world: World | None = None,
             world_options: dict[str, Any] | None = None, world_name: str = "",
             **sim: Any) -> RecEnv:  # fmt: skip
    """The entry point behind the registered ids: a :class:`RecEnv` on ``data``, in the
    world called ``world_name`` (:mod:`recloop.sim.worlds`; its user dynamics too) if given,
    with ``world_options`` and ``sim`` overriding it."""
    options, sim = named_options(world_name, world_options or {}, sim)
    if world is None:
        wc = make_config(WorldConfig, options)
        world = cached_world(data, tuple(sorted(vars(wc).items())))
    return RecEnv(world, **sim)


def register_envs() -> None:
    """Register the MovieLens environments with Gymnasium (idempotent)."""
    for env_id, data in ENV_IDS.items():
        if env_id not in gym.registry:
            named = env_world(data, env_id)
            gym.register(env_id, entry_point="recloop.sim.env:make_env",
                         kwargs={"data": data, **named})  # fmt: skip
