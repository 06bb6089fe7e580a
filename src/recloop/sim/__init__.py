"""A user simulator learned from the logs, as Gymnasium environments.

* :class:`World`: the response model (calibrated clicks, expected ratings), fitted on a dataset;
* :class:`UserBatch` / :class:`SimConfig`: the users' dynamics, batched;
* :class:`RecEnv`: a ``gymnasium.Env``; :class:`BatchRecEnv`: many users at once;
* :class:`QueryRecEnv`: the same users, observed through a large model's state and acted on
  with a continuous query vector (what a generic continuous-control agent can learn in);
* :class:`ReplayBatch`: the real sessions replayed behind the same interface (logged-data
  mode), so an agent trains and is evaluated on logs with the simulator's code.

Importing this module registers ``recloop/MovieLens100K-v0`` and ``recloop/MovieLens1M-v0``
(the EASE world), their ``-v1`` (the sequential world each was registered with), their
``-v2`` (the fidelity panel's default world now, :func:`recloop.sim.worlds.default_world_of`),
and the query variants of each, ``recloop/MovieLens100K-Query-v0`` ... ``-v2`` and
``recloop/MovieLens1M-Query-v0`` ... ``-v2``;
``gymnasium.make("recloop.sim:recloop/MovieLens100K-v0")`` imports it for you.
"""

from recloop.sim.core import SimConfig, StepResult, UserBatch
from recloop.sim.env import ENV_IDS, BatchRecEnv, RecEnv, make_env, register_envs
from recloop.sim.query_env import QUERY_ENV_IDS, QueryRecEnv, register_query_envs
from recloop.sim.replay import ReplayBatch
from recloop.sim.world import RatingModel, World, WorldConfig, expected_calibration_error

register_envs()
register_query_envs()

__all__ = [
    "ENV_IDS",
    "QUERY_ENV_IDS",
    "BatchRecEnv",
    "QueryRecEnv",
    "RatingModel",
    "RecEnv",
    "ReplayBatch",
    "SimConfig",
    "StepResult",
    "UserBatch",
    "World",
    "WorldConfig",
    "expected_calibration_error",
    "make_env",
    "register_envs",
    "register_query_envs",
]
