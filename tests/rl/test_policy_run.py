"""A REINFORCE agent trained in the arena, saved as a run directory: the saved model ranks
exactly as the agent's policy does, differs from the greedy model it started from, and
loads into the serving policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recloop.bench import ArenaConfig, run_arena
from recloop.data import leave_one_out, load_dataset
from recloop.models import Recommender
from recloop.models.sequential import SASRec
from recloop.runs import read_run


def test_a_trained_reinforce_agent_is_saved_as_a_servable_run(tmp_path: Path) -> None:
    cfg = ArenaConfig(
        agents=("reinforce_topk",), guardrail=(False,), steps=10, n_envs=16,
        eval_users=20, greedy={"max_len": 20, "epochs": 2, "dim": 32},
        sim={"history_len": 20, "slate_size": 5},
    )  # fmt: skip
    runs, cells = tmp_path / "runs", tmp_path / "cells"
    tidy, _, _ = run_arena("ml-100k", cfg, cells, runs=runs)
    folder = runs / "ml-100k-reinforce_topk-s0"
    assert sorted(p.name for p in runs.iterdir()) == [folder.name]
    run = read_run(folder)
    assert run["config"]["agent"]["name"] == "reinforce_topk" and run["config"]["model"] == "sasrec"
    # the saved model's protocol NDCG is the agent's own offline NDCG: it ranks as π does
    agent_ndcg = tidy.query("method == 'reinforce_topk' and metric == 'offline_ndcg@10'")["value"]
    assert run["metrics"]["test"]["all"]["ndcg@10"]["mean"] == pytest.approx(
        float(agent_ndcg.iloc[0]), abs=1e-6)  # fmt: skip
    assert run["metrics"]["arena"]["offline_ndcg@10"] == pytest.approx(float(agent_ndcg.iloc[0]))
    # ... with the weights REINFORCE trained, not those of the greedy model it started from
    policy = Recommender.load(folder / "model")
    split = leave_one_out(load_dataset("ml-100k"))
    greedy = SASRec(seed=0, **cfg.greedy).fit(split.train, valid=split, progress=False)
    users = np.arange(20)
    assert np.abs(policy.score(users) - greedy.score(users)).max() > 1e-3
    # the serving policy loads it and serves its ranking
    from recloop.serve.learner import OnlineLearner
    from recloop.serve.policy import ServingPolicy
    from recloop.serve.settings import Settings

    serving = ServingPolicy(folder, Settings(run_dir=str(folder)))
    rec = serving.recommend("1", OnlineLearner(serving).snapshot, 10, "none", None)
    expected, _ = policy.recommend(np.array([serving.user_index["1"]]), k=10)
    assert rec.items.tolist() == expected[0].tolist()
    # a rerun reuses the cell and the run; a missing run retrains its cell, the same run
    stamp = (folder / "config.json").stat().st_mtime_ns
    run_arena("ml-100k", cfg, cells, runs=runs)
    assert (folder / "config.json").stat().st_mtime_ns == stamp
    before = policy.score(np.arange(5))
    import shutil

    shutil.rmtree(folder)
    run_arena("ml-100k", cfg, cells, runs=runs)
    np.testing.assert_array_equal(Recommender.load(folder / "model").score(np.arange(5)), before)
