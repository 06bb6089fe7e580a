"""Agents side by side in the simulator: train each, evaluate all on the same start users.

One *arena* is a dataset, its world (the response model, fitted on all logs), the agents'
training split (leave-one-out), and a fixed set of evaluation start users kept out of
training. For each seed, the greedy model (SASRec on the training split) is fitted once;
every agent (with the exposure guardrail off, and on if asked) then trains online on the
other users and is evaluated on the evaluation users, the world's randomness fixed by the
seed. Results are tidy rows plus per-session returns, so each agent is compared with the
greedy model pairwise (same users, same seed: :func:`recloop.bench.results.arena_tests`).

The experiment behind ``recloop sim arena`` and the ``[simulator]`` table of a grid: one cell
per dataset × seed (:func:`cells`), each an arena whose finished agents are kept in the
cell's folder (:func:`compute`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recloop.bench.cache import GREEDY_SASREC, cached_fitter, fit_greedy
from recloop.bench.cells import Cell, build, check_nested, config_keys, cpus_of, json_ready, options
from recloop.config import make_config
from recloop.data import Dataset, load_dataset
from recloop.data.split import Split, leave_one_out
from recloop.errors import ConfigError, DataError
from recloop.rl.agents import AGENTS, Guardrail, agent_class
from recloop.rl.deep import DeepConfig
from recloop.rl.online import build_agent, evaluate_agent, offline_ndcg, train_agent
from recloop.sim.core import SimConfig, UserBatch, Users
from recloop.sim.world import World, WorldConfig
from recloop.sim.worlds import named_world, world_options

#: Every agent and baseline, in table order (``ppo_sb3`` needs the ``rl`` extra).
METHODS = (*AGENTS, "ppo_sb3")


def _servable(name: str) -> bool:
    """Whether the agent's class says a trained one can be saved as a run and served."""
    return name in AGENTS and agent_class(name).servable


METRICS = ("return", "ctr", "session_length", "coverage", "diversity", "train_s",
           "env_steps_per_s", "offline_ndcg@10")  # fmt: skip


@dataclass(frozen=True)
class ArenaConfig:
    """What to run: agents, seeds, training budget, evaluation users, the guardrail."""

    agents: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0,)
    steps: int = 300  # batch steps of online training per learning agent
    n_envs: int = 64  # users stepped at once in training
    eval_users: int = 500
    ppo_steps: int = 20_000
    guardrail: tuple[bool, ...] = (False, True)
    greedy: dict[str, Any] = field(default_factory=lambda: dict(GREEDY_SASREC))
    world: dict[str, Any] = field(default_factory=dict)
    sim: dict[str, Any] = field(default_factory=dict)
    #: a named world (:data:`recloop.sim.worlds.WORLDS`, e.g. ``gru4rec_x3``, the fidelity
    #: panel's default on ML-100K): its response models and user dynamics, under ``world``
    #: and ``sim``, which override it; "" = ``world`` alone (default EASE)
    world_name: str = ""
    deep: dict[str, Any] = field(default_factory=dict)  # DeepConfig options of DQN / REINFORCE
    #: MOPO-style penalty on the world's members' disagreement, in the learning agents'
    #: training batches only (:mod:`recloop.sim.uncertainty`); they are scored without it
    uncertainty_penalty: float = 0.0

    def __post_init__(self) -> None:
        bad = [a for a in self.agents if a not in METHODS]
        if bad:
            raise ConfigError(f"unknown agent(s) {bad}; choose from {list(METHODS)}")
        if not self.seeds:
            raise ConfigError("give at least one seed")
        for name in ("steps", "n_envs", "eval_users", "ppo_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.world_name:
            named_world(self.world_name)  # a clear error for an unknown name
        if not (np.isfinite(self.uncertainty_penalty) and self.uncertainty_penalty >= 0):
            raise ConfigError(f"uncertainty_penalty must be >= 0, not {self.uncertainty_penalty}")


def _loaded(data: str | Dataset, source: tuple[str, dict[str, str]] | None,
            ) -> tuple[Dataset, str, tuple[str, dict[str, str]]]:  # fmt: skip
    """The dataset, its label for rows and run names, and how saved runs reload it."""
    if isinstance(data, str):
        return load_dataset(data), data, source or (data, {})
    return data, data.name, source or (data.name, {})


def run_arena(data: str | Dataset, config: ArenaConfig, work: Path | None = None,
              progress: bool = False, runs: Path | None = None,
              source: tuple[str, dict[str, str]] | None = None, cache: Path | None = None,
              ) -> tuple[pd.DataFrame, pd.DataFrame, World]:  # fmt: skip
    """Run every (seed, agent, guardrail) cell; return tidy rows, per-session rows, the world.

    ``data`` is a dataset name or path (:func:`recloop.data.load_dataset`) or a ``Dataset``.

    With ``work``, each cell's results are kept in ``work/CELL.json`` and a rerun reuses
    them (the world is refitted, deterministically, when needed). The greedy models are
    fitted through :func:`~recloop.bench.cache.fit_cached` in ``cache`` (default
    ``work/models``): a rerun, or another arena or diagnostic run on the same data with the
    same cache, loads them instead of refitting, and a fit killed part-way continues.
    With ``runs``, each trained agent whose class is ``servable`` (without the guardrail) is also
    saved as a run directory ``runs/DATA-AGENT-sSEED`` (see :func:`save_policy_run`);
    ``source``, ``(path or name, column mapping)``, is how those runs reload the data when
    ``data`` is a ``Dataset`` (default: its name).
    """
    dataset, data, source = _loaded(data, source)
    split = leave_one_out(dataset)
    world, train_sim = _world_of(dataset, config, cache or (work / "models" if work else None),
                                 progress)  # fmt: skip
    sim = replace(train_sim, uncertainty_penalty=0.0)  # agents are scored without it
    users = np.random.default_rng(12345).permutation(world.active_users)
    n_eval = min(config.eval_users, len(users) // 2)
    ev_users, train_users = np.sort(users[:n_eval]), users[n_eval:]
    stage = _Stage(
        label="sim", prefix=data, split=split, train=split.train, sim=sim,
        train_batch=lambda: UserBatch(world, train_sim, config.n_envs), train_starts=train_users,
        eval_batch=lambda: UserBatch(world, sim, len(ev_users)), eval_starts=ev_users,
        world=world, source=source[0], columns=dict(source[1]),
    )  # fmt: skip
    tidy, sessions = _run_grid(stage, data, dataset, config, work, progress, runs, cache)
    return tidy, sessions, world


def _world_of(dataset: Dataset, config: ArenaConfig, models: Path | None,
              progress: bool) -> tuple[World, SimConfig]:  # fmt: skip
    """The config's world fitted on ``dataset`` (response models through the fit cache in
    ``models``) and the users' dynamics in it for training, the uncertainty penalty included."""
    world_opts, sim_opts = world_options(config.world_name, config.world, config.sim)
    world = World.fit(dataset, make_config(WorldConfig, world_opts), progress=progress,
                      fitter=cached_fitter(models, progress))  # fmt: skip
    sim = make_config(SimConfig, {**sim_opts, "uncertainty_penalty": config.uncertainty_penalty})
    return world, sim


def run_replay(data: str | Dataset, config: ArenaConfig, cut_frac: float = 0.1,
               work: Path | None = None, progress: bool = False, runs: Path | None = None,
               source: tuple[str, dict[str, str]] | None = None, cache: Path | None = None,
               train_in: str = "logs") -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Logged-data mode: the same agents trained and evaluated on the real logs, replayed.

    With ``train_in="world"`` (sim-to-real) the learning agents train instead in a world
    fitted on the past alone (``config.world_name`` / ``world`` / ``sim``, with
    ``config.uncertainty_penalty``), its users starting from their pasts, and are then
    replayed on the later sessions like every other agent: what a policy learned in the
    simulator is worth on real users it never met. Rows have ``split`` ``sim2real``.

    The interactions before a global time cut (the timestamp quantile that leaves
    ``cut_frac`` of them after it) are the past: the greedy SASRec is fitted on them
    (leave-one-out early stopping, ``config.greedy``) and the learning agents train on their
    replayed sessions (:class:`~recloop.sim.replay.ReplayBatch`, ``config.steps`` batch steps
    of ``config.n_envs``; a user's first session starts from an empty history). Each user's
    ratings from the cut on (split into sessions at the usual gaps) are then replayed for
    every agent from the history before them, exploiting: a step scores when the slate
    holds the next logged item (reward like 1.0 / other 0.2), and the log moves on either
    way. Return per session is therefore a sequential hit measure on real users, with no
    response model. PPO is skipped: its Gymnasium interface is the simulator's. Returns
    tidy rows and per-session returns, as :func:`run_arena`, with ``split`` ``replay``
    (``runs``, ``source`` and ``cache`` as there, folders ``DATA-replay-AGENT-sSEED``).
    """
    from recloop.sim.replay import ReplayBatch

    if not 0.0 < cut_frac < 1.0:
        raise ConfigError(f"cut_frac must be in (0, 1), not {cut_frac}")
    dataset, data, source = _loaded(data, source)
    ts = dataset.interactions["timestamp"].to_numpy()
    cut = int(np.quantile(ts, 1.0 - cut_frac, method="higher"))
    past = dataset.before(cut)
    sim = make_config(SimConfig, config.sim)
    try:
        logs = ReplayBatch(dataset, sim, 1, cut=cut)
    except DataError as err:
        raise DataError(
            "no user has ratings both before and after the time cut, so there is nothing to "
            "replay; change cut_frac (--cut-frac) or use a dataset whose users span the cut"
        ) from err
    ev_episodes = np.flatnonzero(dataset.sequences.timestamps[logs.episode_start] >= cut)
    if not len(ev_episodes):
        raise DataError(
            "no session starts after the time cut, so there is nothing to replay; raise "
            "cut_frac (--cut-frac)"
        )

    def past_logs(size: int = config.n_envs) -> ReplayBatch:
        return ReplayBatch(past, sim, size, min_history=0)

    train_batch: Callable[[], Users] = past_logs
    starts = np.arange(past_logs(1).n_episodes)
    label = "replay"
    if train_in == "world":
        world, train_sim = _world_of(past, config, cache or (work / "models" if work else None),
                                     progress)  # fmt: skip
        train_batch, starts, label = (lambda: UserBatch(world, train_sim, config.n_envs),
                                      world.active_users, "sim2real")  # fmt: skip
    elif train_in != "logs":
        raise ConfigError(f"train_in must be logs or world, not {train_in!r}")
    stage = _Stage(
        label=label, prefix=f"{data}-{label}", split=leave_one_out(past, short_users="train"),
        train=past, sim=sim, train_batch=train_batch, train_starts=starts,
        eval_batch=lambda: ReplayBatch(dataset, sim, len(ev_episodes), cut=cut),
        eval_starts=ev_episodes, source=source[0], columns=dict(source[1]), cut=cut,
    )  # fmt: skip
    return _run_grid(stage, data, dataset, config, work, progress, runs, cache)


@dataclass
class _Stage:
    """Where agents train and are evaluated: the simulator, or the replayed logs."""

    label: str  # the tidy rows' ``split``
    prefix: str  # of the cell names
    split: Split  # the greedy model's fit (train) and early stopping (valid)
    train: Dataset  # what the agents know beforehand (popularity counts)
    sim: SimConfig
    train_batch: Callable[[], Users]
    train_starts: np.ndarray  # users (simulator) or episodes (logs) training starts from
    eval_batch: Callable[[], Users]
    eval_starts: np.ndarray
    world: World | None = None  # PPO trains in the simulator only
    source: str = ""  # how to load the data again (a saved run's ``data``), with
    columns: dict[str, str] = field(default_factory=dict)  # a CSV/Parquet file's mapping
    cut: int | None = None  # logged data: the time cut (agents learn from what is before it)


def _run_grid(stage: _Stage, data: str, dataset: Dataset, config: ArenaConfig,
              work: Path | None, progress: bool, runs: Path | None = None,
              cache: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Every (seed, agent, guardrail) cell of ``stage``, reusing the ones kept in ``work``."""
    if cache is None and work is not None:
        cache = work / "models"

    rows: list[dict[str, Any]] = []
    sessions: list[pd.DataFrame] = []
    agents = [a for a in config.agents if a != "ppo_sb3" or stage.world is not None]
    # what a kept cell was computed under: a rerun with other options recomputes it
    made = {k: v for k, v in asdict(config).items() if k not in ("agents", "seeds", "guardrail")}
    key = json.dumps(json_ready({**made, "stage": stage.label}), sort_keys=True, default=str)
    for seed in config.seeds:
        model = None
        for name in agents:
            for guard in config.guardrail if name != "ppo_sb3" else (False,):
                variant = "guardrail" if guard else "plain"
                path = work / f"{stage.prefix}-{name}-{variant}-s{seed}.json" if work else None
                save = (runs / f"{stage.prefix}-{name}-s{seed}"
                        if runs is not None and _servable(name) and not guard else None)  # fmt: skip
                if (
                    path is not None
                    and path.exists()
                    and (save is None or (save / "config.json").exists())
                    and json.loads(path.read_text()).get("config", key) == key
                ):  # a cell whose run is asked for but missing, or made otherwise, runs again
                    result = json.loads(path.read_text())
                else:
                    if model is None and name not in ("random", "popularity", "ppo_sb3"):
                        model = fit_greedy(config.greedy, seed, stage.split, cache=cache,
                                           progress=progress)  # fmt: skip
                    result = _cell(stage, name, guard, seed, dataset, model, config, progress,
                                   save) | {"config": key}  # fmt: skip
                    if path is not None:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        tmp = path.with_name(f".{path.name}.tmp")
                        tmp.write_text(json.dumps(result))
                        os.replace(tmp, path)  # a killed run never leaves half a file here
                base = {"benchmark": "online_rl", "dataset": data, "method": name,
                        "variant": variant, "seed": seed, "split": stage.label}  # fmt: skip
                # cells kept from before a metric existed report it as NaN
                rows += [{**base, "metric": m, "value": result["summary"].get(m, np.nan)}
                         for m in METRICS]  # fmt: skip
                sessions.append(pd.DataFrame({**base, "user": stage.eval_starts,
                                              "return": result["returns"]}))  # fmt: skip
    return pd.DataFrame(rows), pd.concat(sessions, ignore_index=True)


def _cell(stage: _Stage, name: str, guard: bool, seed: int, dataset: Dataset, model: Any,
          config: ArenaConfig, progress: bool, save: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Train one agent (if it learns), then evaluate it on the stage's start states (and
    save it as a run directory in ``save``)."""
    sim = stage.sim
    if name == "ppo_sb3":
        from recloop.rl.sb3 import train_ppo

        assert stage.world is not None
        t0 = time.perf_counter()
        agent: Any = train_ppo(stage.world, sim, config.ppo_steps, seed, progress=progress)
        train_s, user_steps = time.perf_counter() - t0, config.ppo_steps
    else:
        deep = make_config(DeepConfig, {"explore_updates": max(config.steps // 2, 1),
                                         **config.deep})  # fmt: skip
        agent = build_agent(name, dataset=dataset, train=stage.train, slate_size=sim.slate_size,
                            history_len=sim.history_len, model=model,
                            guardrail=Guardrail() if guard else None, deep=deep, seed=seed)  # fmt: skip
        train_s, user_steps = 0.0, 0
        if agent.learns:
            log = train_agent(agent, stage.train_batch(), stage.train_starts, config.steps, seed,
                              progress)  # fmt: skip
            train_s, user_steps = log.train_s, log.user_steps
    ev = evaluate_agent(agent, stage.eval_batch(), stage.eval_starts, seed, progress)
    accuracy = offline_ndcg(agent, stage.split, sim.history_len) if name != "ppo_sb3" else np.nan
    summary = ev.summary() | {
        "offline_ndcg@10": accuracy,
        "train_s": train_s,
        # training throughput (agent + environment); evaluation's for agents that do not learn
        "env_steps_per_s": user_steps / train_s if train_s > 0 else ev.user_steps_per_s,
    }
    if save is not None:
        save_policy_run(agent, model, stage, dataset, seed, config, save, summary)
    return {"summary": summary, "returns": ev.returns.tolist()}


def save_policy_run(agent: Any, model: Any, stage: _Stage, dataset: Dataset, seed: int,
                    config: ArenaConfig, folder: Path, summary: dict[str, Any]) -> None:  # fmt: skip
    """Save a trained ``servable`` agent as a run directory: the greedy SASRec with the
    policy's encoder and item table, so ``recloop serve``, ``recommend`` and ``evaluate``
    rank by the learned policy (its greedy slate: the top of π over unseen items). The
    metrics are the protocol's on the stage's split, plus the agent's arena summary; the
    config records the agent, its options and where it trained."""

    from recloop.bench.experiments.offline import RunSpec, resolved_config
    from recloop.eval.protocol import evaluate
    from recloop.runs import run_metrics, save_run

    if not agent.servable:
        servable = [n for n in AGENTS if _servable(n)]
        raise ConfigError(f"{agent.name} cannot be saved as a run; servable agents: "
                          f"{servable}")  # fmt: skip
    policy = model.with_encoder(agent.net.encoder)
    spec = RunSpec(model="sasrec", data=stage.source or dataset.name, seed=seed,
                   columns=stage.columns, before=stage.cut,
                   short_users="train" if stage.label == "replay" else "error")  # fmt: skip
    valid = evaluate(policy, stage.split, "valid", ks=spec.ks)
    test = evaluate(policy, stage.split, "test", ks=spec.ks)
    resolved = {
        **resolved_config(spec, policy),
        "agent": {"name": agent.name, "stage": stage.label, "steps": config.steps,
                  "n_envs": config.n_envs, "deep": dict(config.deep), "sim": dict(config.sim),
                  "world": dict(config.world), "world_name": config.world_name},
    }  # fmt: skip
    metrics = {**run_metrics(policy, valid, test, summary["train_s"], spec.ks), "arena": summary}
    save_run(folder, policy, dataset, resolved, metrics, test.per_user)


def with_agents(config: ArenaConfig, agents: str | None) -> ArenaConfig:
    """``config`` with a comma-separated agent list (``None``: unchanged)."""
    if not agents:
        return config
    return replace(config, agents=tuple(a.strip() for a in agents.split(",") if a.strip()))


SECTION = "simulator"
KEYS = config_keys(ArenaConfig)


def cells(table: dict[str, Any], datasets: list[str], seeds: list[int],
          source: str) -> list[Cell]:  # fmt: skip
    """One cell per dataset × seed of the grid's ``[simulator]`` table (an
    :class:`ArenaConfig`, its ``seeds`` the grid's)."""
    where = f"{source} [simulator]"
    opts = options(table, ArenaConfig, where, seed_key="seeds")
    for key in ("agents", "guardrail"):
        if key in opts:
            value = opts[key]
            opts[key] = tuple(value) if isinstance(value, list) else (value,)
    check_nested(opts, where)
    found = []
    for data in datasets:
        for seed in seeds:
            cfg = build(ArenaConfig, {**opts, "seeds": (seed,)}, where)
            config = json_ready(asdict(cfg))
            found.append(Cell("simulator", data, "agents", "", seed, config,
                              cpus_of(table, where)))  # fmt: skip
    return found


def compute(cell: Cell, folder: Path,
            cache: Path | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:  # fmt: skip
    """The cell's arena (finished agents kept in ``folder/arena``, the greedy fit in
    ``cache``): tidy rows with the simulator's fidelity beside them, and per-session rows."""
    cfg: dict[str, Any] = {k: tuple(v) if k in ("agents", "seeds", "guardrail") else v
                           for k, v in cell.config.items()}  # fmt: skip
    tidy, sessions, world = run_arena(cell.dataset, ArenaConfig(**cfg), folder / "arena",
                                      cache=cache)  # fmt: skip
    # the simulator's fidelity travels with every simulated result
    fidelity = pd.DataFrame([{**cell.labels, "split": "sim", "metric": f"world_{k}", "value": v}
                             for k, v in world.report.items()
                             if k in ("auc", "ece", "ndcg@10", "rating_rmse")])  # fmt: skip
    rows = pd.concat([tidy.assign(benchmark="bench", dataset=cell.dataset), fidelity])
    return rows, {"sessions": sessions}
