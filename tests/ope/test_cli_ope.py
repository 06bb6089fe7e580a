"""`recloop ope`: a trained policy estimated from a log file, run as a user runs it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from recloop.data.vocab import Vocabulary
from recloop.models import Recommender
from recloop.runs import read_run

run = run_cli


@pytest.fixture(scope="module")
def pop_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "pop"
    run("train", "pop", "--data", "ml-100k", "--out", str(out), "--quiet")
    return out


@pytest.fixture(scope="module")
def logs(pop_run, tmp_path_factory):
    """Uniform logging over the run's five most popular items; clicks at random."""
    info = read_run(pop_run)
    items = Vocabulary(info["vocab"]["items"], name="item").all_ids
    users = Vocabulary(info["vocab"]["users"], name="user").all_ids
    scores = Recommender.load(pop_run / "model").score(np.array([0]))[0]
    top5 = items[np.argsort(-scores, kind="stable")[:5]]
    rng = np.random.default_rng(0)
    n = 4000
    shown = rng.choice(top5, n)
    frame = pd.DataFrame(
        {
            "user": rng.choice(users, n),
            "item": shown,
            # the most popular item is clicked more often than the others
            "reward": (rng.random(n) < np.where(shown == top5[0], 0.3, 0.1)).astype(float),
            "propensity": 0.2,
        }
    )
    path = tmp_path_factory.mktemp("logs") / "logs.csv"
    frame.to_csv(path, index=False)
    return path, frame, top5[0]


def test_greedy_policy_estimates_match_hand_computation(pop_run, logs, tmp_path) -> None:
    path, frame, best = logs
    out = tmp_path / "est.csv"
    proc = run("ope", "--logs", str(path), "--policy", str(pop_run), "--exploration", "greedy",
               "--out", str(out))  # fmt: skip
    for name in ("ips", "cips", "snips", "dm", "dr", "switch_dr"):
        assert f"| {name} |" in proc.stdout
    est = pd.read_csv(out).set_index("method")
    # greedy picks the most popular item for everyone: weight 1 / 0.2 on its rows, 0 elsewhere
    hit = (frame["item"] == best).to_numpy()
    r = frame["reward"].to_numpy()
    assert est.loc["ips", "value"] == pytest.approx(np.mean(5.0 * hit * r))
    assert est.loc["snips", "value"] == pytest.approx(r[hit].mean())
    assert est.loc["ips", "max_weight"] == pytest.approx(5.0)
    assert est.loc["ips", "ess"] == pytest.approx(hit.sum())  # equal weights on the hit rows
    # the truth is 0.3; the estimates land near it
    for name in ("ips", "snips", "dr", "dm"):
        assert abs(est.loc[name, "value"] - 0.3) < 0.05, name


def test_bad_logs_get_one_line_errors(pop_run, logs, tmp_path) -> None:
    path, frame, _ = logs
    cases = {
        "missing.csv": (frame.drop(columns=["propensity"]), "lacks column(s) ['propensity']"),
        "unknown.csv": (frame.assign(user="nobody"), "the log has user ids the run does not know"),
        "zero.csv": (frame.assign(propensity=0.0), "pscore must lie in (0, 1]"),
        "nan.csv": (frame.assign(reward=np.nan), "column 'reward' has a missing or non-numeric"),
    }
    for name, (bad, message) in cases.items():
        p = tmp_path / name
        bad.to_csv(p, index=False)
        proc = run("ope", "--logs", str(p), "--policy", str(pop_run), ok=False)
        assert proc.returncode == 2 and message in proc.stderr, (name, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = run("ope", "--logs", str(path), "--policy", str(pop_run), "--exploration", "ucb",
               ok=False)  # fmt: skip
    assert proc.returncode == 2 and "unknown exploration 'ucb'" in proc.stderr


def test_short_logs_positions_and_unwritable_out(pop_run, logs, tmp_path) -> None:
    path, frame, _ = logs
    short = tmp_path / "short.csv"
    frame.head(2).to_csv(short, index=False)
    proc = run("ope", "--logs", str(short), "--policy", str(pop_run), ok=False)
    assert proc.returncode == 2 and "the log has 2 rows" in proc.stderr
    # slots with large labels are numbered as they occur, not allocated up to the label
    slotted = tmp_path / "slots.csv"
    frame.assign(position=np.where(np.arange(len(frame)) % 2, 10**9, 7)).to_csv(
        slotted, index=False
    )
    proc = run("ope", "--logs", str(slotted), "--policy", str(pop_run), "--exploration", "greedy")
    assert "| dr |" in proc.stdout
    proc = run("ope", "--logs", str(path), "--policy", str(pop_run), "--out", str(tmp_path),
               ok=False)  # fmt: skip
    assert proc.returncode == 2 and "cannot write --out" in proc.stderr
