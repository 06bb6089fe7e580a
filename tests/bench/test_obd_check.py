"""The Open Bandit Dataset check: BTS's click rate estimated from the random policy's logs."""

from __future__ import annotations

import numpy as np
import pytest

from recloop.bench import bts_from_random
from recloop.ope import ips
from recloop.ope.obd import bts_prior, bts_slot_distribution, load_obd


def test_bts_from_random_matches_its_parts() -> None:
    rows = bts_from_random("men", n_runs=3, n_sim=20_000, seed=0)
    assert set(rows["method"]) == {"ips", "cips", "snips", "dm", "dr", "switch_dr"}
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
