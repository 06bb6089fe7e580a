"""The loop back: the served event log becomes training data (`recloop retrain`) and
off-policy logs (`recloop ope --from-events`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from recloop.models import Recommender
from recloop.serve.backends import open_store
from recloop.serve.events import interactions_from_events, logs_from_events
from recloop.serve.store import Feedback
from serving import Server


def test_events_to_interactions_and_logs_by_hand(db_url: str) -> None:
    store = open_store(db_url)
    store.log_request("r1", "u1", "v1", "epsilon", [("a", 2.0, 0.9), ("b", 1.0, 0.05)], 0.04,
                      created_at=100.0)  # fmt: skip
    store.log_request("r2", "u2", "v1", "epsilon", [("b", 2.0, 0.9), ("c", 1.0, 0.05)], 0.04,
                      created_at=200.0)  # fmt: skip
    store.add_feedback(Feedback("e1", "r1", "u1", "b", "click", 1.0), created_at=101.5)
    store.add_feedback(Feedback("e2", "r2", "u2", "b", "rating", 3.0), created_at=201.0)
    store.add_feedback(Feedback("e3", "r2", "u2", "c", "rating", 5.0), created_at=202.0)
    store.add_feedback(Feedback("e4", "r1", "u1", "a", "skip", 1.0), created_at=103.0)
    inter = interactions_from_events(store)
    assert inter.to_dict("list") == {"user": ["u1", "u2", "u2"], "item": ["b", "b", "c"],
                                     "rating": [1.0, 3.0, 5.0], "timestamp": [101, 201, 202]}  # fmt: skip
    logs = logs_from_events(store, like_rating=4.0)
    assert logs[["user", "item", "reward", "propensity", "position"]].to_dict("list") == {
        "user": ["u1", "u1", "u2", "u2"], "item": ["a", "b", "b", "c"],
        "reward": [0.0, 1.0, 0.0, 1.0], "propensity": [0.9, 0.05, 0.9, 0.05],
        "position": [0, 1, 0, 1]}  # fmt: skip
    store.close()


def test_serve_then_retrain_and_estimate(run_dir: Path, db_url: str, tmp_path: Path) -> None:
    srv = Server(run_dir, db_url).start()
    rng = np.random.default_rng(0)
    try:
        with srv.client() as c:
            for n in range(60):
                user = str(1 + n % 20)
                rec = c.post("/recommend", json={"user_id": user, "k": 3,
                                                 "exploration": "epsilon"}).json()  # fmt: skip
                for slot, item in enumerate(rec["items"]):
                    if rng.random() < 0.3 / (slot + 1):
                        r = c.post("/feedback", json={"event_id": f"{n}-{slot}", "user_id": user,
                                                      "request_id": rec["request_id"],
                                                      "item_id": item["item_id"], "type": "click"})  # fmt: skip
                        assert r.status_code == 200, r.text
            newcomer = c.post("/recommend", json={"user_id": "newcomer", "k": 3}).json()
            c.post("/feedback", json={"event_id": "new-1", "user_id": "newcomer",
                                      "request_id": newcomer["request_id"],
                                      "item_id": newcomer["items"][1]["item_id"], "type": "click"})  # fmt: skip
    finally:
        srv.stop()
    store = open_store(db_url)
    n_clicks = len(store.feedback())
    logs = logs_from_events(store)
    store.close()
    assert n_clicks > 5

    # retrain: ML-100K plus the served clicks; the newcomer becomes a known user
    out = tmp_path / "retrained"
    proc = run_cli("retrain", "--from-events", db_url, "--model", "pop", "--with-data", "ml-100k",
                   "--out", str(out), "--quiet")  # fmt: skip
    assert f"{n_clicks} events + 100000 interactions" in proc.stdout
    frame = pd.read_csv(out / "data" / "interactions.csv", dtype={"user": str, "item": str})
    assert len(frame) == 100_000 + n_clicks
    model = Recommender.load(out / "model")
    assert model.n_users_ == 944  # 943 users of ML-100K and the newcomer

    # estimate the served run, greedy, from the served logs: IPS by hand
    proc = run_cli("ope", "--policy", str(run_dir), "--from-events", db_url,
                   "--exploration", "greedy")  # fmt: skip
    assert "left out 3 of" in proc.stderr  # the newcomer's impressions
    known = logs[logs["user"] != "newcomer"]
    served = Recommender.load(run_dir / "model")
    from recloop.runs import read_run

    vocab = read_run(run_dir)["vocab"]
    users = {str(u): n for n, u in enumerate(vocab["users"])}
    items = [str(i) for i in vocab["items"]]
    top = {u: items[int(np.argmax(served.score(np.array([users[u]]))[0]))]
           for u in known["user"].unique()}  # fmt: skip
    match = np.array([top[u] == i for u, i in zip(known["user"], known["item"], strict=True)])
    ips = float(np.mean(known["reward"].to_numpy() * match / known["propensity"].to_numpy()))
    line = next(x for x in proc.stdout.splitlines() if x.startswith("| ips |"))
    assert float(line.split("|")[2]) == pytest.approx(ips, abs=5e-6)
