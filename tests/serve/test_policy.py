"""The serving policy in process: it ranks as the run's model, its propensities are exact
(or agree with frequencies), it learns online, and its state is a function of the log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recloop.errors import DataError
from recloop.models import Recommender
from recloop.serve.learner import OnlineLearner, reward_of
from recloop.serve.policy import Query, Recommendation, ServingPolicy
from recloop.serve.settings import Settings


@pytest.fixture(scope="module")
def policy(run_dir: Path) -> ServingPolicy:
    return ServingPolicy(run_dir, Settings(run_dir=str(run_dir), epsilon=0.2))


def _rec(policy: ServingPolicy, learner: OnlineLearner, user: str, k: int, kind: str,
         seed: int = 0, **kw):  # type: ignore[no-untyped-def]  # fmt: skip
    return policy.recommend(user, learner.snapshot, k, kind, np.random.default_rng(seed), **kw)


def test_greedy_is_the_models_own_ranking(policy: ServingPolicy, run_dir: Path) -> None:
    model = Recommender.load(run_dir / "model")
    learner = OnlineLearner(policy)
    for user in ("1", "42", "500"):
        u = policy.user_index[user]
        expected, _ = model.recommend(np.array([u]), k=10)
        rec = _rec(policy, learner, user, 10, "none")
        assert rec.items.tolist() == expected[0].tolist()
        assert rec.slot_prob.tolist() == [1.0] * 10 and rec.slate_prob == 1.0
        assert rec.cold_start is None


def test_the_policy_reads_the_models_declared_serving_needs(
    policy: ServingPolicy, run_dir: Path
) -> None:
    """SASRec reads history, and its item table and user states are what the policy uses."""
    model = Recommender.load(run_dir / "model")
    assert policy.uses_history is True
    vectors = model.item_vectors()
    assert vectors is not None
    v = vectors.astype(np.float64)
    np.testing.assert_array_equal(
        policy.vectors, v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    )
    states = model.user_states(np.arange(len(policy.user_ids)))
    assert states is not None and policy.states is not None and policy.table is not None
    np.testing.assert_array_equal(policy.states, states[0])
    np.testing.assert_array_equal(policy.table, states[1])


@pytest.mark.parametrize("k", [5, 10])  # 10: m (m − 1) ⋯ overflows int64 (it once did here)
def test_epsilon_propensities_by_hand(policy: ServingPolicy, k: int) -> None:
    learner = OnlineLearner(policy)
    greedy = _rec(policy, learner, "1", k, "none").items
    m = policy.n_items - len(policy.known_history("1"))  # allowed items
    eps = 0.2
    seen_random = False
    for seed in range(40):
        rec = _rec(policy, learner, "1", k, "epsilon", seed=seed)
        same = rec.items == greedy
        expected = np.where(same, 1 - eps + eps / m, eps / m)
        np.testing.assert_allclose(rec.slot_prob, expected)
        falling = np.prod(m - np.arange(k, dtype=np.float64))
        slate = (1 - eps) * same.all() + eps / falling
        assert rec.slate_prob == pytest.approx(slate, rel=1e-12, abs=0)
        seen_random |= not same.all()
    assert seen_random  # with ε = 0.2 over 40 draws, some slates explored


def test_softmax_first_slot_is_the_softmax_probability(policy: ServingPolicy) -> None:
    learner = OnlineLearner(policy)
    rec = _rec(policy, learner, "7", 1, "softmax")
    # rebuild the final scores: z-scores of the model over allowed items (the bandit is 0)
    u = policy.user_index["7"]
    raw = policy.model.score(np.array([u]))[0].astype(np.float64)
    allowed = np.ones(policy.n_items, bool)
    allowed[policy.known_history("7")] = False
    z = (raw - raw[allowed].mean()) / raw[allowed].std()
    logits = np.where(allowed, z / policy.settings.temperature, -np.inf)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    # float32 scores: the server takes a stored user state · item table, the model a forward
    assert rec.slot_prob[0] == pytest.approx(p[rec.items[0]], rel=1e-5)
    assert rec.exact


def test_softmax_later_slot_propensities_match_frequencies(policy: ServingPolicy) -> None:
    """Slot 3's logged propensity (Rao-Blackwellised over 32 prefixes) agrees with how often
    the item lands there over many served slates."""
    learner = OnlineLearner(policy)
    n = 800
    recs = [_rec(policy, learner, "11", 3, "softmax", seed=seed) for seed in range(n)]
    third = [int(r.items[2]) for r in recs]
    assert all(r.slot_prob[2] > 0 and not r.exact for r in recs)
    for item in sorted(set(third), key=third.count)[-3:]:  # the three most frequent
        freq = third.count(item) / n
        logged = np.mean([r.slot_prob[2] for r in recs if r.items[2] == item])
        assert logged == pytest.approx(freq, abs=4 * np.sqrt(freq * (1 - freq) / n) + 0.01)


def test_thompson_propensities_match_frequencies(policy: ServingPolicy) -> None:
    learner = OnlineLearner(policy)
    counts: dict[int, int] = {}
    probs: dict[int, list[float]] = {}
    n = 300
    for seed in range(n):
        rec = _rec(policy, learner, "3", 1, "thompson", seed=seed)
        item = int(rec.items[0])
        counts[item] = counts.get(item, 0) + 1
        probs.setdefault(item, []).append(float(rec.slot_prob[0]))
        assert not rec.exact
    top = max(counts, key=counts.__getitem__)
    # the logged propensity of the most frequent item agrees with its frequency
    assert np.mean(probs[top]) == pytest.approx(counts[top] / n, abs=0.1)


def test_cold_start_and_sent_history(policy: ServingPolicy) -> None:
    learner = OnlineLearner(policy)
    rec = _rec(policy, learner, "someone-new", 5, "none")
    assert rec.cold_start == "popular"
    assert rec.items[0] == int(np.argmax(policy.popularity))
    hist = ["50", "172", "181"]  # Star Wars and its sequels
    rec = _rec(policy, learner, "someone-new", 5, "none", history=hist)
    assert rec.cold_start == "history"
    assert not set(policy.item_indices(hist, "h")) & set(rec.items.tolist())
    assert all(e and e[0][0] in policy.item_indices(hist, "h") for e in rec.explanations)
    with pytest.raises(DataError, match="does not know"):
        _rec(policy, learner, "x", 5, "none", history=["no-such-item"])
    with pytest.raises(DataError, match="does not know"):
        _rec(policy, learner, "1", 5, "none", exclude=["no-such-item"])


def test_online_feedback_changes_the_next_recommendation(policy: ServingPolicy) -> None:
    learner = OnlineLearner(policy)
    before = _rec(policy, learner, "1", 5, "none").items
    top = policy.item_ids[before[0]]
    learner.apply([{"seq": s, "user_key": "1", "item_id": top, "type": "skip", "value": 1.0}
                   for s in range(1, 6)])  # fmt: skip
    after = _rec(policy, learner, "1", 5, "none").items
    assert before[0] not in after[:1]  # five skips pushed the top item down
    clicked = policy.item_ids[after[0]]
    learner.apply([{"seq": 6, "user_key": "1", "item_id": clicked, "type": "click", "value": 1.0}])
    assert learner.snapshot.histories["1"] == (after[0],)
    nxt = _rec(policy, learner, "1", 5, "none").items
    assert after[0] not in nxt  # a clicked item joins the history and is not shown again


def test_state_is_a_function_of_the_log(policy: ServingPolicy) -> None:
    rng = np.random.default_rng(0)
    rows = [{"seq": s, "user_key": str(rng.integers(1, 50)),
             "item_id": policy.item_ids[int(rng.integers(policy.n_items))],
             "type": ["click", "skip", "rating", "view"][s % 4], "value": float(s % 5 + 1)}
            for s in range(1, 120)]  # fmt: skip
    one = OnlineLearner(policy)
    for s in range(0, len(rows), 7):  # applied in batches as they arrive ...
        one.apply(rows[s : s + 7])
    one.apply(rows[:30])  # ... with redeliveries ignored
    two = OnlineLearner(policy)
    two.apply(list(reversed(rows)))  # ... or rebuilt at once from the log
    np.testing.assert_allclose(one.snapshot.bandit.theta, two.snapshot.bandit.theta, atol=1e-10)
    assert one.snapshot.histories == two.snapshot.histories
    assert one.snapshot.version == two.snapshot.version == len(rows)


def test_same_request_same_slate(policy: ServingPolicy) -> None:
    learner = OnlineLearner(policy)
    a = _rec(policy, learner, "9", 8, "softmax", seed=123)
    b = _rec(policy, learner, "9", 8, "softmax", seed=123)
    assert a.items.tolist() == b.items.tolist()
    np.testing.assert_array_equal(a.slot_prob, b.slot_prob)


def test_a_group_is_served_as_each_request_alone(policy: ServingPolicy) -> None:
    """One batched model call for a mixed group gives every request the slate, scores and
    propensities it gets alone; a request with unknown ids fails alone."""
    learner = OnlineLearner(policy)
    learner.apply([{"seq": 1, "user_key": "5", "item_id": policy.item_ids[3], "type": "click",
                    "value": 1.0}])  # user 5 has online history  # fmt: skip
    sent = [policy.item_ids[i] for i in (10, 20, 30)]
    specs = [("1", 10, "none", None, None), ("5", 5, "epsilon", None, None),
             ("new-user", 4, "none", sent, None), ("42", 6, "softmax", None, sent),
             ("nobody", 3, "none", None, None), ("9", 5, "thompson", None, None),
             ("1", 3, "none", ["no-such-item"], None), ("77", 7, "none", None, None)]  # fmt: skip
    queries = [Query(u, k, kind, np.random.default_rng(n), h, x)
               for n, (u, k, kind, h, x) in enumerate(specs)]  # fmt: skip
    group = policy.recommend_many(queries, learner.snapshot)
    assert isinstance(group[6], DataError) and "no-such-item" in str(group[6])
    for n, (u, k, kind, h, x) in enumerate(specs):
        if n == 6:
            continue
        alone = policy.recommend(u, learner.snapshot, k, kind, np.random.default_rng(n), h, x)
        rec = group[n]
        assert isinstance(rec, Recommendation)
        assert rec.items.tolist() == alone.items.tolist(), specs[n]
        np.testing.assert_allclose(rec.scores, alone.scores, rtol=1e-5, atol=1e-6)  # float32 model
        np.testing.assert_allclose(rec.slot_prob, alone.slot_prob, rtol=1e-5)
        assert rec.cold_start == alone.cold_start
    assert group[2].cold_start == "history" and group[4].cold_start == "popular"


def test_rewards() -> None:
    assert reward_of("click", 1.0, 4.0) == (1.0, True)
    assert reward_of("rating", 4.0, 4.0) == (1.0, True)
    assert reward_of("rating", 3.5, 4.0) == (-1.0, False)
    assert reward_of("skip", 1.0, 4.0) == (-1.0, False)
    assert reward_of("view", 1.0, 4.0) == (0.0, False)


def test_top_k_matches_a_stable_sort_and_the_ranking_module() -> None:
    """The server's single-row top-k masks disallowed items to -inf instead of passing them
    as ``exclude``: for its inputs (k ≤ allowed items, finite allowed scores) that is the
    ranking module's own answer with the exclusion, and a stable sort's."""
    from recloop.data import ranking
    from recloop.serve.policy import top_allowed

    rng = np.random.default_rng(0)
    for trial in range(600):
        n = int(rng.integers(5, 60))
        scores = rng.integers(0, 4, n).astype(float)  # many ties
        if trial % 2:
            scores = (scores + rng.standard_normal(n)).astype(np.float32)  # as a model's
        if trial % 3 == 0:
            scores[rng.random(n) < 0.3] = np.nan  # disallowed non-finite scores are ignored
        allowed = rng.random(n) < 0.8
        allowed[:5] = True
        allowed[np.isnan(scores)] = False
        if not allowed.any():
            continue
        k = int(rng.integers(1, min(int(allowed.sum()), 10) + 1))
        expected = np.argsort(-np.where(allowed, scores, -np.inf), kind="stable")[:k]
        got = top_allowed(scores, allowed, k)
        assert got.tolist() == expected.tolist(), trial
        general, _ = ranking.top_k(np.nan_to_num(scores)[None, :], k, exclude=~allowed[None, :])
        assert got.tolist() == general[0].tolist(), trial


def test_an_offline_rl_head_serves_its_own_ranking(tmp_path: Path) -> None:
    """A SASRec run with an SQN head ranks by the head's scores (no stored user states):
    the service's greedy slate is the run's own top-k."""
    from recloop.bench import RunSpec, train_run

    out = tmp_path / "sqn"
    spec = RunSpec(model="sasrec", data="ml-100k", seed=0,
                   params={"epochs": 1, "max_len": 20, "dim": 16, "head": "sqn"})  # fmt: skip
    train_run(spec, out, progress=False)
    policy = ServingPolicy(out, Settings(run_dir=str(out)))
    assert policy.states is None
    learner = OnlineLearner(policy)
    model = Recommender.load(out / "model")
    for user in ("1", "300"):
        expected, _ = model.recommend(np.array([policy.user_index[user]]), k=8)
        assert _rec(policy, learner, user, 8, "none").items.tolist() == expected[0].tolist()
