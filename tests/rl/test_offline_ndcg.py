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
    counts[[5, 9]] = [2.0, 1.0]  # item 5 first, item 9 second, then every other item tied
    agent = PopularityAgent(counts, 10)
    got = offline_ndcg(agent, split, history_len=20)
    known = split.known("test")
    seen = {u: set(g) for u, g in known.interactions.groupby("user")["item"]}
    gains = []
    for u, t in zip(split.test["user"], split.test["item"], strict=True):
        if u not in seen:
            continue
        # The protocol's tie rule: every unseen item scoring at least the target's count,
        # other than the target, ranks ahead of it.
        rank = sum(
            1
            for i in range(split.train.n_items)
            if i != t and i not in seen[u] and counts[i] >= counts[t]
        )
        gains.append(1 / np.log2(rank + 2) if rank < 10 else 0.0)
    assert got == pytest.approx(np.mean(gains))


def test_a_constant_agent_gets_no_credit(fitted) -> None:
    """Ties go against the target, as in the protocol: all-equal scores rank it last."""
    split, _ = fitted
    agent = PopularityAgent(np.zeros(split.train.n_items), 10)
    assert offline_ndcg(agent, split, history_len=20) == 0.0


def test_popularity_agent_matches_the_pop_model(fitted) -> None:
    """The popularity agent and the ``pop`` model are one ranking, so one NDCG."""
    from recloop.models.baselines import Popularity

    split, _ = fitted
    model = Popularity().fit(split.train)
    expected = evaluate(model, split, "test", ks=(10,), progress=False).metric("ndcg@10")
    agent = PopularityAgent(split.train.item_user_counts().astype(np.float64), 10)
    assert offline_ndcg(agent, split, history_len=20) == pytest.approx(expected, abs=1e-9)


def test_arena_tests_pair_users_over_seeds() -> None:
    """Paired tests against greedy use each user's seed-averaged return, by hand."""
    import pandas as pd

    from recloop.bench import arena_tests

    greedy = {(0, 1): 1.0, (0, 2): 2.0, (0, 3): 0.0, (1, 1): 3.0, (1, 2): 2.0, (1, 3): 1.0}
    agent = {(0, 1): 2.0, (0, 2): 2.0, (0, 3): 4.0, (1, 1): 3.0, (1, 2): 5.0, (1, 3): 0.0}
    rows = [{"method": m, "variant": "plain", "seed": s, "user": u, "return": r}
            for m, table in (("greedy", greedy), ("reinforce_topk", agent))
            for (s, u), r in table.items()]  # fmt: skip
    sessions = pd.DataFrame(rows)
    test, _ = arena_tests(sessions)[("reinforce_topk", "plain")]
    # user means: greedy 2, 2, 0.5; agent 2.5, 3.5, 2 → differences 0.5, 1.5, 1.5
    assert test.n == 3
    assert test.mean_diff == pytest.approx((0.5 + 1.5 + 1.5) / 3)
    per_seed, _ = arena_tests(sessions, by_user=False)[("reinforce_topk", "plain")]
    assert per_seed.n == 6 and per_seed.mean_diff == pytest.approx(7.0 / 6)
