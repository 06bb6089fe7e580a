"""`recloop diagnose`: the oracle and the look-ahead beat a weak greedy model; it is seeded."""

from __future__ import annotations

import pytest

from recloop.bench import DiagnoseConfig, diagnose
from recloop.data import leave_one_out, load_dataset
from recloop.errors import ConfigError
from recloop.models.sequential import SASRec
from recloop.sim.world import World


@pytest.fixture(scope="module")
def setup():
    ds = load_dataset("ml-100k")
    split = leave_one_out(ds)
    weak = SASRec(seed=0, epochs=1, max_len=20).fit(split.train, progress=False)
    return ds, World.fit(ds, progress=False), weak


def test_lookahead_and_oracle_against_greedy(setup) -> None:
    ds, world, weak = setup
    cfg = DiagnoseConfig(users=40, horizon=2, rollouts=3, candidates=4, seed=1)
    res = diagnose(ds, cfg, world=world, greedy_model=weak)
    assert res["users"] == 40 and set(res["mean"]) == {"greedy", "myopic", "lookahead"}
    # the oracle knows the simulated users; a one-epoch SASRec does not
    assert res["mean"]["myopic"] > res["mean"]["greedy"]
    # planning with the true model, starting from the oracle's slate among the candidates,
    # does not fall far below the oracle
    assert res["mean"]["lookahead"] >= 0.85 * res["mean"]["myopic"]
    assert res["lookahead_over_myopic"] == pytest.approx(
        res["mean"]["lookahead"] / res["mean"]["myopic"]
    )
    again = diagnose(ds, cfg, world=world, greedy_model=weak)
    assert again["returns"] == res["returns"]  # seeded


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="candidates must be at least 2"):
        DiagnoseConfig(candidates=1)
    with pytest.raises(ConfigError, match="horizon must be at least 1"):
        DiagnoseConfig(horizon=0)
    with pytest.raises(ConfigError, match="unknown world 'gru5rec'; choose from"):
        DiagnoseConfig(world_name="gru5rec")


def test_the_diagnostic_runs_in_a_named_sequential_world(setup) -> None:
    ds, _, weak = setup
    cfg = DiagnoseConfig(users=30, horizon=1, rollouts=2, candidates=3, seed=2,
                         world_name="gru4rec", world={"epochs": 3})  # fmt: skip
    res = diagnose(ds, cfg, greedy_model=weak)
    # the oracle reads the sequential world's own choice model; a one-epoch SASRec does not
    assert res["mean"]["myopic"] > res["mean"]["greedy"]


def test_the_arena_and_the_diagnostic_share_one_greedy_fit(setup, tmp_path, monkeypatch) -> None:
    from recloop.bench import ArenaConfig, run_arena

    ds, world, _ = setup
    greedy = {"max_len": 20, "epochs": 1, "batch_size": 64}
    fits: list[int] = []
    real = SASRec._fit
    monkeypatch.setattr(
        SASRec, "_fit", lambda self, d, progress: (fits.append(1), real(self, d, progress))
    )
    arena = ArenaConfig(agents=("greedy",), guardrail=(False,), eval_users=30, greedy=greedy)
    run_arena(ds, arena, tmp_path / "arena", cache=tmp_path / "cache")
    cfg = DiagnoseConfig(users=20, horizon=1, rollouts=2, candidates=3, greedy=greedy)
    shared = diagnose(ds, cfg, world=world, cache=tmp_path / "cache")
    sasrec_entries = [p for p in (tmp_path / "cache").iterdir() if p.name.startswith("sasrec-")]
    assert len(fits) == 1 and len(sasrec_entries) == 1
    # the loaded fit is the fit: the same returns as the diagnostic fitting its own
    own = diagnose(ds, cfg, world=world)
    assert len(fits) == 2 and own["returns"] == shared["returns"]
