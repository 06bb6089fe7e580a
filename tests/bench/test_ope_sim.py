"""The simulator check: exact truths agree with on-policy Monte Carlo; estimates are seeded."""

from __future__ import annotations

import numpy as np
import pytest

from recloop.bench.experiments.ope_sim import (
    SimCheckConfig,
    exact_values,
    on_policy_value,
    sim_check,
    sim_setup,
)
from recloop.data import load_dataset
from recloop.sim.world import World


@pytest.fixture(scope="module")
def ml100k():
    ds = load_dataset("ml-100k")
    return ds, World.fit(ds, progress=False)


def test_exact_truth_matches_on_policy_monte_carlo(ml100k) -> None:
    ds, world = ml100k
    setup = sim_setup(ds, SimCheckConfig(candidates=20), world)
    assert setup.cand.shape == (len(setup.users), 20)
    seen = world.history.rows(setup.users).toarray().astype(bool)
    assert not seen[np.arange(len(setup.users))[:, None], setup.cand].any()  # candidates unseen
    exact = exact_values(setup)
    assert exact.shape == setup.cand.shape and (exact >= 0).all() and (exact <= 1).all()
    from recloop.ope.policies import action_distribution

    for name in ("uniform", "itemknn-epsilon"):
        scores, exploration = setup.targets[name]
        truth = float(np.mean(np.sum(action_distribution(scores, exploration) * exact, axis=1)))
        mc, se = on_policy_value(setup, name, 40_000, seed=1)
        assert abs(mc - truth) < 4 * se, name


def test_one_item_check_is_seeded_and_ips_lands_near_the_truth(ml100k) -> None:
    ds, world = ml100k
    cfg = SimCheckConfig(log_sizes=(3000,), reps=4, candidates=20, truth_rounds=2000)
    summary, per_rep = sim_check(ds, cfg, world)
    again, _ = sim_check(ds, cfg, world)
    assert summary.equals(again)
    assert set(summary["method"]) == {"ips", "cips", "snips", "dm", "dr", "switch_dr"}
    assert len(per_rep) == 4 * 6 * 4  # targets × estimators × reps
    ips = summary[(summary["method"] == "ips") & (summary["target"] == "uniform")].iloc[0]
    assert ips["rel_error"] < 0.15 and ips["ci_coverage"] >= 0.5


def test_slate_check_runs_iips_and_pi(ml100k) -> None:
    ds, world = ml100k
    cfg = SimCheckConfig(log_sizes=(2000,), reps=2, slate_size=3, candidates=10,
                         truth_rounds=2000, n_sim=500)  # fmt: skip
    summary, _ = sim_check(ds, cfg, world)
    assert set(summary["method"]) == {"iips", "pi"}
    # the logging policy is uniform, so for the uniform target every weight is about 1 (exactly
    # 1 in the first two slots; Monte-Carlo marginals after that) and IIPS is nearly the plain
    # mean; it lands near the on-policy value
    row = summary[(summary["method"] == "iips") & (summary["target"] == "uniform")].iloc[0]
    assert row["rel_error"] < 0.15
