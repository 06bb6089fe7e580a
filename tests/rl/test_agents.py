"""Online agents: toy tasks they must solve, the guardrail, log replay and seeding."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recloop.data import Dataset
from recloop.errors import ConfigError, DataError
from recloop.models.encoders import GRU4RecEncoder
from recloop.rl.agents import (
    BanditAgent,
    Guardrail,
    PopularityAgent,
    RandomAgent,
)
from recloop.rl.bandits import KINDS, LinearBandit
from recloop.rl.deep import DeepConfig, DQNAgent, ReinforceTopK
from recloop.rl.online import evaluate_agent, train_agent
from recloop.sim.core import SimConfig, StepResult, top_unseen
from recloop.sim.replay import ReplayBatch

BAIT, SETUP, PAYOFF, FILLER = range(4)


class TwoStep:
    """A two-step task where the greedy choice is worse in the long run (slates of one item).

    Step 1: ``BAIT`` is clicked for reward 1 and the user leaves; ``SETUP`` is clicked for
    0.5 and the session goes on; anything else is ignored. Step 2: ``BAIT`` pays 1, and so
    does ``PAYOFF`` if ``SETUP`` came first. Best return 1.5 (SETUP, then PAYOFF or BAIT);
    the myopic choice, BAIT first, returns 1.0.
    """

    n_items = 4

    def __init__(self, size: int) -> None:
        self.size = size
        self.config = SimConfig(slate_size=1, history_len=2, session_cap=2, leave_bias=0.0)
        self.genres = np.eye(4, dtype=np.float32)
        self.history = np.zeros((size, 2), dtype=np.int64)
        self.seen = np.zeros((size, 4), dtype=bool)
        self.users = np.zeros(size, dtype=np.int64)
        self.active = np.zeros(size, dtype=bool)
        self.steps = np.zeros(size, dtype=np.int64)

    def reset(self, slots: np.ndarray, users: np.ndarray) -> None:
        self.history[slots] = 0
        self.seen[slots] = False
        self.steps[slots] = 0
        self.active[slots] = True

    def step(self, slates: np.ndarray, rng: np.random.Generator) -> StepResult:
        b = self.size
        out = StepResult(np.full(b, -1), np.zeros(b, bool), np.zeros(b, np.float32),
                         np.zeros(b, bool), np.zeros(b, bool), np.zeros(b, np.float32))  # fmt: skip
        for s in np.flatnonzero(self.active):
            item = int(slates[s, 0])
            first = self.steps[s] == 0
            if item == BAIT:
                reward = 1.0
            elif item == SETUP and first:
                reward = 0.5
            elif item == PAYOFF and self.seen[s, SETUP]:
                reward = 1.0
            else:
                reward = 0.0
            if reward and not self.seen[s, item]:
                out.clicked[s], out.reward[s] = item, reward
                self.seen[s, item] = True
                self.history[s] = [self.history[s, 1], item + 1]
            self.steps[s] += 1
            out.terminated[s] = item == BAIT and reward > 0 and first
            out.truncated[s] = not out.terminated[s] and self.steps[s] >= 2
            self.active[s] = not (out.terminated[s] or out.truncated[s])
        return out


def _encoder() -> GRU4RecEncoder:
    return GRU4RecEncoder(4, 16, dropout=0.0)


def _dqn(gamma: float, seed: int = 0) -> DQNAgent:
    cfg = DeepConfig(gamma=gamma, lr=1e-2, batch_size=32, buffer=2000, target_every=20,
                     epsilon_start=1.0, epsilon=0.1, explore_updates=150, seed=seed)  # fmt: skip
    return DQNAgent(4, 1, cfg, make_encoder=_encoder, history_len=2)


def _reinforce(gamma: float, seed: int = 0) -> ReinforceTopK:
    cfg = DeepConfig(gamma=gamma, lr=3e-2, batch_size=32, seed=seed)
    return ReinforceTopK(4, 1, cfg, make_encoder=_encoder)


def _solve(agent, steps: int = 300, seed: int = 0) -> float:  # type: ignore[no-untyped-def]
    train_agent(agent, TwoStep(16), np.zeros(1), steps, seed)
    return float(evaluate_agent(agent, TwoStep(50), np.zeros(50), seed).returns.mean())


@pytest.mark.parametrize("make", [_dqn, _reinforce], ids=["dqn", "reinforce_topk"])
def test_rl_agents_learn_the_long_run_choice(make) -> None:  # type: ignore[no-untyped-def]
    assert _solve(make(0.9)) >= 1.45  # SETUP then a paying item: 1.5
    # The same agent without a future (γ = 0) takes the bait: the task does discriminate.
    assert _solve(make(0.0)) <= 1.05


def test_two_step_task_values() -> None:
    env = TwoStep(3)
    env.reset(np.arange(3), np.zeros(3))
    rng = np.random.default_rng(0)
    first = env.step(np.array([[BAIT], [SETUP], [FILLER]]), rng)
    assert first.reward.tolist() == [1.0, 0.5, 0.0]
    assert first.terminated.tolist() == [True, False, False]
    second = env.step(np.array([[BAIT], [PAYOFF], [PAYOFF]]), rng)
    assert second.reward.tolist() == [0.0, 1.0, 0.0]  # slot 0 had left
    assert second.truncated.tolist() == [False, True, True]


class Arms:
    """One-step sessions over 10 arms; arm 7 is clicked with probability 0.8, others 0.2."""

    n_items = 10

    def __init__(self, size: int) -> None:
        self.size = size
        self.config = SimConfig(slate_size=1, history_len=1, session_cap=1, leave_bias=0.0)
        self.genres = np.eye(10, dtype=np.float32)
        self.history = np.zeros((size, 1), dtype=np.int64)
        self.seen = np.zeros((size, 10), dtype=bool)
        self.users = np.zeros(size, dtype=np.int64)
        self.active = np.zeros(size, dtype=bool)
        self.steps = np.zeros(size, dtype=np.int64)
        self.p = np.full(10, 0.2)
        self.p[7] = 0.8

    def reset(self, slots: np.ndarray, users: np.ndarray) -> None:
        self.active[slots] = True
        self.steps[slots] = 0

    def step(self, slates: np.ndarray, rng: np.random.Generator) -> StepResult:
        b = self.size
        click = self.active & (rng.random(b) < self.p[slates[:, 0]])
        out = StepResult(np.where(click, slates[:, 0], -1), click, click.astype(np.float32),
                         np.zeros(b, bool), self.active.copy(), np.zeros(b, np.float32))  # fmt: skip
        self.steps[self.active] += 1
        self.active[:] = False
        return out


@pytest.mark.parametrize("kind", KINDS)
def test_bandit_agents_find_the_best_arm(kind: str) -> None:
    agent = BanditAgent(LinearBandit(np.eye(10), kind=kind, seed=0), 1)
    train_agent(agent, Arms(16), np.zeros(1), 100, seed=1)
    ev = evaluate_agent(agent, Arms(200), np.zeros(200), seed=2)
    assert agent.act(Arms(4), np.random.default_rng(0))[:, 0].tolist() == [7] * 4
    assert 0.7 <= ev.returns.mean() <= 0.9  # the best arm's click rate


def test_training_and_evaluation_are_reproducible() -> None:
    def run() -> tuple[list[float], np.ndarray]:
        agent = _reinforce(0.9, seed=3)
        log = train_agent(agent, TwoStep(8), np.zeros(1), 60, seed=4)
        return log.curve, evaluate_agent(agent, TwoStep(20), np.zeros(20), seed=5).returns

    (c1, r1), (c2, r2) = run(), run()
    assert c1 == c2
    np.testing.assert_array_equal(r1, r2)


def test_top_unseen_fills_up_with_seen_items() -> None:
    scores = np.array([[0.1, 0.9, 0.5, np.nan]])
    seen = np.array([[False, True, False, False]])
    assert top_unseen(scores, seen, 2).tolist() == [[2, 0]]
    assert top_unseen(scores, seen, 4)[0, :2].tolist() == [2, 0]  # then seen / NaN


def test_guardrail_spreads_exposure_and_genres() -> None:
    """Popularity shows the same top items to everyone; the guardrail rotates and mixes."""
    genres = np.repeat(np.eye(3), 4, axis=0)  # items 0-3 genre A, 4-7 B, 8-11 C
    counts = np.arange(12, 0, -1, dtype=float)  # item 0 most popular

    class Users:
        size, n_items = 4, 12
        seen = np.zeros((4, 12), dtype=bool)

    plain = PopularityAgent(counts, 3)
    railed = PopularityAgent(counts, 3, genres=genres, guardrail=Guardrail(diversity=3.0))
    rng = np.random.default_rng(0)
    assert plain.act(Users(), rng).tolist() == [[0, 1, 2]] * 4  # type: ignore[arg-type]
    first = railed.act(Users(), rng)  # type: ignore[arg-type]
    # one item per genre in each slate: the best of A, then of B, then of C
    assert first[0].tolist() == [0, 4, 8]
    shown = {int(i) for _ in range(5) for i in railed.act(Users(), rng).ravel()}  # type: ignore[arg-type]
    assert len(shown) > 6  # exposure rotates the candidates
    with pytest.raises(ConfigError, match="genre"):
        PopularityAgent(counts, 3, guardrail=Guardrail())
    with pytest.raises(ConfigError, match="exposure"):
        Guardrail(exposure=-1.0)


def _logs() -> Dataset:
    """Two users; u0 has sessions [a b] then [c d e] (a day apart), u1 one session [b c]."""
    rows = [("u0", "a", 0, 5.0), ("u0", "b", 10, 4.0), ("u0", "c", 86_400, 5.0),
            ("u0", "d", 86_410, 2.0), ("u0", "e", 86_420, 4.0), ("u1", "b", 0, 3.0),
            ("u1", "c", 5, 5.0)]  # fmt: skip
    return Dataset.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"]))


def test_replay_walks_the_logged_sessions() -> None:
    ds = _logs()
    idx = {name: int(ds.items.index([name])[0]) for name in "abcde"}
    batch = ReplayBatch(ds, SimConfig(slate_size=2, history_len=3, session_cap=10), 1)
    # sessions with at least one earlier rating: u0's second session, and u1's "c" (the gap
    # split leaves u1 with one session [b c], which starts with no history) -> only one
    assert batch.n_episodes == 1
    batch.reset(np.array([0]), np.array([0]))
    assert batch.history[0].tolist() == [0, idx["a"] + 1, idx["b"] + 1]
    assert batch.seen[0].sum() == 2
    hit = batch.step(np.array([[idx["c"], idx["a"]]]))
    assert (hit.clicked[0], hit.reward[0], hit.liked[0]) == (idx["c"], 1.0, True)
    miss = batch.step(np.array([[idx["a"], idx["e"]]]))  # d was next: no click, log moves on
    assert (miss.clicked[0], miss.reward[0], miss.terminated[0]) == (-1, 0.0, False)
    last = batch.step(np.array([[idx["e"], idx["e"]]]))
    assert (last.clicked[0], last.reward[0], last.terminated[0]) == (idx["e"], 1.0, True)
    assert batch.history[0].tolist() == [idx["c"] + 1, idx["d"] + 1, idx["e"] + 1]
    with pytest.raises(DataError, match="min_history"):
        ReplayBatch(ds, SimConfig(slate_size=2), 1, min_history=4)


def test_random_agent_draws_distinct_unseen_items() -> None:
    env = TwoStep(5)
    env.reset(np.arange(5), np.zeros(5))
    env.seen[:, BAIT] = True
    slates = RandomAgent(2).act(env, np.random.default_rng(0))  # type: ignore[arg-type]
    assert slates.shape == (5, 2)
    assert (slates != BAIT).all() and (slates[:, 0] != slates[:, 1]).all()


def test_greedy_agent_ranks_as_the_fitted_model_and_dqn_starts_from_its_q_head() -> None:
    """The greedy agent is the model itself; DQN fine-tunes a copy of an offline SQN head."""
    import torch

    from recloop.data.history import History
    from recloop.rl.agents import GreedyAgent
    from recloop.rl.offline import GRU4RecRL
    from recloop.testing import toy_dataset

    ds = toy_dataset()
    model = GRU4RecRL(dim=8, epochs=2, max_len=20, head="sqn", seed=0).fit(ds)
    h = History.from_dataset(ds)
    users = np.array([0, 3, 5])

    class Batch:
        history = np.stack([np.r_[np.zeros(20, np.int64), h.items[h.indptr[u]:h.indptr[u + 1]] + 1][-20:]
                            for u in users])  # fmt: skip
        seen = np.zeros((3, ds.n_items), dtype=bool)

    agent = GreedyAgent(model, 3)
    np.testing.assert_allclose(agent.scores(Batch()), model.score(users), rtol=1e-5, atol=1e-5)  # type: ignore[arg-type]
    dqn = DQNAgent(ds.n_items, 3, DeepConfig(batch_size=2), model=model, history_len=20)
    q = model.learner.net(0).q
    assert torch.equal(dqn.net.q.weight, q.weight)
    assert dqn.net.q.weight.data_ptr() != q.weight.data_ptr()  # a copy: the model is untouched


class _OneHot(GRU4RecEncoder):
    """A toy encoder whose state is the one-hot of the latest token, so Q(s, ·) is a column
    of the Q layer's weights, set by hand."""

    def forward(self, seq):  # type: ignore[no-untyped-def]
        import torch

        return torch.nn.functional.one_hot(seq, self.n_items + 1).float()


@pytest.mark.parametrize(
    ("target", "expect"),
    # click: V(s') sums the target net's values of the online net's top-2 unseen items
    # (items 2 and 3: 0.5 + 0.25); only the clicked item gets r + γ V; shared: every shown
    # item gets r_i + γ Q_target(s', argmax_online) = r_i + 0.5 · 0.5
    [("click", [[0.0, 1.375], [0.0, 1.0]]), ("shared", [[0.25, 1.25], [0.0, 1.0]])],
)
def test_dqn_targets_by_hand(target: str, expect: list[list[float]]) -> None:
    """Double Q (online net selects, target net evaluates), the discount, unseen-only
    selection and no future after the user leaves, on two transitions by hand."""
    import torch

    from recloop.rl.agents import Feedback

    cfg = DeepConfig(gamma=0.5, batch_size=2, dueling=False, slate_target=target)
    dqn = DQNAgent(4, 2, cfg, make_encoder=lambda: _OneHot(4, 5), history_len=2)
    with torch.no_grad():
        for net, col in ((dqn.net, [0.1, 5.0, 0.9, 0.5]), (dqn.target, [2.0, 9.0, 0.5, 0.25])):
            net.q.weight.zero_()
            net.q.bias.zero_()
            net.q.weight[:, 2] = torch.tensor(col)  # Q(s', ·) after item 1 (token 2)
    seen = np.zeros((2, 4), dtype=bool)
    next_seen = np.array([[False, True, False, False]] * 2)  # item 1 seen: 0, 2, 3 remain
    fb = Feedback(np.array([[0, 1], [0, 1]]), seen, np.array([[0, 1], [0, 1]]), np.array([1, 1]),
                  np.array([1.0, 1.0], np.float32), np.array([[1, 2], [1, 2]]), next_seen,
                  np.array([False, True]), np.array([False, False]), np.array([True, True]))  # fmt: skip
    dqn.replay.add(fb, np.arange(2))
    np.testing.assert_allclose(dqn.targets(np.arange(2)).numpy(), expect, rtol=1e-6)


def test_dqn_from_a_plain_model_starts_from_its_ranking() -> None:
    """No offline Q head: the tied head scores with the model's item table, so Q's first
    ranking is the model's; calibration scales the scores to unit spread; the model is
    untouched by DQN's updates."""
    import torch

    from recloop.data.history import History
    from recloop.models.sequential import GRU4Rec
    from recloop.testing import toy_dataset

    ds = toy_dataset()
    model = GRU4Rec(dim=8, epochs=2, max_len=20, seed=0).fit(ds)
    h = History.from_dataset(ds)
    users = np.arange(6)
    hist = np.stack([np.r_[np.zeros(20, np.int64), h.items[h.indptr[u]:h.indptr[u + 1]] + 1][-20:]
                     for u in users])  # fmt: skip
    cfg = DeepConfig(batch_size=4, q_head="items")
    dqn = DQNAgent(ds.n_items, 3, cfg, model=model, history_len=20)
    assert dqn.net.q is None
    expect = model.score(users)

    class Batch:
        history = hist
        seen = np.zeros((6, ds.n_items), dtype=bool)

    q = dqn.scores(Batch())  # type: ignore[arg-type]
    # dueling: V(s) + A(s, ·) − mean A keeps each state's ranking of A = s·e (scale 1)
    np.testing.assert_allclose(q - q.mean(1, keepdims=True),
                               expect - expect.mean(1, keepdims=True), rtol=1e-4, atol=1e-4)  # fmt: skip
    dqn.net.calibrate(torch.from_numpy(hist))
    spread = dqn.net.scale * dqn.net.encoder.logits(dqn.net.encoder.encode(torch.from_numpy(hist)))
    assert float(spread.detach().std()) == pytest.approx(1.0, rel=1e-4)
    before = [t.detach().clone() for t in model.encoder.parameters()]
    logs = ReplayBatch(ds, SimConfig(slate_size=3, history_len=20), 4, min_history=0)
    train_agent(dqn, logs, np.arange(logs.n_episodes), 12, seed=0)
    assert dqn.updates > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.encoder.parameters(), strict=True))
    with pytest.raises(ConfigError, match="q_head"):
        DeepConfig(q_head="tied")


def test_the_same_agent_code_runs_on_replayed_logs() -> None:
    """Popularity on u0's second session [c d e] (a, b known): every next item is in the slate."""
    ds = _logs()
    counts = np.bincount(ds.sequences.items, minlength=ds.n_items)  # a 1, b 2, c 2, d 1, e 1
    replay = ReplayBatch(ds, SimConfig(slate_size=2, history_len=3, session_cap=10), 1)
    genre = {"a": [1, 0], "b": [1, 0], "c": [1, 0], "d": [0, 1], "e": [1, 1]}
    replay.genres = np.array([genre[str(x)] for x in ds.items.ids(np.arange(ds.n_items))],
                             dtype=np.float32)  # fmt: skip
    ev = evaluate_agent(PopularityAgent(counts, 2), replay, np.array([0]), seed=0)
    # c (rating 5: 1.0), then d (rating 2: 0.2), then e (rating 4: 1.0)
    np.testing.assert_allclose(ev.returns, [2.2], rtol=1e-6)
    assert ev.lengths.tolist() == [3] and ev.ctr.tolist() == [1.0]
    # slates [c d], [d e], [e, a seen a/b/c]: genre distances 1, 1 − 1/√2, 1 − 1/√2
    np.testing.assert_allclose(ev.diversity, [(1 + 2 * (1 - 2**-0.5)) / 3], rtol=1e-9)
    agent = BanditAgent(LinearBandit(np.eye(ds.n_items), kind="thompson", seed=0), 2)
    log = train_agent(agent, ReplayBatch(ds, SimConfig(slate_size=2, history_len=3), 2),
                      np.array([0]), 6, seed=0)  # fmt: skip
    assert log.sessions >= 2 and agent.bandit.steps == 6


def test_replay_arena_trains_on_the_past_and_replays_the_later_sessions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Hand case. Before the cut (t < 100000): u0 a b, u1 a c, u2 a b d, u3 c, so the past
    counts are a 3, b 2, c 2, d 1. After it: u0 c (5.0) then d (2.0), u1 b (4.0).
    Popularity (slates of 2, unseen items first): u0 sees [c d] (c liked: 1.0), then d and a
    seen filler (d, rated 2: 0.2), return 1.2; u1 sees [b d] (b liked: 1.0), return 1.0."""
    from recloop.bench import ArenaConfig, run_replay

    rows = [("u0", "a", 0, 4.0), ("u0", "b", 10, 4.0), ("u1", "a", 1, 3.0), ("u1", "c", 11, 4.0),
            ("u2", "a", 2, 5.0), ("u2", "b", 12, 3.0), ("u2", "d", 22, 4.0), ("u3", "c", 3, 4.0),
            ("u0", "c", 100_000, 5.0), ("u0", "d", 100_010, 2.0), ("u1", "b", 100_005, 4.0)]  # fmt: skip
    ds = Dataset.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"]))
    cfg = ArenaConfig(agents=("popularity",), guardrail=(False,), sim={"slate_size": 2})
    tidy, sessions = run_replay(ds, cfg, cut_frac=0.25)
    # 11 timestamps: the 0.75 quantile ("higher") is the 9th, 100000
    assert sorted(sessions["return"].round(6).tolist()) == [1.0, 1.2]
    got = tidy.set_index("metric")["value"]
    assert got["return"] == pytest.approx(1.1) and got["session_length"] == pytest.approx(1.5)
    assert (tidy["split"] == "replay").all()
    # kept cells are reused under the same options only
    work = tmp_path / "cells"
    run_replay(ds, cfg, cut_frac=0.25, work=work)
    (cell,) = work.glob("*popularity*.json")
    made = cell.stat().st_mtime_ns
    run_replay(ds, cfg, cut_frac=0.25, work=work)
    assert cell.stat().st_mtime_ns == made  # reused
    run_replay(ds, replace(cfg, steps=7), cut_frac=0.25, work=work)
    assert '\\"steps\\": 7' in cell.read_text()  # other options: computed again
    with pytest.raises(ConfigError, match="cut_frac"):
        run_replay(ds, cfg, cut_frac=1.0)
    # the only rating after the cut is a new user's: nothing to replay
    lone = [*rows[:8], ("u9", "c", 100_000, 5.0)]
    ds = Dataset.from_frame(pd.DataFrame(lone, columns=["user", "item", "timestamp", "rating"]))
    with pytest.raises(DataError, match="no user has ratings both before and after the time cut"):
        run_replay(ds, cfg, cut_frac=0.1)


def test_every_agent_class_says_whether_it_learns_and_the_verdict_reads_it() -> None:
    """Capabilities are declared by the classes: each agent says whether it learns from
    feedback (the verdict compares only learners with greedy) and whether it can be served."""
    from recloop.bench.summary import _learns
    from recloop.rl.agents import AGENTS, OTHER_AGENTS, Agent, agent_class

    for name in [*AGENTS, *OTHER_AGENTS]:
        cls = agent_class(name)
        declared = getattr(cls, "learns_from_feedback", None)  # Agent only annotates it
        assert isinstance(declared, bool), f"{cls.__name__} must declare learns_from_feedback"
        if name in AGENTS:  # the agents that learn online do so in learn()
            assert cls.learns_from_feedback == (cls.learn is not Agent.learn), name
        assert _learns(name) == cls.learns_from_feedback
    assert [n for n in AGENTS if not agent_class(n).learns_from_feedback] == [
        "random", "popularity", "greedy",
    ]  # fmt: skip
    assert _learns("an_agent_nobody_registered")  # never silently out of the verdict


def test_sim_to_real_trains_in_a_world_of_the_past_and_replays_the_later_sessions() -> None:
    """On a chain (every user walks the same item chain), REINFORCE top-K (from the greedy
    SASRec's encoder) trained only in a world fitted on the past beats random slates on the
    real later sessions, and the uncertainty penalty trains it too (an ensemble world); the
    rows say ``sim2real``."""
    from recloop.bench import ArenaConfig, run_replay
    from recloop.testing import chain_dataset

    ds = chain_dataset(n_users=80, n_items=30, length=14)
    cfg = ArenaConfig(agents=("random", "reinforce_topk"), guardrail=(False,), steps=40,
                      n_envs=32, world_name="gru4rec_x2", world={"epochs": 15},
                      greedy={"max_len": 20, "batch_size": 32, "epochs": 15, "patience": 3},
                      sim={"slate_size": 3, "history_len": 20, "session_cap": 10})  # fmt: skip
    tidy, _ = run_replay(ds, cfg, cut_frac=0.2, train_in="world")
    assert (tidy["split"] == "sim2real").all()
    ret = tidy[tidy["metric"] == "return"].set_index("method")["value"]
    assert ret["reinforce_topk"] > ret["random"] + 0.5
    penalised, _ = run_replay(ds, replace(cfg, uncertainty_penalty=2.0), cut_frac=0.2,
                              train_in="world")  # fmt: skip
    assert np.isfinite(penalised[penalised["metric"] == "return"]["value"]).all()
    with pytest.raises(ConfigError, match="train_in"):
        run_replay(ds, cfg, cut_frac=0.2, train_in="sky")
