"""The Open Bandit Dataset check: BTS's click rate estimated from the random policy's logs."""

from __future__ import annotations

import numpy as np
import pytest

from recloop.bench import bts_from_random
from recloop.ope import ips
from recloop.ope.obd import bts_prior, bts_slot_distribution, load_obd


def test_bts_from_random_matches_its_parts() -> None:
    rows = bts_from_random("men", n_runs=3, n_sim=20_000, seed=0)
    assert set(rows["method"]) == {
        "ips",
        "cips",
        "snips",
        "dm",
        "dr",
        "switch_dr",
        "dm_lr",
        "dr_lr",
        "switch_dr_lr",
        "world",
    }
    assert set(rows["variant"]) == {"full", "bootstrap"}
    truth = load_obd("bts", "men").rewards.mean()
    assert np.allclose(rows["truth"], truth)
    # the full-log IPS row is IPS over the random log with BTS's slot marginals
    log = load_obd("random", "men")
    dist = bts_slot_distribution(*bts_prior("men"), 3, n_sim=20_000, seed=0)[:, log.positions].T
    e = ips(log.actions, log.rewards, log.pscore, dist)
    full = rows[(rows["method"] == "ips") & (rows["variant"] == "full")].iloc[0]
    assert full["value"] == pytest.approx(e.value)
    assert full["rel_error"] == pytest.approx(abs(e.value - truth) / truth)
    assert full["ci_coverage"] == float(e.low <= truth <= e.high)
    assert rows.equals(bts_from_random("men", n_runs=3, n_sim=20_000, seed=0))  # seeded


def test_bootstrap_runs_are_the_open_bandit_pipelines_resamples() -> None:
    from recloop.bench.experiments.obd import obp_resample

    # OBP's sample_bootstrap_bandit_feedback(random_state=b) draws
    # RandomState(b).choice(arange(n), n, replace=True): pinned rows of its runs 0 and 29 on
    # the 10,000-round sample, so a change of generator (which would unpair the comparison
    # with OBP's published errors) fails here
    assert obp_resample(10_000, 0)[:4].tolist() == [2732, 9845, 3264, 4859]
    assert obp_resample(10_000, 29)[:3].tolist() == [8149, 6380, 808]
    rows = obp_resample(10_000, 3)
    assert rows.shape == (10_000,) and rows.min() >= 0 and rows.max() < 10_000


def test_the_context_click_model_learns_a_known_logistic_rule() -> None:
    from recloop.ope.regression import ContextClickModel, select_c

    rng = np.random.default_rng(0)
    n, items = 20_000, np.eye(4)
    x = rng.normal(size=(n, 2))
    k = rng.integers(0, 2, n)
    a = rng.integers(0, 4, n)
    # true rule: logit = 1.5 x0 - x1 + item effect (-1, 0, 1, 2) - slot (0, 1)
    logit = 1.5 * x[:, 0] - x[:, 1] + np.array([-1.0, 0.0, 1.0, 2.0])[a] - k
    r = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    model = ContextClickModel(2, items, c=10.0).fit(x, k, a, r)
    probe = np.array([[0.0, 0.0], [1.0, -1.0]])
    got = model.predict(probe, np.array([0, 1]))
    z = np.array([[-1.0, 0.0, 1.0, 2.0], [1.5 + 1 - 1 + e for e in (-1.0, 0.0, 1.0, 2.0)]])
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-z)), atol=0.04)
    # on such plentiful data the least-penalised C fits best out of fold
    assert select_c(x, items, k, a, r, 2, grid=(1e-4, 10.0)) == 10.0


def test_the_world_as_estimator_on_the_shipped_sample() -> None:
    from recloop.bench.experiments.obd import world_estimate

    log = load_obd("random", "all")
    # the world fitted on the random policy's logs, running the random policy itself: it must
    # give back the log's own click rate, within the simulation's noise and the fit's error
    uniform = np.full((log.n_actions, log.len_list), 1.0 / log.n_actions)
    e = world_estimate(log, uniform, c=0.01, seed=0, n_sim=200_000)
    assert e.method == "world" and e.n == log.n_rounds
    assert e.low < e.value < e.high
    assert abs(e.value - log.rewards.mean()) < 0.25 * log.rewards.mean()
    bts = bts_slot_distribution(*bts_prior("all"), 3, n_sim=20_000, seed=0)
    assert (
        world_estimate(log, bts, c=0.01, seed=0).value
        == world_estimate(log, bts, c=0.01, seed=0).value
    )  # seeded
