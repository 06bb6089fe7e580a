"""An environment a generic continuous-control agent can learn in: act with a query vector.

:class:`~recloop.sim.env.RecEnv` gives an agent raw item ids (a history of integers) and asks
for ``K`` independent choices among ``I`` items: SB3's PPO learns nothing there (it returns
what random slates return). :class:`QueryRecEnv` gives the agent what the large model knows
and a small continuous action instead (Wolpertinger-style, Dulac-Arnold et al. 2015):

* **observation**: ``Box((d,))``, the large model's state of the user's history window (a
  fitted sequential model's encoder output, :meth:`window_states`), standardised per
  dimension by the mean and spread of the states of the world's users at their start;
* **action**: ``Box(-1, 1, (d,))``, a query in the model's item-embedding space; the slate is
  the ``K`` unseen items with the largest dot product with the query
  (``item_vectors() @ q``);
* ``residual=True`` (default): ``q = s + reach · σ ⊙ a``, a correction of the large model's
  own query ``s`` (``a = 0`` recommends exactly the greedy model's slate); ``residual=False``:
  ``q = μ + reach · σ ⊙ a``, the agent must find the user on its own.

The users, rewards and endings are the world's (:class:`~recloop.sim.core.UserBatch`), as in
``RecEnv``. Registered ids: ``recloop/MovieLens100K-Query-v0`` and
``recloop/MovieLens1M-Query-v0`` in the EASE world, ``-v1`` of each in the fidelity panel's
default world (``world_name=`` picks any named world); ``gymnasium.make`` fits the world and the greedy
SASRec (the arena's options, leave-one-out training split) once per process; pass
``world=`` and ``model=`` to reuse fitted ones.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from recloop.config import make_config
from recloop.errors import ConfigError, UnknownIdError
from recloop.sim.core import SimConfig, UserBatch
from recloop.sim.world import World, WorldConfig
from recloop.sim.worlds import env_world
from recloop.sim.worlds import world_options as named_options

QUERY_ENV_IDS = {
    "recloop/MovieLens100K-Query-v0": "ml-100k",
    "recloop/MovieLens1M-Query-v0": "ml-1m",
    "recloop/MovieLens100K-Query-v1": "ml-100k",  # v1: the world it was registered with
    "recloop/MovieLens1M-Query-v1": "ml-1m",
    "recloop/MovieLens100K-Query-v2": "ml-100k",  # v2: the panel's default world now
    "recloop/MovieLens1M-Query-v2": "ml-1m",
}


class QueryRecEnv(gym.Env[np.ndarray, np.ndarray]):
    """One simulated user per episode, acting by query vectors (see the module docstring).

    ``model`` is a fitted sequential recommender (``window_states``, ``item_vectors``) on the
    world's item vocabulary. ``info`` carries ``user``, ``slate``, and after a step ``clicked``
    and ``liked``.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - Gymnasium declares it as an attribute

    def __init__(self, world: World, model: Any, config: SimConfig | None = None,
                 residual: bool = True, reach: float = 2.0, **overrides: Any) -> None:  # fmt: skip
        if not hasattr(model, "window_states"):
            raise ConfigError("the query environment needs a fitted sequential model (sasrec, "
                              "gru4rec): its states and item vectors make the action space")  # fmt: skip
        self.items = np.asarray(model.item_vectors(), dtype=np.float64)  # (I, d)
        if self.items.shape[0] != world.n_items:
            raise ConfigError(f"the model knows {self.items.shape[0]} items, the world "
                              f"{world.n_items}: fit both on the same dataset")  # fmt: skip
        if reach <= 0:
            raise ConfigError(f"reach must be positive, not {reach}")
        self.world, self.model = world, model
        self.config = make_config(SimConfig, {**(vars(config) if config else {}), **overrides})
        self.residual, self.reach = residual, reach
        self._batch = UserBatch(world, self.config, 1)
        self._users = world.active_users
        self._slot = np.zeros(1, dtype=np.int64)
        self.mean, self.std = self._state_scale()
        d = self.items.shape[1]
        self.observation_space = spaces.Box(-np.inf, np.inf, (d,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (d,), np.float32)
        self._state = np.zeros(d)

    def _state_scale(self, n: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and spread of the start states of up to ``n`` users."""
        users = self._users[np.linspace(0, len(self._users) - 1, min(n, len(self._users)))
                            .astype(np.int64)]  # fmt: skip
        batch = UserBatch(self.world, self.config, len(users))
        batch.reset(np.arange(len(users)), users)
        states = self.model.window_states(batch.history).astype(np.float64)
        return states.mean(0), states.std(0) + 1e-6

    def _observe(self) -> np.ndarray:
        self._state = self.model.window_states(self._batch.history)[0].astype(np.float64)
        return ((self._state - self.mean) / self.std).astype(np.float32)

    def query(self, action: np.ndarray) -> np.ndarray:
        """The ``(d,)`` query an action stands for (see the module docstring)."""
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if a.shape != self.mean.shape:
            raise ConfigError(f"an action is a ({self.mean.size},) vector, not {a.shape}")
        centre = self._state if self.residual else self.mean
        return centre + self.reach * self.std * a

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
        super().reset(seed=seed)
        user = (options or {}).get("user")
        if user is None:
            user = int(self._users[self.np_random.integers(len(self._users))])
        elif not 0 <= int(user) < self.world.dataset.n_users:
            raise UnknownIdError(
                f"user index {user} out of range 0..{self.world.dataset.n_users - 1}"
            )
        self._batch.reset(self._slot, np.array([int(user)]))
        return self._observe(), {"user": int(user)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._batch.active[0]:
            raise ConfigError("the episode is over; call reset() before step()")
        scores = self.items @ self.query(action)
        slate = self._batch.top_unseen(scores[None, :])
        res = self._batch.step(slate, self.np_random)
        info = {"user": int(self._batch.users[0]), "slate": slate[0],
                "clicked": int(res.clicked[0]), "liked": bool(res.liked[0])}  # fmt: skip
        return (self._observe(), float(res.reward[0]), bool(res.terminated[0]),
                bool(res.truncated[0]), info)  # fmt: skip


@lru_cache(maxsize=2)
def _fitted(data: str, world_name: str = "") -> tuple[World, Any]:
    """The world (EASE, or the one called ``world_name``) and the greedy SASRec of ``data``,
    fitted once per process."""
    from recloop.data import load_dataset
    from recloop.data.split import leave_one_out
    from recloop.models.sequential import SASRec

    ds = load_dataset(data)
    split = leave_one_out(ds)
    model = SASRec(seed=0, max_len=50, batch_size=32, dropout=0.5, patience=20)  # the arena's
    world = World.fit(ds, make_config(WorldConfig, named_options(world_name, {}, {})[0]),
                      progress=False)  # fmt: skip
    return world, model.fit(split.train, valid=split)


def make_query_env(data: str = "ml-100k", world: World | None = None, model: Any = None,
                   world_name: str = "", **options: Any) -> QueryRecEnv:  # fmt: skip
    """The entry point behind the registered query ids (``world_name``: a named world,
    :mod:`recloop.sim.worlds`, and its user dynamics, which ``options`` override)."""
    if world is None or model is None:
        fw, fm = _fitted(data, world_name)
        world, model = world or fw, model or fm
    env_keys = {"config", "residual", "reach"}
    sim = {k: v for k, v in options.items() if k not in env_keys}
    rest = {k: v for k, v in options.items() if k in env_keys}
    return QueryRecEnv(world, model, **rest, **named_options(world_name, {}, sim)[1])


def register_query_envs() -> None:
    """Register the query environments with Gymnasium (idempotent)."""
    for env_id, data in QUERY_ENV_IDS.items():
        if env_id not in gym.registry:
            named = env_world(data, env_id)
            gym.register(env_id, entry_point="recloop.sim.query_env:make_query_env",
                         kwargs={"data": data, **named})  # fmt: skip
