"""Does a world order policies the way real data does? The fidelity panel, scored everywhere.

One run is a dataset, a global time cut and the panel (:data:`recloop.rl.panel.PANEL`):

1. **Past and future.** The interactions before the cut (the timestamp quantile leaving
   ``cut_frac`` after it) are the past. Every panel model is fitted on the past's
   leave-one-out training part (SASRec and GRU4Rec stopped early on its validation
   targets); the learned members (REINFORCE top-K, LinUCB) then train on the past's
   replayed sessions. No panel policy sees anything after the cut.
2. **Yardsticks** (real data, no world model):
   - ``replay``: each real session after the cut replayed for every policy from the user's
     history before it (:class:`~recloop.sim.replay.ReplayBatch`): per-session return;
   - ``offline_ndcg``: leave-one-out NDCG@10 on the past's test targets, per user.
3. **Worlds, cross-fitted.** The users are split into ``folds``; the world that scores fold
   ``k``'s sessions is fitted on every interaction except fold ``k``'s after the cut (it may
   learn from other users' futures, which no policy sees, but never from the sessions it is
   judged against). It then simulates, for each of fold ``k``'s real later sessions, ``repeats``
   sessions of every policy from the same starting history as the replay, with common random
   numbers across policies. A world's value of a policy is its mean simulated return.
4. **Agreement** (:func:`recloop.eval.policy_agreement`): each world's values against each
   yardstick: Kendall τ with its bootstrap interval, the share of pairs in the same order,
   the pairs the yardstick separates significantly (paired Wilcoxon, Holm) that the world
   inverts, named, and the yardstick's own noise ceiling (τ between random halves). Also
   ``inversions_significant_agreed``: those inversions of a yardstick on pairs that the
   other yardstick orders the same way (the pairs where the two real measures agree).
5. **The world's own fit**, on the same later sessions: ``heldout_ndcg@10`` (the world's
   logits ranking each real next item among the unseen, at every step of the session, given
   the real history before it; mean per session) against ``best_panel_ndcg@10`` (the best
   panel policy's scores on the same targets), and ``heldout_ndcg_gap@10``, their paired
   difference with its 95% interval over the sessions;
   ``session_len_ks`` (Kolmogorov-Smirnov distance between the lengths of the world's
   sessions under its own favourite items and the real sessions' lengths, capped at
   ``session_cap``); ``click_gini_gap`` (Gini of per-item clicks in those simulated sessions
   minus that of the items consumed in the real ones, one simulated session per real one, at
   the same number of events: :func:`~recloop.sim.fidelity.matched_gini_gap`; a sample's Gini
   rises as it shrinks, and the world's sessions hold far fewer clicks than the real ones hold
   ratings; ``click_gini_gap_unmatched`` is the raw difference);
   ``click_gini_gap_sampled``, the same with slates drawn from the world's own choice
   distribution (Gumbel top-K of its logits) instead of its top items: what its users would
   consume choosing from the whole catalogue, the like-for-like analogue of the real logs.

The default world (:func:`default_world`) is the one with the fewest significant inversions
against replay, then the highest τ up to the replay's noise ceiling, then the best next-item
NDCG. Rows: :data:`BENCHMARK` per world × yardstick (``method`` = world, ``variant``
= yardstick) and a ``default_world`` row; the panel's per-policy values go in the
``panel`` extra table (:mod:`.fidelity_report` writes both, and the text).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recloop.bench.cache import GREEDY_SASREC, cached_fitter, fit_cached, fit_greedy
from recloop.bench.cells import Cell, build, check_nested, config_keys, cpus_of, json_ready, options
from recloop.bench.experiments.fidelity_next_item import (
    _policy_next_item_ndcg,
    _start_history,
    _world_next_item_ndcg,
    _world_open_loop,
)
from recloop.bench.experiments.fidelity_report import panel_rows, result_rows
from recloop.config import make_config
from recloop.data import Dataset, load_dataset
from recloop.data.history import History
from recloop.data.split import leave_one_out
from recloop.errors import ConfigError, DataError
from recloop.eval.agreement import Agreement, policy_agreement
from recloop.eval.stats import mean_ci
from recloop.rl.agents import Agent
from recloop.rl.deep import DeepConfig
from recloop.rl.online import offline_ndcg_per_user, train_agent
from recloop.rl.panel import PANEL, PanelModels, build_panel, models_needed
from recloop.sim.core import SimConfig, UserBatch, run_sessions
from recloop.sim.fidelity import gini, matched_gini_gap
from recloop.sim.replay import ReplayBatch
from recloop.sim.world import World, WorldConfig
from recloop.sim.worlds import WORLDS, named_world, world_options

YARDSTICKS = ("replay", "offline_ndcg")


@dataclass(frozen=True)
class FidelityConfig:
    """What to run: the worlds, the cut, the cross-fit, the simulation and the panel's fits."""

    worlds: tuple[str, ...] = ("ease", "bpr")
    seed: int = 0
    cut_frac: float = 0.1  # share of interactions after the time cut
    folds: int = 2  # user folds of the worlds' cross-fit
    repeats: int = 4  # simulated sessions per real later session
    max_sessions: int = 0  # later sessions scored (0: all; else a seeded sample)
    steps: int = 300  # batch steps of replayed training for each learned member
    n_envs: int = 64
    bootstrap: int = 1000
    members: tuple[str, ...] = PANEL
    greedy: dict[str, Any] = field(default_factory=lambda: dict(GREEDY_SASREC))
    gru4rec: dict[str, Any] = field(default_factory=lambda: {"max_len": 50})
    sim: dict[str, Any] = field(default_factory=dict)
    deep: dict[str, Any] = field(default_factory=dict)  # DeepConfig of REINFORCE top-K
    world: dict[str, Any] = field(default_factory=dict)  # WorldConfig options of every world
    member_spread: bool = False  # also simulate each member of an ensemble world alone

    def __post_init__(self) -> None:
        bad = [w for w in self.worlds if w not in WORLDS]
        if bad or not self.worlds:
            raise ConfigError(f"unknown world(s) {bad or '(none)'}; choose from {list(WORLDS)}")
        unknown = [m for m in self.members if m not in PANEL]
        if unknown:
            raise ConfigError(f"unknown panel member(s) {unknown}; choose from {list(PANEL)}")
        if len(self.members) < 3:
            raise ConfigError("a panel needs at least 3 policies to be ranked")
        if not 0.0 < self.cut_frac < 1.0:
            raise ConfigError(f"cut_frac must be in (0, 1), not {self.cut_frac}")
        for name in ("folds", "repeats", "steps", "n_envs", "bootstrap"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.folds < 2:
            raise ConfigError("folds must be >= 2: a world never sees the sessions it scores")
        if self.max_sessions < 0:
            raise ConfigError(f"max_sessions must be >= 0, not {self.max_sessions}")


@dataclass
class FidelityResult:
    """A panel run: tidy agreement rows, per-policy values, and the agreements themselves."""

    rows: pd.DataFrame  # benchmark sim_fidelity
    panel: pd.DataFrame  # per policy × (world or yardstick): value with its interval
    agreements: dict[tuple[str, str], Agreement]  # (world, yardstick) → agreement
    default_world: str
    names: tuple[str, ...]
    world_figures: dict[str, dict[str, float]]
    timings: dict[str, float] = field(default_factory=dict)


def run_fidelity(data: str | Dataset, config: FidelityConfig | None = None,
                 cache: Path | None = None, progress: bool = False) -> FidelityResult:  # fmt: skip
    """Score the panel by every world of ``config`` and both yardsticks (module docstring)."""
    cfg = config or FidelityConfig()
    sim = make_config(SimConfig, cfg.sim)
    deep = make_config(DeepConfig, {"explore_updates": max(cfg.steps // 2, 1), **cfg.deep})
    dataset = load_dataset(data) if isinstance(data, str) else data
    label = data if isinstance(data, str) else dataset.name
    clock: dict[str, float] = {}

    # 1. the past, the panel fitted on it
    t0 = time.perf_counter()
    ts = dataset.interactions["timestamp"].to_numpy()
    cut = int(np.quantile(ts, 1.0 - cfg.cut_frac, method="higher"))
    past = dataset.before(cut)
    split = leave_one_out(past, short_users="train")
    models = _fit_panel_models(cfg, split, cache, progress)
    past_logs = ReplayBatch(past, sim, cfg.n_envs, min_history=0)

    def learn(agent: Agent) -> None:
        train_agent(agent, past_logs, np.arange(past_logs.n_episodes), cfg.steps, cfg.seed,
                    progress)  # fmt: skip

    agents = build_panel(models, dataset, split.train, sim.slate_size, sim.history_len,
                         cfg.seed, deep=deep, learn=learn, members=cfg.members)  # fmt: skip
    names = tuple(agents)
    clock["panel_fit_s"] = time.perf_counter() - t0

    # 2. the later sessions, replayed
    t0 = time.perf_counter()
    logs = _later_sessions(dataset, sim, cut)
    ev = np.flatnonzero(dataset.sequences.timestamps[logs.episode_start] >= cut)
    if cfg.max_sessions and len(ev) > cfg.max_sessions:
        pick = np.random.default_rng([cfg.seed, 7]).choice(len(ev), cfg.max_sessions, False)
        ev = ev[np.sort(pick)]
    if len(ev) < 2:
        raise DataError(f"{label}: {len(ev)} real session(s) after the time cut; the panel "
                        "needs at least 2: raise cut_frac")  # fmt: skip
    replay = np.zeros((len(ev), len(names)))
    for p, name in enumerate(names):
        _fresh(agents[name])
        batch = ReplayBatch(dataset, sim, len(ev), cut=cut)
        batch.reset(np.arange(len(ev)), ev)
        replay[:, p] = _returns(agents[name], batch, cfg.seed, progress)
    offline = _offline(agents, names, split, sim.history_len, cfg.seed)
    next_ndcg = _policy_next_item_ndcg(agents, names, dataset, sim, cut, ev, cfg.seed)
    clock["yardsticks_s"] = time.perf_counter() - t0

    # 3. the worlds, cross-fitted by user folds
    ep_user = logs.episode_user[ev]
    fold_of = np.random.default_rng([cfg.seed, 11]).permutation(dataset.n_users) % cfg.folds
    best = int(np.nanargmax(np.nanmean(next_ndcg, 0)))  # the panel's best next-item ranker
    values: dict[str, np.ndarray] = {}
    figures: dict[str, dict[str, float]] = {}
    intervals: dict[str, dict[str, tuple[float, float]]] = {}
    for world_name in cfg.worlds:
        t0 = time.perf_counter()
        val = np.zeros((len(ev), len(names)))
        world_ndcg = np.zeros(len(ev))
        sim_lengths: list[np.ndarray] = []
        clicks = np.zeros(dataset.n_items)
        clicks_sampled = np.zeros(dataset.n_items)
        for fold in range(cfg.folds):
            in_fold = np.flatnonzero(fold_of[ep_user] == fold)
            if not len(in_fold):
                continue
            world = _fold_world(dataset, world_name, cut, fold_of == fold, cfg, cache, progress)
            # the named world's user dynamics, under the panel's explicit `sim` options
            wsim = make_config(SimConfig, world_options(world_name, {}, cfg.sim)[1])
            starts = [(in_fold[g], _start_history(dataset, ep_user[in_fold[g]],
                                                  logs.episode_start[ev[in_fold[g]]]))
                      for g in _groups(ep_user[in_fold])]  # fmt: skip
            for r, _ in starts:
                world_ndcg[r] = _world_next_item_ndcg(world, dataset, wsim, cut, ev[r])
                opened = values.setdefault(f"{world_name}#open", np.zeros((len(ev), len(names))))
                opened[r] = _world_open_loop(world, dataset, wsim, cut, ev[r], agents, names,
                                             cfg.seed)  # fmt: skip
            order = np.concatenate([r for r, _ in starts])
            start = _start_batch(world, wsim, ep_user, starts, cfg.repeats)  # forked, not reset
            first = np.arange(len(order))  # one slot per start
            val[order] = _values(start, agents, names, cfg, progress)
            spread = cfg.member_spread and len(world.models) > 1
            for j in range(len(world.models)) if spread else ():  # each member alone
                mval = values.setdefault(f"{world_name}#m{j}", np.zeros((len(ev), len(names))))
                member = _start_batch(world.member(j), wsim, ep_user, starts, cfg.repeats)
                mval[order] = _values(member, agents, names, cfg, progress)
            lengths, item_clicks = _world_greedy(start.fork(first, 1), cfg.seed)
            sim_lengths.append(lengths)
            clicks += item_clicks
            clicks_sampled += _world_greedy(start.fork(first, 1), cfg.seed, sample=True)[1]
        values[world_name] = val
        members = [v.mean(0) for k, v in values.items() if k.startswith(f"{world_name}#m")]
        if members:  # the members' disagreement on each policy's value, relative to its mean
            m = np.stack(members)
            spread_cv = m.std(0, ddof=1) / np.maximum(np.abs(m.mean(0)), 1e-12)
        real_len = np.minimum(logs.episode_len[ev], sim.session_cap)
        real_clicks = _consumed(dataset, logs.episode_start[ev], logs.episode_len[ev])
        gap = mean_ci(world_ndcg - next_ndcg[:, best])  # paired over the later sessions
        intervals[world_name] = {"heldout_ndcg_gap@10": (gap.low, gap.high)}
        figures[world_name] = {
            "heldout_ndcg@10": float(world_ndcg.mean()),
            "best_panel_ndcg@10": float(np.nanmean(next_ndcg[:, best])),
            "heldout_ndcg_gap@10": gap.mean,
            "session_len_ks": _ks(np.concatenate(sim_lengths), real_len),
            "click_gini_gap": matched_gini_gap(clicks, real_clicks, cfg.seed),
            "click_gini_gap_sampled": matched_gini_gap(clicks_sampled, real_clicks, cfg.seed),
            "click_gini_gap_unmatched": gini(clicks) - gini(real_clicks),
        }
        if members:
            figures[world_name]["member_value_cv"] = float(spread_cv.mean())
        clock[f"world_{world_name}_s"] = time.perf_counter() - t0

    # 4. agreement
    yard = {"replay": replay, "offline_ndcg": offline}
    agreements: dict[tuple[str, str], Agreement] = {}
    for world_name, val in values.items():
        for y, matrix in yard.items():
            agreements[(world_name, y)] = policy_agreement(
                val.mean(0), matrix, names, n_boot=cfg.bootstrap, seed=cfg.seed
            )
    default = default_world(
        {w: agreements[(w, "replay")] for w in cfg.worlds},
        {w: figures[w]["heldout_ndcg@10"] for w in cfg.worlds},
    )
    rows = result_rows(label, cfg.seed, agreements, yard, figures, default, intervals)
    panel = panel_rows(label, cfg.seed, names, values, yard, next_ndcg)
    return FidelityResult(rows, panel, agreements, default, names, figures, clock)


# --------------------------------------------------------------------------- the panel


def default_world(replay: dict[str, Agreement], next_item: dict[str, float]) -> str:
    """The world to trust: the fewest significant inversions against replay; then the highest
    τ, counted only up to the replay's noise ceiling (above it, two worlds' τ differ by the
    yardstick's own noise); then the best next-item NDCG, the world that knows users best."""
    return min(
        replay,
        key=lambda w: (
            len(replay[w].significant_inversions),
            -min(replay[w].tau, replay[w].noise_ceiling),
            -next_item[w],
        ),
    )


def _fit_panel_models(cfg: FidelityConfig, split: Any, cache: Path | None,
                      progress: bool) -> PanelModels:  # fmt: skip
    """The models the panel's members act with, fitted on the past's training part."""
    from recloop.models.registry import build_model
    from recloop.models.sequential import GRU4Rec

    need = models_needed(cfg.members)
    out = PanelModels()
    if "sasrec" in need:
        out.sasrec = fit_greedy(cfg.greedy, cfg.seed, split, cache=cache, progress=progress)
    if "gru4rec" in need:
        out.gru4rec = fit_cached(GRU4Rec(seed=cfg.seed, **cfg.gru4rec), split.train,
                                 valid=split, cache=cache, progress=progress)  # fmt: skip
    for name in ("ease", "itemknn", "markov"):
        if name in need:
            setattr(out, name, build_model(name, {}, cfg.seed).fit(split.train))
    return out


def _fresh(agent: Agent) -> None:
    """Forget a guardrail's exposure counts, so each world and yardstick starts it afresh."""
    if agent.guard is not None:
        agent.guard.counts[:] = 0.0


def _later_sessions(dataset: Dataset, sim: SimConfig, cut: int) -> ReplayBatch:
    try:
        return ReplayBatch(dataset, sim, 1, cut=cut)
    except DataError as err:
        raise DataError("no user has ratings both before and after the time cut, so there is "
                        "nothing to replay; change cut_frac") from err  # fmt: skip


def _values(start: Any, agents: dict[str, Agent], names: tuple[str, ...], cfg: FidelityConfig,
            progress: bool) -> np.ndarray:  # fmt: skip
    """(starts, P) each policy's mean return over the ``cfg.repeats`` copies of each start
    (``start`` holds them repeat-major, as :func:`_start_batch` forks them)."""
    out = np.zeros((start.size // cfg.repeats, len(names)))
    every = np.arange(start.size)
    for p, name in enumerate(names):
        _fresh(agents[name])
        returns = _returns(agents[name], start.fork(every, 1), cfg.seed, progress)
        out[:, p] = returns.reshape(cfg.repeats, -1).mean(0)
    return out


def _returns(agent: Agent, batch: Any, seed: int, progress: bool) -> np.ndarray:
    """Per-session returns of ``agent`` exploiting on ``batch`` (every slot freshly reset)."""
    act_rng = np.random.default_rng([seed, 2])
    roll = run_sessions(batch, lambda b, _r: agent.act(b, act_rng, explore=False), seed,
                        progress, f"replaying {agent.name}")  # fmt: skip
    return roll.returns


def _offline(agents: dict[str, Agent], names: tuple[str, ...], split: Any, history_len: int,
             seed: int) -> np.ndarray:  # fmt: skip
    """(U, P) each policy's leave-one-out NDCG@10 on each of the past's test users."""
    rng = np.random.default_rng([seed, 5])
    return np.stack([offline_ndcg_per_user(agents[n], split, history_len, rng=rng)[1]
                     for n in names], 1)  # fmt: skip


# --------------------------------------------------------------------------- worlds


def _fold_world(dataset: Dataset, name: str, cut: int, fold_users: np.ndarray,
                cfg: FidelityConfig, cache: Path | None, progress: bool) -> World:  # fmt: skip
    """The world fitted on everything but ``fold_users``' interactions from ``cut`` on (its
    response models through :func:`fit_cached` in ``cache``)."""
    inter = dataset.interactions
    hide = fold_users[inter["user"].to_numpy()] & (inter["timestamp"].to_numpy() >= cut)
    fit_on = dataset.with_interactions(inter[~hide].reset_index(drop=True))
    spec = named_world(name)[0]
    options = {**cfg.world, **spec, "seed": cfg.seed}
    return World.fit(
        fit_on,
        make_config(WorldConfig, options),
        progress=progress,
        fitter=cached_fitter(cache, progress),
    )


def _groups(users: np.ndarray) -> list[np.ndarray]:
    """Indices of ``users`` split into groups in which no user repeats (k-th visits together)."""
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    rank = np.arange(len(users)) - np.repeat(first, np.diff(np.r_[first, len(users)]))
    out = np.empty(len(users), dtype=np.int64)
    out[order] = rank
    return [np.flatnonzero(out == k) for k in range(int(out.max()) + 1)] if len(users) else []


def _start_batch(world: World, sim: SimConfig, users: np.ndarray,
                 starts: list[tuple[np.ndarray, History]], repeats: int) -> UserBatch:  # fmt: skip
    """One batch holding ``repeats`` sessions from every start: slot ``k * n + j`` starts
    the ``j``-th session of ``starts`` (the sessions ``r`` of each group in turn, ``users[r]``
    from their own start history) for the ``k``-th time.

    A start history holds one past per user, so a user's later sessions come in separate
    groups; they are reset group by group into the one batch and then run together, since
    slots do not share state once started (one batch, not one per group: ML-1M's 2,000
    later sessions fall into about 100 groups, mostly of a handful of sessions)."""
    n = sum(len(r) for r, _ in starts)
    batch = UserBatch(world, sim, n * repeats)
    offset = 0
    for r, hist in starts:
        slots = (offset + np.arange(len(r)))[None, :] + n * np.arange(repeats)[:, None]
        batch.reset(slots.ravel(), np.tile(users[r], repeats), history=hist)
        offset += len(r)
    return batch


def _world_greedy(batch: UserBatch, seed: int, sample: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Session lengths and per-item clicks of the sessions started in ``batch`` under the
    world's own favourite unseen items, or with ``sample`` its own choice distribution: slates
    drawn without replacement in proportion to ``e^logit`` (Gumbel top-K), what its users
    would pick from the whole catalogue."""
    rng = np.random.default_rng([seed, 13])

    def policy(b: UserBatch, _r: np.random.Generator) -> np.ndarray:
        if not sample:
            return b.top_unseen(b.logits)
        return b.top_unseen(b.logits - np.log(-np.log(rng.random(b.logits.shape))))

    roll = run_sessions(batch, policy, seed)
    return roll.lengths, roll.item_clicks


def _consumed(dataset: Dataset, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(I,) how often each item is rated in the real sessions at ``starts`` of ``lengths``."""
    pos = np.repeat(starts - np.cumsum(np.r_[0, lengths[:-1]]), lengths) + np.arange(lengths.sum())
    return np.bincount(dataset.sequences.items[pos], minlength=dataset.n_items)


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance: the largest gap between the empirical CDFs."""
    grid = np.union1d(a, b)
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


# --------------------------------------------------------------------------- bench mode

SECTION = "fidelity"
KEYS = config_keys(FidelityConfig)


def cells(table: dict[str, Any], datasets: list[str], seeds: list[int],
          source: str) -> list[Cell]:  # fmt: skip
    """One cell per dataset × seed of the grid's ``[fidelity]`` table (a
    :class:`FidelityConfig`, its ``seed`` the grid's)."""
    where = f"{source} [fidelity]"
    opts = options(table, FidelityConfig, where)
    for key in ("worlds", "members"):
        if key in opts:
            value = opts[key]
            opts[key] = tuple(value) if isinstance(value, list) else (value,)
    check_nested(opts, where)
    return [Cell("fidelity", data, "panel", "", seed,
                 json_ready(asdict(build(FidelityConfig, {**opts, "seed": seed}, where))),
                 cpus_of(table, where))
            for data in datasets for seed in seeds]  # fmt: skip


def compute(cell: Cell, folder: Path,
            cache: Path | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:  # fmt: skip
    """The panel on the cell's dataset: the agreement rows (with the cell's labels' seed) and
    the per-policy values."""
    cfg: dict[str, Any] = {k: tuple(v) if k in ("worlds", "members") else v
                           for k, v in cell.config.items()}  # fmt: skip
    result = run_fidelity(cell.dataset, FidelityConfig(**cfg), cache=cache)
    rows = pd.concat([result.rows, result.panel], ignore_index=True)
    rows["dataset"], rows["seed"] = cell.dataset, cell.seed
    return rows, {}
