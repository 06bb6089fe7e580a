"""Off-policy estimators checked against ground truth in the user simulator.

A known stochastic behaviour policy collects logs in the simulator: each round starts a
simulated user from their logged history, shows a slate from a per-user candidate set, and
records what the user did. Several target policies are then estimated from those logs and
compared with their true value in the same simulator, over repeated logs of growing size.

- **One item (``slate_size = 1``)**: behaviour = softmax over the candidates' popularity;
  estimators IPS, clipped IPS, SNIPS, DM, DR, Switch-DR. The reward model of DM/DR is a
  cross-fitted per-item reward rate (:mod:`recloop.ope.regression`): it ignores the user, as a
  cheap production model would. The truth is exact: the simulator's click probability of each
  (user, item) pair times its expected reward given a click, averaged under the target. An
  on-policy Monte-Carlo run of each target in the simulator is reported beside it as a check.
- **Slates (``slate_size > 1``)**: behaviour = ordered slates drawn uniformly from the
  candidates; estimators IIPS and PI (the uniform closed form). The reward of a slot is the
  reward of its item if the user clicked it. The truth is the target's on-policy Monte-Carlo
  value. The simulated user picks at most one item per slate (a multinomial logit), so the
  slot rewards interact: neither IIPS's nor PI's assumption holds exactly, and the check
  measures how much that costs.

Targets (on the same candidates): ``uniform``; ``popularity`` (greedy by popularity);
``MODEL-softmax`` (a recloop model's per-user standardised scores, softmax at temperature
``target_temperature``); ``MODEL-epsilon`` (that model, greedy, with ε-uniform exploration).

The experiment of a grid's ``[ope]`` table (one cell per dataset × seed: :func:`cells`,
:func:`compute`); the estimators it checks are :mod:`recloop.ope`'s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recloop.bench.cells import Cell, build, config_keys, cpus_of, json_ready, options
from recloop.data.dataset import Dataset
from recloop.data.ranking import top_k
from recloop.errors import ConfigError, DataError
from recloop.ope.estimators import Estimate, one_item_estimates
from recloop.ope.policies import (
    Exploration,
    action_distribution,
    draw_slates,
    slot_marginals,
)
from recloop.ope.regression import cross_fitted_rates
from recloop.ope.slates import pseudo_inverse, slate_independent_ips
from recloop.progress import progress_bar
from recloop.sim.core import SimConfig, UserBatch
from recloop.sim.world import World

__all__ = ["SimCheckConfig", "SimSetup", "cells", "compute", "sim_check", "sim_rows", "sim_setup"]


@dataclass(frozen=True)
class SimCheckConfig:
    """Options of the simulator check (see the module docstring)."""

    log_sizes: tuple[int, ...] = (300, 1000, 3000, 10_000)
    reps: int = 10
    slate_size: int = 1
    candidates: int = 50  # per user: the most popular items the user has not seen
    behavior_temperature: float = 1.0  # softmax over standardised popularity (slate_size 1)
    model: str = "itemknn"  # the recloop model behind the MODEL-* targets
    target_temperature: float = 0.5
    target_epsilon: float = 0.1
    clip: float = 10.0
    tau: float = 10.0
    n_folds: int = 3
    truth_rounds: int = 50_000  # on-policy Monte-Carlo rounds per target
    n_sim: int = 5_000  # Monte-Carlo draws per user for softmax slot marginals
    chunk: int = 10_000  # simulated users stepped at once
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.log_sizes or min(self.log_sizes) < 10:
            raise ConfigError("log_sizes must be non-empty, each at least 10 rounds")
        if self.reps < 1:
            raise ConfigError(f"reps must be at least 1, got {self.reps}")
        if self.slate_size < 1 or self.candidates <= self.slate_size:
            raise ConfigError(
                f"need 1 <= slate_size < candidates, got {self.slate_size} and {self.candidates}"
            )
        if self.truth_rounds < 100:
            raise ConfigError(f"truth_rounds must be at least 100, got {self.truth_rounds}")


@dataclass
class SimSetup:
    """The simulator, the users' candidate sets and the policies over them."""

    world: World
    sim: SimConfig
    users: np.ndarray  # (U,) user indices that sessions start from
    cand: np.ndarray  # (U, C) candidate items per user
    behavior: np.ndarray  # (U, C) behaviour policy's distribution (slate_size 1)
    targets: dict[str, tuple[np.ndarray, Exploration]]  # name → ((U, C) scores, exploration)


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=1, keepdims=True)
    return (x - x.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def sim_setup(
    dataset: Dataset, config: SimCheckConfig, world: World | None = None, progress: bool = False
) -> SimSetup:
    """Fit (or take) the simulator, pick candidates, and build the behaviour and targets."""
    from recloop.models.registry import build_model

    world = world or World.fit(dataset, progress=progress)
    sim = SimConfig(slate_size=config.slate_size, leave_bias=0.0)  # one step: leaving is moot
    users = world.active_users
    seen = world.history.rows(users).toarray().astype(bool)
    counts = np.bincount(world.history.items, minlength=world.n_items).astype(np.float64)
    pop = np.log1p(counts)
    masked = np.where(seen, -np.inf, pop[None, :])
    if (np.isfinite(masked).sum(axis=1) < config.candidates).any():
        raise DataError(
            f"some user has seen all but fewer than {config.candidates} items; lower candidates"
        )
    cand, _ = top_k(masked, config.candidates)  # the most popular unseen items
    pop_c = _standardise(pop[cand])
    model = build_model(config.model, seed=config.seed).fit(dataset, progress=progress)
    scores = np.take_along_axis(model.score(users), cand, axis=1).astype(np.float64)
    model_c = _standardise(scores)
    behavior = action_distribution(
        pop_c, Exploration("softmax", temperature=config.behavior_temperature)
    )
    targets = {
        "uniform": (np.zeros_like(pop_c), Exploration("softmax")),
        "popularity": (pop_c, Exploration("greedy")),
        f"{config.model}-softmax": (
            model_c,
            Exploration("softmax", temperature=config.target_temperature),
        ),
        f"{config.model}-epsilon": (model_c, Exploration("epsilon", epsilon=config.target_epsilon)),
    }
    return SimSetup(world, sim, users, cand, behavior, targets)


def _step(setup: SimSetup, rows: np.ndarray, slates: np.ndarray, rng: np.random.Generator,
          chunk: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Show ``slates`` (candidate positions) to the users ``setup.users[rows]``, one step each.

    Returns ``(K-slot rewards, click probability)``: the reward sits at the clicked slot.
    """
    k = slates.shape[1]
    rewards = np.zeros((len(rows), k))
    click_prob = np.zeros(len(rows))
    for lo in range(0, len(rows), chunk):
        r = rows[lo : lo + chunk]
        items = setup.cand[r[:, None], slates[lo : lo + chunk]]
        batch = UserBatch(setup.world, setup.sim, len(r))
        batch.reset(np.arange(len(r)), setup.users[r])
        res = batch.step(items, rng)
        hit = items == res.clicked[:, None]
        rewards[lo : lo + chunk] = hit * res.reward[:, None]
        click_prob[lo : lo + chunk] = res.click_prob
    return rewards, click_prob


def exact_values(setup: SimSetup, chunk: int = 10_000) -> np.ndarray:
    """(U, C) expected one-step reward of showing each candidate alone to each user.

    The simulator's click probability of a one-item slate (its ``click_prob``) times the
    expected reward given a click, ``other + (like − other) · P(like)``.
    """
    n_users, c = setup.cand.shape
    rows = np.repeat(np.arange(n_users), c)
    slates = np.tile(np.arange(c), n_users)[:, None]
    one = replace(setup.sim, slate_size=1)
    single = SimSetup(setup.world, one, setup.users, setup.cand, setup.behavior, setup.targets)
    _, click_prob = _step(single, rows, slates, np.random.default_rng(0), chunk)
    items = setup.cand.ravel()
    like = setup.world.like_prob(setup.users[rows], items)
    per_click = one.other + (one.like - one.other) * like
    return (click_prob * per_click).reshape(n_users, c)


def on_policy_value(setup: SimSetup, name: str, rounds: int, seed: int,
                    chunk: int = 10_000) -> tuple[float, float]:  # fmt: skip
    """Monte-Carlo value of a target: mean total slate reward over ``rounds`` simulated rounds.

    Returns ``(mean, standard error)``.
    """
    rng = np.random.default_rng([seed, 7])
    rows = rng.integers(0, len(setup.users), rounds)
    scores, exploration = setup.targets[name]
    slates = draw_slates(scores[rows], exploration, setup.sim.slate_size, rng)
    rewards, _ = _step(setup, rows, slates, rng, chunk)
    total = rewards.sum(axis=1)
    return float(total.mean()), float(total.std(ddof=1) / np.sqrt(rounds))


def _one_item(setup: SimSetup, config: SimCheckConfig, rows: np.ndarray, rng: np.random.Generator,
              target_dists: dict[str, np.ndarray], seed: int) -> dict[str, list[Estimate]]:  # fmt: skip
    p = setup.behavior[rows]
    u = rng.random(len(rows))[:, None]
    actions = np.minimum((u > np.cumsum(p, axis=1)).sum(axis=1), p.shape[1] - 1)
    rewards, _ = _step(setup, rows, actions[:, None], rng, config.chunk)
    r = rewards[:, 0]
    pscore = p[np.arange(len(rows)), actions]
    items = setup.cand[rows, actions]
    rates = cross_fitted_rates(np.zeros(len(rows), dtype=np.int64), items, r, 1,
                               setup.world.n_items, n_folds=config.n_folds, seed=seed)  # fmt: skip
    q_hat = np.take_along_axis(rates, setup.cand[rows], axis=1)
    out = {}
    for name, dist in target_dists.items():
        d = dist[rows]
        out[name] = one_item_estimates(actions, r, pscore, d, q_hat, clip=config.clip,
                                       tau=config.tau)  # fmt: skip
    return out


def _slates(setup: SimSetup, config: SimCheckConfig, rows: np.ndarray, rng: np.random.Generator,
            marginals: dict[str, np.ndarray]) -> dict[str, list[Estimate]]:  # fmt: skip
    k, c = config.slate_size, config.candidates
    logged = np.argsort(rng.random((len(rows), c)), axis=1)[:, :k]  # uniform ordered slates
    rewards, _ = _step(setup, rows, logged, rng, config.chunk)
    pscore = np.full((len(rows), k), 1.0 / c)
    cols = np.arange(k)[None, :]
    out = {}
    for name, marg in marginals.items():
        m = marg[rows]  # (n, C, K)
        target = m[np.arange(len(rows))[:, None], logged, cols]
        # the first slot's marginal is exact and the others Monte Carlo (softmax), so their sum
        # can overshoot 1 by the simulation error
        anywhere = np.minimum(m.sum(axis=2)[np.arange(len(rows))[:, None], logged], 1.0)
        out[name] = [
            slate_independent_ips(rewards, pscore, target),
            pseudo_inverse(
                rewards, pscore, target, logging="uniform", target_anywhere=anywhere, n_items=c
            ),
        ]
    return out


def sim_check(
    dataset: Dataset,
    config: SimCheckConfig | None = None,
    world: World | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the check; return ``(summary rows, per-repetition rows)``.

    Summary: one row per (target, estimator, log size) with the mean relative error, the CI
    coverage over repetitions, the mean estimate, its spread, the mean effective sample size,
    and the truth. Per repetition: every single estimate.
    """
    cfg = config or SimCheckConfig()
    setup = sim_setup(dataset, cfg, world, progress)
    k = cfg.slate_size
    truths: dict[str, dict[str, float]] = {}
    exact = exact_values(setup, cfg.chunk) if k == 1 else None
    dists: dict[str, np.ndarray] = {}
    for j, (name, (scores, exploration)) in enumerate(setup.targets.items()):
        mc, se = on_policy_value(setup, name, cfg.truth_rounds, cfg.seed + j, cfg.chunk)
        if k == 1:
            dists[name] = action_distribution(scores, exploration)
            value = float(np.mean(np.sum(dists[name] * exact, axis=1)))
        else:
            dists[name], _ = slot_marginals(scores, exploration, k, n_sim=cfg.n_sim, seed=cfg.seed)
            value = mc
        truths[name] = {"truth": value, "truth_mc": mc, "truth_mc_se": se}
    reps: list[dict[str, Any]] = []
    total = len(cfg.log_sizes) * cfg.reps
    with progress_bar(total, "OPE in the simulator", progress) as bar:
        for n in cfg.log_sizes:
            for rep in range(cfg.reps):
                rng = np.random.default_rng([cfg.seed, n, rep])
                rows = rng.integers(0, len(setup.users), n)
                est = (
                    _one_item(setup, cfg, rows, rng, dists, cfg.seed + rep)
                    if k == 1
                    else _slates(setup, cfg, rows, rng, dists)
                )
                for name, estimates in est.items():
                    t = truths[name]["truth"]
                    reps += [{"target": name, "method": e.method, "log_size": n, "rep": rep,
                              "value": e.value, "ci_low": e.low, "ci_high": e.high,
                              "rel_error": e.relative_error(t), "covered": float(e.covers(t)),
                              "ess": e.ess, "max_weight": e.max_weight, **truths[name]}
                             for e in estimates]  # fmt: skip
                bar.advance()
    per_rep = pd.DataFrame(reps)
    keys = ["target", "method", "log_size"]
    summary = (
        per_rep.groupby(keys, sort=False)
        .agg(
            rel_error=("rel_error", "mean"),
            ci_coverage=("covered", "mean"),
            value=("value", "mean"),
            value_sd=("value", "std"),
            ess=("ess", "mean"),
            truth=("truth", "first"),
            truth_mc=("truth_mc", "first"),
            truth_mc_se=("truth_mc_se", "first"),
            reps=("rep", "count"),
        )
        .reset_index()
    )
    return summary, per_rep


SIM_METRICS = ("rel_error", "ci_coverage", "ess", "value", "truth", "truth_mc")


def sim_rows(summary: pd.DataFrame, dataset: str, seed: int,
             benchmark: str = "ope") -> pd.DataFrame:  # fmt: skip
    """Tidy rows of a :func:`sim_check` summary: ``split`` is the target policy, ``variant``
    the log size, ``n`` the repetitions; ``value`` rows carry ± one standard deviation of the
    estimates over repetitions as their interval."""
    rows = []
    for r in summary.to_dict("records"):
        base = {"benchmark": benchmark, "dataset": dataset, "method": r["method"],
                "variant": str(r["log_size"]), "seed": seed, "split": r["target"], "n": r["reps"]}  # fmt: skip
        for m in SIM_METRICS:
            row = {**base, "metric": m, "value": r[m]}
            if m == "value":
                row |= {"ci_low": r["value"] - r["value_sd"], "ci_high": r["value"] + r["value_sd"]}
            rows.append(row)
    return pd.DataFrame(rows)


SECTION = "ope"
KEYS = config_keys(SimCheckConfig)


def cells(table: dict[str, Any], datasets: list[str], seeds: list[int],
          source: str) -> list[Cell]:  # fmt: skip
    """One cell per dataset × seed of the grid's ``[ope]`` table (a :class:`SimCheckConfig`,
    its ``seed`` the grid's)."""
    where = f"{source} [ope]"
    opts = options(table, SimCheckConfig, where)
    cpus = cpus_of(table, where)
    found = []
    for data in datasets:
        for seed in seeds:
            cfg = build(SimCheckConfig, {**opts, "seed": seed}, where)
            found.append(Cell("ope", data, "estimators", f"k{cfg.slate_size}", seed,
                              json_ready(asdict(cfg)), cpus))  # fmt: skip
    return found


def compute(cell: Cell, folder: Path,
            cache: Path | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:  # fmt: skip
    """The check on the cell's dataset: its tidy rows (:func:`sim_rows`)."""
    from recloop.data import load_dataset

    cfg = dict(cell.config)
    cfg["log_sizes"] = tuple(cfg["log_sizes"])
    summary, _ = sim_check(load_dataset(cell.dataset), SimCheckConfig(**cfg))
    return sim_rows(summary, f"sim-{cell.dataset}", cell.seed, benchmark="bench"), {}
