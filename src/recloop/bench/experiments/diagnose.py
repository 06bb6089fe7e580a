"""Does this data need RL? How much a long-horizon policy could gain over the greedy model.

From the same start users and the same simulator randomness, three policies run one session
each:

- **greedy**: the large model alone (SASRec fitted on the leave-one-out training split,
  ranking each user's recent history), showing its top unseen items;
- **myopic oracle**: the items with the highest expected immediate reward under the
  simulator's own users (click weight ``e^u`` times the expected reward of a click,
  ``other + (like − other)·P(like)``): a policy that knows the users and plans one step;
- **look-ahead**: at every step, several candidate slates (the two above and slates drawn by
  Plackett–Luce from the oracle's top-scored items) are each tried in ``rollouts`` copies of the
  current state with common random numbers, continued ``horizon − 1`` steps by the myopic
  oracle; the slate with the highest mean return is shown (ties go to the oracle's). This is a
  short rollout search with the true model.

``lookahead / myopic`` measures how much planning over a few steps adds to the best
one-step policy: when it is near 1, the data leaves little room for a long-horizon policy,
whatever it learns (RL4RS, Wang et al. 2023, found this on MovieLens by hand).
``lookahead / greedy`` bounds (loosely) what RL on top of the large model can gain in this
simulator. Both are properties of the simulator's users; ``recloop sim fidelity`` (and the
report's simulator section) says how far those users are from the real ones.

The experiment behind ``recloop diagnose`` and the ``[diagnose]`` table of a grid (one cell
per dataset × seed: :func:`cells`, :func:`compute`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recloop.bench.cache import GREEDY_SASREC, cached_fitter, fit_greedy
from recloop.bench.cells import Cell, build, check_nested, config_keys, cpus_of, json_ready, options
from recloop.data.dataset import Dataset
from recloop.errors import ConfigError
from recloop.eval.stats import mean_ci, paired_test
from recloop.progress import progress_bar
from recloop.sim.core import SimConfig, UserBatch, top_unseen
from recloop.sim.world import World, WorldConfig
from recloop.sim.worlds import named_world, world_options

__all__ = ["DiagnoseConfig", "cells", "compute", "diagnose"]


@dataclass(frozen=True)
class DiagnoseConfig:
    """Options of the diagnostic."""

    users: int = 200  # start users (drawn at random from the active ones)
    horizon: int = 3  # steps each rollout looks ahead
    rollouts: int = 4  # copies each candidate slate is tried in
    candidates: int = 6  # candidate slates per step (greedy, oracle, and Plackett-Luce draws)
    pool: int = 30  # the oracle's top items the drawn candidates come from
    seed: int = 0
    greedy: dict[str, Any] = field(default_factory=lambda: dict(GREEDY_SASREC))
    sim: dict[str, Any] = field(default_factory=dict)
    world: dict[str, Any] = field(default_factory=dict)  # WorldConfig options
    world_name: str = ""  # a named world (recloop.sim.worlds), overridden by world and sim

    def __post_init__(self) -> None:
        if self.world_name:
            named_world(self.world_name)  # a clear error for an unknown name
        for name in ("users", "horizon", "rollouts", "candidates", "pool"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.candidates < 2:
            raise ConfigError("candidates must be at least 2 (the greedy and the oracle slates)")


class _Oracle:
    """Scores items by expected immediate reward; the like probabilities cached per user."""

    def __init__(self, world: World, sim: SimConfig, users: np.ndarray) -> None:
        self.row = np.full(world.dataset.n_users, -1, dtype=np.int64)
        self.row[users] = np.arange(len(users))
        items = np.arange(world.n_items)
        like = np.stack([world.like_prob(np.full(len(items), u), items) for u in users])
        # log of the expected reward of a click: other + (like − other) · P(like)
        self.log_reward = np.log(sim.other + (sim.like - sim.other) * like).astype(np.float32)

    def scores(self, batch: UserBatch) -> np.ndarray:
        return batch.utility() + self.log_reward[self.row[batch.users]]

    def slates(self, batch: UserBatch) -> np.ndarray:
        return top_unseen(self.scores(batch), batch.seen, batch.config.slate_size)


def _candidates(batch: UserBatch, greedy: np.ndarray, oracle: _Oracle, config: DiagnoseConfig,
                rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """(B, C, K) candidate slates per slot: oracle, greedy, then Plackett-Luce draws.

    The oracle's slate comes first so that ties (common: most rollouts see no click) go to it.
    """
    k = batch.config.slate_size
    scores = oracle.scores(batch)
    pool = top_unseen(scores, batch.seen, max(config.pool, k))  # (B, P)
    logits = np.take_along_axis(scores, pool, axis=1).astype(np.float64)
    out = np.empty((batch.size, config.candidates, k), dtype=np.int64)
    out[:, 0], out[:, 1] = top_unseen(scores, batch.seen, k), greedy
    for c in range(2, config.candidates):
        keys = logits + rng.gumbel(size=logits.shape)
        out[:, c] = np.take_along_axis(pool, np.argsort(-keys, axis=1)[:, :k], axis=1)
    return out


def _plan(batch: UserBatch, cands: np.ndarray, oracle: _Oracle, config: DiagnoseConfig,
          rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """The candidate with the best mean ``horizon``-step return per active slot.

    Every candidate is tried with the same random draws (common random numbers), so the
    comparison between candidates reflects the slates, not the luck of their rollouts.
    """
    act = np.flatnonzero(batch.active)
    b, c = len(act), cands.shape[1]
    r = config.rollouts
    seed = int(rng.integers(2**63))
    value = np.zeros((b, c))
    for j in range(c):
        sims = batch.fork(act, r)  # slot-major, then rollout
        crn = np.random.default_rng(seed)  # the same draws for every candidate
        total = sims.step(np.repeat(cands[act, j], r, axis=0), crn).reward.astype(np.float64)
        for _ in range(config.horizon - 1):
            if not sims.active.any():
                break
            total += sims.step(oracle.slates(sims), crn).reward
        value[:, j] = total.reshape(b, r).mean(axis=1)
    out = cands[:, 0].copy()
    out[act] = cands[act, value.argmax(axis=1)]
    return out


def diagnose(
    dataset: Dataset,
    config: DiagnoseConfig | None = None,
    world: World | None = None,
    greedy_model: Any = None,
    progress: bool = False,
    cache: str | Path | None = None,
) -> dict[str, Any]:
    """Run the three policies from the same start users; return their returns and the ratios.

    The greedy SASRec (unless ``greedy_model`` is given) is fitted through
    :func:`~recloop.bench.cache.fit_cached` in ``cache``: the simulator arena's greedy model
    of the same seed and options is the same fit, and a shared cache fits it once.
    """
    from recloop.config import make_config
    from recloop.data import leave_one_out
    from recloop.models.sequential import SASRec
    from recloop.rl.agents import GreedyAgent

    cfg = config or DiagnoseConfig()
    world_opts, sim_opts = world_options(cfg.world_name, cfg.world, cfg.sim)
    sim = make_config(SimConfig, sim_opts)  # bad options fail before any fitting
    world_cfg = make_config(WorldConfig, world_opts)
    make_config(SASRec.Config, cfg.greedy)
    if world is None:
        world = World.fit(
            dataset, world_cfg, progress=progress, fitter=cached_fitter(cache, progress)
        )
    if greedy_model is None:
        split = leave_one_out(dataset)
        greedy_model = fit_greedy(cfg.greedy, cfg.seed, split, cache=cache, progress=progress)
    agent = GreedyAgent(greedy_model, sim.slate_size)
    rng0 = np.random.default_rng(cfg.seed)
    active = world.active_users
    users = np.sort(rng0.choice(active, size=min(cfg.users, len(active)), replace=False))
    oracle = _Oracle(world, sim, users)
    returns: dict[str, np.ndarray] = {}
    with progress_bar(3 * sim.session_cap, "diagnose", progress) as bar:
        for name in ("greedy", "myopic", "lookahead"):
            batch = UserBatch(world, sim, len(users))
            batch.reset(np.arange(len(users)), users)
            env_rng = np.random.default_rng([cfg.seed, 1])  # the same draws for every policy
            plan_rng = np.random.default_rng([cfg.seed, 2])
            total = np.zeros(len(users))
            while batch.active.any():
                if name == "myopic":
                    slates = oracle.slates(batch)
                else:
                    slates = agent.slate(agent.scores(batch), batch)
                if name == "lookahead":
                    cands = _candidates(batch, slates, oracle, cfg, plan_rng)
                    slates = _plan(batch, cands, oracle, cfg, plan_rng)
                total += batch.step(slates, env_rng).reward
                bar.advance()
            returns[name] = total
    cis = {k: mean_ci(v) for k, v in returns.items()}
    out: dict[str, Any] = {
        "users": len(users),
        "returns": {k: v.tolist() for k, v in returns.items()},
        "mean": {k: c.mean for k, c in cis.items()},
        "ci": {k: (c.low, c.high) for k, c in cis.items()},
        "lookahead_over_greedy": cis["lookahead"].mean / max(cis["greedy"].mean, 1e-12),
        "lookahead_over_myopic": cis["lookahead"].mean / max(cis["myopic"].mean, 1e-12),
        "myopic_over_greedy": cis["myopic"].mean / max(cis["greedy"].mean, 1e-12),
    }
    test = paired_test(returns["lookahead"], returns["myopic"])
    out["lookahead_vs_myopic_p"] = test.wilcoxon_pvalue
    return out


SECTION = "diagnose"
KEYS = config_keys(DiagnoseConfig)


def cells(table: dict[str, Any], datasets: list[str], seeds: list[int],
          source: str) -> list[Cell]:  # fmt: skip
    """One cell per dataset × seed of the grid's ``[diagnose]`` table (a
    :class:`DiagnoseConfig`, its ``seed`` the grid's)."""
    where = f"{source} [diagnose]"
    opts = options(table, DiagnoseConfig, where)
    check_nested(opts, where)
    return [Cell("diagnose", data, "lookahead", "", seed,
                 json_ready(asdict(build(DiagnoseConfig, {**opts, "seed": seed}, where))),
                 cpus_of(table, where))
            for data in datasets for seed in seeds]  # fmt: skip


def compute(cell: Cell, folder: Path,
            cache: Path | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:  # fmt: skip
    """The diagnostic on the cell's dataset (the greedy fit shared through ``cache``): each
    policy's mean return with its interval, and the ratios, as tidy rows."""
    from recloop.data import load_dataset

    res = diagnose(load_dataset(cell.dataset), DiagnoseConfig(**cell.config), cache=cache)
    found = [{**cell.labels, "split": "sim", "metric": f"{k}_return", "value": v,
              "ci_low": res["ci"][k][0], "ci_high": res["ci"][k][1], "n": res["users"]}
             for k, v in res["mean"].items()]  # fmt: skip
    found += [{**cell.labels, "split": "sim", "metric": k, "value": res[k]}
              for k in ("lookahead_over_myopic", "lookahead_over_greedy", "myopic_over_greedy",
                        "lookahead_vs_myopic_p")]  # fmt: skip
    return pd.DataFrame(found), {}
