"""The Open Bandit Dataset check: Bernoulli Thompson sampling's click rate estimated from the
uniformly random policy's logs of the same campaign and week (:mod:`recloop.ope.obd` reads
them), against BTS's own on-policy rate.

The experiment of the ``obd`` list in a grid's ``[ope]`` table: one cell per campaign × seed
(:func:`cells`, :func:`compute`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recloop.bench.cells import Cell, cpus_of
from recloop.errors import ConfigError, DataError
from recloop.ope.estimators import Estimate, one_item_estimates
from recloop.ope.obd import (
    CAMPAIGNS,
    ObdLog,
    bts_prior,
    bts_slot_distribution,
    load_obd,
)
from recloop.ope.regression import (
    ContextClickModel,
    cross_fitted_context_rates,
    cross_fitted_rates,
    select_c,
)

__all__ = ["bts_from_random", "cells", "compute", "obd_rows", "obp_resample", "world_estimate"]

SECTION = "ope"
KEYS = frozenset({"obd", "obd_runs", "cpus"})


def bts_from_random(
    campaign: str,
    *,
    n_runs: int = 30,
    n_sim: int = 100_000,
    clip: float = 10.0,
    tau: float = 10.0,
    n_folds: int = 3,
    strength: float = 10.0,
    confidence: float = 0.95,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """The standard OBD check: estimate BTS's click rate from the uniformly random policy's logs.

    The ground truth is BTS's on-policy click rate in its own logs of the same campaign and
    week. The target distribution is BTS with the production prior (:func:`bts_prior`),
    computed by :func:`bts_slot_distribution`; DM, DR and Switch-DR use a per-(slot, item) click
    rate, shrunk towards the slot's rate and cross-fitted (:mod:`recloop.ope.regression`), and
    again (``dm_lr``, ``dr_lr``, ``switch_dr_lr``) a cross-fitted logistic regression per slot
    over the user features, the user-item affinities and the item features (the Open Bandit
    Pipeline's reward model), its penalty chosen once by cross-validated log-loss on the random
    log. ``world`` is the simulator as an estimator (:func:`world_estimate`).

    Rows (one per estimator and variant): ``variant="full"`` is the estimate on the whole
    random log, with its interval; ``variant="bootstrap"`` averages ``n_runs`` bootstrap
    resamples of that log, as the Open Bandit Pipeline paper reports its relative errors, and
    on the same resamples (:func:`obp_resample`: run ``b`` is OBP's ``random_state=seed + b``).
    Columns: ``method, variant, value, ci_low, ci_high, truth, truth_low, truth_high,
    rel_error, ci_coverage, ess, max_weight, n``.
    """
    from recloop.eval.stats import mean_ci

    if n_runs < 1:
        raise ConfigError(f"n_runs must be positive, got {n_runs}")
    logs = load_obd("random", campaign)
    on_policy = load_obd("bts", campaign)
    truth = mean_ci(on_policy.rewards, confidence)
    alpha, beta = bts_prior(campaign)
    if alpha.size != logs.n_actions:
        raise DataError(
            f"the BTS prior has {alpha.size} items but the {campaign!r} logs have {logs.n_actions}"
        )
    slot_dist = bts_slot_distribution(alpha, beta, logs.len_list, n_sim=n_sim, seed=seed)
    assert logs.context is not None and logs.action_context is not None
    c = select_c(logs.context, logs.action_context, logs.positions, logs.actions, logs.rewards,
                 logs.len_list, n_folds=n_folds, seed=seed)  # fmt: skip

    def estimates(log: ObdLog, run_seed: int, origin: np.ndarray | None = None) -> list[Estimate]:
        assert log.context is not None and log.action_context is not None
        dist = slot_dist[:, log.positions].T
        q_hat = cross_fitted_rates(
            log.positions, log.actions, log.rewards, log.len_list, log.n_actions,
            n_folds=n_folds, strength=strength, seed=run_seed, origin=origin,
        )  # fmt: skip
        found = one_item_estimates(log.actions, log.rewards, log.pscore, dist, q_hat, clip=clip,
                                   tau=tau, confidence=confidence)  # fmt: skip
        # the same model-based estimators with the logistic context model (OBP's reward model)
        q_ctx = cross_fitted_context_rates(
            log.context, log.action_context, log.positions, log.actions, log.rewards,
            log.len_list, n_folds=n_folds, c=c, seed=run_seed, origin=origin,
        )  # fmt: skip
        with_ctx = one_item_estimates(log.actions, log.rewards, log.pscore, dist, q_ctx,
                                      clip=clip, tau=tau, confidence=confidence)[3:]  # fmt: skip
        found += [replace(e, method=f"{e.method}_lr") for e in with_ctx]
        found.append(world_estimate(log, slot_dist, c, run_seed, confidence))
        return found

    def row(variant: str, es: list[Estimate], low: float, high: float) -> dict[str, object]:
        """One row over one or more estimates of the same estimator (bootstrap runs)."""
        return {
            "method": es[0].method,
            "variant": variant,
            "value": float(np.mean([e.value for e in es])),
            "ci_low": low,
            "ci_high": high,
            "truth": truth.mean,
            "truth_low": truth.low,
            "truth_high": truth.high,
            "rel_error": float(np.mean([e.relative_error(truth.mean) for e in es])),
            "ci_coverage": float(np.mean([e.covers(truth.mean) for e in es])),
            "ess": float(np.mean([e.ess for e in es])),
            "max_weight": float(np.mean([e.max_weight for e in es])),
            "n": es[0].n,
        }

    rows = [row("full", [e], e.low, e.high) for e in estimates(logs, seed)]
    runs: list[list[Estimate]] = []
    for b in range(n_runs):
        idx = obp_resample(logs.n_rounds, seed + b)
        runs.append(estimates(logs.subset(idx), seed + 1 + b, origin=idx))
        if progress is not None:
            progress(1)
    quantiles = ((1 - confidence) / 2, (1 + confidence) / 2)
    for j in range(len(runs[0])):
        es = [run[j] for run in runs]
        low, high = (float(np.quantile([e.value for e in es], q)) for q in quantiles)
        rows.append(row("bootstrap", es, low, high))
    return pd.DataFrame(rows)


def obp_resample(n_rounds: int, random_state: int) -> np.ndarray:
    """The rows of the Open Bandit Pipeline's bootstrap resample ``random_state``
    (``OpenBanditDataset.sample_bootstrap_bandit_feedback``: ``n_rounds`` rows drawn with
    replacement by ``RandomState(random_state)``), so that seed 0's runs 0..29 are the very
    resamples behind OBP's published relative errors and the comparison is paired."""
    return np.random.RandomState(random_state).choice(n_rounds, size=n_rounds, replace=True)


def world_estimate(log: ObdLog, target: np.ndarray, c: float, seed: int,
                   confidence: float = 0.95, n_sim: int = 100_000) -> Estimate:  # fmt: skip
    """The simulator as an estimator: a world fitted on ``log`` alone, the target policy run in it.

    The world's users are the log's contexts (each simulated impression draws a logged round's
    context and slot); its clicks are a :class:`~recloop.ope.regression.ContextClickModel`
    (penalty ``c``) fitted on every logged round; the target policy puts item ``a`` in slot
    ``k`` with probability ``target[a, k]``. ``n_sim`` simulated impressions, each a Bernoulli
    click; the value is their click rate, the interval the normal one over the impressions
    (it covers the simulation's noise, not the world's bias). No propensity is used: this is
    what a simulator-based evaluation of a policy amounts to, on real ground truth.
    """
    assert log.context is not None and log.action_context is not None
    from recloop.eval.stats import mean_ci

    world = ContextClickModel(log.len_list, log.action_context, c=c).fit(
        log.context, log.positions, log.actions, log.rewards
    )
    rng = np.random.default_rng([seed, 31])
    rows = rng.integers(0, log.n_rounds, n_sim)
    slots = log.positions[rows]
    cum = np.cumsum(target[:, slots].T, axis=1)  # (n_sim, n_actions)
    items = np.minimum((rng.random(n_sim)[:, None] >= cum / cum[:, -1:]).sum(1), log.n_actions - 1)
    p = world.predict(log.context[rows], slots)[np.arange(n_sim), items]
    clicks = (rng.random(n_sim) < p).astype(np.float64)
    ci = mean_ci(clicks, confidence)
    return Estimate("world", ci.mean, ci.low, ci.high, log.n_rounds, float(log.n_rounds), 0.0,
                    "analytic")  # fmt: skip


OBD_METRICS = ("rel_error", "ci_coverage", "ess", "max_weight", "value", "truth")


def obd_rows(frame: pd.DataFrame, campaign: str, n_runs: int, seed: int,
             benchmark: str = "ope") -> pd.DataFrame:  # fmt: skip
    """Tidy rows of :func:`bts_from_random`: ``split`` is ``bts`` (the target), ``variant`` the
    log size, with ``-boot{n_runs}`` for the means over bootstrap resamples."""
    rows = []
    for r in frame.to_dict("records"):
        variant = str(r["n"]) if r["variant"] == "full" else f"{r['n']}-boot{n_runs}"
        base = {"benchmark": benchmark, "dataset": f"obd-{campaign}", "method": r["method"],
                "variant": variant, "seed": seed, "split": "bts", "n": r["n"]}  # fmt: skip
        for m in OBD_METRICS:
            row = {**base, "metric": m, "value": r[m]}
            if m == "value":
                row |= {"ci_low": r["ci_low"], "ci_high": r["ci_high"]}
            if m == "truth":
                row |= {"ci_low": r["truth_low"], "ci_high": r["truth_high"]}
            rows.append(row)
    return pd.DataFrame(rows)


def cells(table: dict[str, Any], datasets: list[str], seeds: list[int],
          source: str) -> list[Cell]:  # fmt: skip
    """One cell per campaign listed in the ``[ope]`` table's ``obd`` × seed (the grid's
    datasets do not apply: the campaigns are the data)."""
    cpus = cpus_of(table, f"{source} [ope]")
    campaigns = table.get("obd", [])
    if not isinstance(campaigns, list) or any(c not in CAMPAIGNS for c in campaigns):
        raise ConfigError(f"{source} [ope]: obd must list campaigns from {list(CAMPAIGNS)}")
    runs = table.get("obd_runs", 30)
    if not isinstance(runs, int) or runs < 1:
        raise ConfigError(f"{source} [ope]: obd_runs must be a positive integer, got {runs!r}")
    return [Cell("obd", f"obd-{campaign}", "estimators", "", seed,
                 {"campaign": campaign, "n_runs": runs}, cpus)
            for campaign in campaigns for seed in seeds]  # fmt: skip


def compute(cell: Cell, folder: Path,
            cache: Path | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:  # fmt: skip
    """The check on the cell's campaign: its tidy rows (:func:`obd_rows`)."""
    c = cell.config
    frame = bts_from_random(c["campaign"], n_runs=c["n_runs"], seed=cell.seed)
    return obd_rows(frame, c["campaign"], c["n_runs"], cell.seed, benchmark="bench"), {}
