"""Agents on the offline accuracy axis: the greedy agent's NDCG equals its model's."""

from __future__ import annotations

import numpy as np
import pytest

from recloop.data import leave_one_out, load_dataset
from recloop.eval.protocol import evaluate
from recloop.models.sequential import SASRec
from recloop.rl.agents import GreedyAgent, PopularityAgent
from recloop.rl.online import offline_ndcg


@pytest.fixture(scope="module")
def fitted():
    split = leave_one_out(load_dataset("ml-100k"))
    return split, SASRec(seed=0, epochs=2, max_len=20).fit(split.train, progress=False)


def test_greedy_agent_matches_the_protocol(fitted) -> None:
    split, model = fitted
    expected = evaluate(model, split, "test", ks=(10,), progress=False).metric("ndcg@10")
    got = offline_ndcg(GreedyAgent(model, 10), split, history_len=20)
    assert got == pytest.approx(expected, abs=1e-6)


def test_popularity_agent_by_hand(fitted) -> None:
    split, _ = fitted
    counts = np.zeros(split.train.n_items)
    counts[[5, 9]] = [2.0, 1.0]  # item 5 first, item 9 second, then ties by lower index
    agent = PopularityAgent(counts, 10)
    got = offline_ndcg(agent, split, history_len=20)
    known = split.known("test")
    seen = {u: set(g) for u, g in known.interactions.groupby("user")["item"]}
    gains = []
    for u, t in zip(split.test["user"], split.test["item"], strict=True):
        if u not in seen:
            continue
        order = [5, 9] + [i for i in range(split.train.n_items) if i not in (5, 9)]
        ranked = [i for i in order if i not in seen[u]]
        rank = ranked.index(t)
        gains.append(1 / np.log2(rank + 2) if rank < 10 else 0.0)
    assert got == pytest.approx(np.mean(gains))
