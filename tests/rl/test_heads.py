"""Offline RL heads: episodes, hand-checked TD targets, a toy MDP each head must solve."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from recloop.data import Dataset, leave_one_out
from recloop.data.history import History
from recloop.errors import ConfigError
from recloop.models import get_model
from recloop.models.registry import resolve_model
from recloop.models.sequential import SequenceEncoder
from recloop.rl import (
    CSA,
    HEADS,
    SA2C,
    SNQN,
    SQN,
    HeadConfig,
    Reward,
    Transitions,
    is_rl_head,
    transitions,
)
from recloop.testing import CHECKS, check_recommender


class Lookup(SequenceEncoder):
    """State = the latest item's vector: a transparent encoder for hand computations."""

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.embed(seq)


def _episode(items: list[int], ratings: list[float], seed: int) -> Transitions:
    indptr = np.array([0, len(items)])
    return transitions(indptr, np.array(items), np.array(ratings, dtype=np.float32),
                       np.array([0]), 10, Reward(), seed)  # fmt: skip


def _set(learner, vectors, main_q, target_q, seed: int) -> None:
    """Same item vectors in both networks; Q weights by role (the coin of ``seed``)."""
    pick = int(np.random.default_rng(seed).integers(2))
    with torch.no_grad():
        for k, net in enumerate(learner.nets):
            net.encoder.items.id.weight.copy_(torch.tensor(vectors))
            net.q.weight.copy_(torch.tensor(main_q if k == pick else target_q))
            net.q.bias.zero_()


def test_transitions_of_one_user_by_hand() -> None:
    # Two users: items (0, 3, 1) rated (5, 2, 4), and (2, 2) rated (1, 5); max_len 10.
    indptr = np.array([0, 3, 5])
    items = np.array([0, 3, 1, 2, 2])
    ratings = np.array([5, 2, 4, 1, 5], dtype=np.float32)
    t = transitions(indptr, items, ratings, np.array([0, 1]), 10, Reward(), seed=7)
    assert t.inputs.tolist() == [[1, 4], [0, 3]]  # tokens = item + 1, left padding
    assert t.actions.tolist() == [[3, 1], [-1, 2]]
    np.testing.assert_allclose(t.rewards.numpy(), [[0.2, 1.0], [0.0, 1.0]], rtol=1e-6)
    assert t.valid.tolist() == [[True, True], [False, True]]
    assert t.done.tolist() == [[False, True], [False, True]]
    assert t.n == 3 and t.seed == 7
    nxt, done = t.next_index()
    assert nxt.tolist() == [1, 1, 2] and done.tolist() == [False, True, True]
    # A window of max_len + 1 items keeps the latest ones; the last transition ends it.
    w = transitions(indptr, items, ratings, np.array([0]), 1, Reward(like=2.0), seed=0)
    assert w.inputs.tolist() == [[4]] and w.actions.tolist() == [[1]]
    assert w.rewards.tolist() == [[2.0]] and w.done.tolist() == [[True]]
    with pytest.raises(ValueError, match="inputs' shape"):
        Transitions(t.inputs, t.actions[:, :1], t.rewards, t.valid, t.done)


@pytest.mark.parametrize("seed", [0, 1])  # either network may be the main one
def test_double_q_target_and_discount_by_hand(seed: int) -> None:
    learner = SQN(lambda: Lookup(3, 2), 3, HeadConfig(gamma=0.5))
    # Item vectors e0, e1, e0 + e1; Q(s, a) = W[a] · s.
    vectors = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    main_q = [[0.0, 3.0], [0.0, 1.0], [0.0, 2.0]]
    target_q = [[0.0, 0.4], [0.0, 5.0], [0.0, 1.0]]
    _set(learner, vectors, main_q, target_q, seed)
    # One user: items 0, 1, 2 rated 5, 2, 5. Transitions: (s=e0, a=1, r=0.2, s'=e1) and
    # (s=e1, a=2, r=1.0, done).
    batch = _episode([0, 1, 2], [5, 2, 5], seed)
    _, parts = learner.loss(batch)
    # t0: the main net picks argmax Q_main(e1, ·) = argmax (3, 1, 2) = item 0; the target
    # net values it: Q_target(e1, 0) = 0.4, so y = 0.2 + 0.5 · 0.4 = 0.4 (the target
    # net's own max, 5, would give 2.7). Q_main(e0, 1) = 0. t1 is done: y = 1.0,
    # Q_main(e1, 2) = 2.
    assert float(parts["td"]) == pytest.approx((0.5 * 0.4**2 + 0.5 * 1.0**2) / 2)
    # Supervised head: logits e0 · items = (1, 0, 1) for item 1; e1 · items = (0, 1, 1) for 2.
    ce = (math.log(1 + 2 * math.e) + math.log(1 + 2 * math.e) - 1) / 2
    assert float(parts["ce"]) == pytest.approx(ce)
    assert float(learner.seen) == 2


def test_negative_sampling_and_advantage_by_hand() -> None:
    seed = 3
    vectors = [[1.0, 0.0], [0.0, 1.0]]
    main_q = [[2.0, 4.0], [1.0, 3.0]]
    target_q = [[0.5, 4.0], [6.0, 1.0]]
    # One user: items 0, 1, 0 rated 5, 2, 5: (s=e0, a=1, r=0.2, s'=e1), (s=e1, a=0, r=1, done).
    # With two items the only negative of an action is the other item.
    batch = _episode([0, 1, 0], [5, 2, 5], seed)
    cfg = HeadConfig(gamma=0.5, negatives=1)
    snqn, sa2c = SNQN(lambda: Lookup(2, 2), 2, cfg), SA2C(lambda: Lookup(2, 2), 2, cfg)
    for learner in (snqn, sa2c):
        _set(learner, vectors, main_q, target_q, seed)
    _, parts = snqn.loss(batch)
    # Positives: y0 = 0.2 + 0.5 · Q_t(e1, argmax Q_m(e1) = 0) = 0.2 + 0.5 · 4 = 2.2 against
    # Q_m(e0, 1) = 1; y1 = 1 against Q_m(e1, 0) = 4.
    pos = (0.5 * 1.2**2 + 0.5 * 3.0**2) / 2
    # Negatives (reward 0, bootstrap from the current state): t0 item 0:
    # y = 0.5 · Q_t(e0, argmax Q_m(e0) = 0) = 0.25 vs Q_m(e0, 0) = 2; t1 item 1:
    # y = 0.5 · Q_t(e1, argmax Q_m(e1) = 0) = 2 vs Q_m(e1, 1) = 3.
    neg = (0.5 * 1.75**2 + 0.5 * 1.0**2) / 2
    assert float(parts["td"]) == pytest.approx(pos + neg)
    ce = math.log(1 + math.e)  # both transitions: logits (1, 0) → 1 and (0, 1) → 0
    assert float(parts["ce"]) == pytest.approx(ce)
    # SA2C (warm-up 0): advantages Q(s, a) − mean(Q(s, a), Q(s, a⁻)) = 1 − 1.5 → clipped to
    # 0, and 4 − 3.5 = 0.5: the actor loss is mean(0 · ce, 0.5 · ce).
    _, parts = sa2c.loss(batch)
    assert float(parts["td"]) == pytest.approx(pos + neg)
    assert float(parts["ce"]) == pytest.approx(0.25 * ce)
    sa2c.bind(warmup=100.0)  # during the warm-up the actor loss is plain cross-entropy
    _, parts = sa2c.loss(batch)
    assert float(parts["ce"]) == pytest.approx(ce)


def reward_mdp(n_users: int = 240, seed: int = 0) -> Dataset:
    """After a few filler items every user reaches item ``a``; next comes ``b`` (70%, rated
    2: reward 0.2) or ``c`` (30%, rated 5: reward 1.0), and the episode ends. The most
    frequent next item after ``a`` is ``b``; the reward-optimal one is ``c``."""
    rng = np.random.default_rng(seed)
    fillers = [f"f{j}" for j in range(8)]
    rows = []
    for u in range(n_users):
        seq = [(str(f), 3.0) for f in rng.choice(fillers, size=3, replace=False)]
        seq += [("a", 3.0), ("b", 2.0) if rng.random() < 0.7 else ("c", 5.0)]
        rows += [(u, item, t, r) for t, (item, r) in enumerate(seq)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])
    return Dataset.from_frame(frame, name="reward-mdp")


# Each RL head ranks by its RL output: by its Q head (SQN and SNQN: their supervised head is
# plain cross-entropy, and a new head by default), except SAC and SA2C by their Q-weighted
# actor and CSA by CE + Q.
RANK = {"sac": "ce", "sa2c": "ce", "csa": "ce+q"}
RL_HEADS = sorted(h for h in HEADS if is_rl_head(h))  # what the heads' classes say
CONTROLS = sorted(h for h in HEADS if not is_rl_head(h))
TOY = {"dim": 16, "max_len": 8, "epochs": 40, "lr": 1e-2, "dropout": 0.0, "batch_size": 32}
RL_TOY = {**TOY, "rl_warmup": 10}


def _top_after_a(model, ds: Dataset) -> tuple[float, float]:
    """With every user's history cut just after ``a``: the share of users for whom ``c``
    is the top-scored item, and the share for whom ``b`` is."""
    seqs = ds.sequences  # each user's last item is b or c; drop it
    keep = np.ones(len(seqs.items), dtype=bool)
    keep[seqs.indptr[1:] - 1] = False
    indptr = seqs.indptr - np.arange(len(seqs.indptr))
    history = History(indptr, seqs.items[keep], ds.n_items)
    top = model.score(np.arange(ds.n_users), history=history).argmax(1)
    b, c = ds.items.index(["b", "c"])
    return float((top == c).mean()), float((top == b).mean())


def test_the_head_sets_come_from_the_classes() -> None:
    assert RL_HEADS and CONTROLS  # the RL heads and at least one control without RL
    assert all(HEADS[h].uses_reward and HEADS[h].has_q_head for h in RL_HEADS)


@pytest.mark.parametrize("head", RL_HEADS)
def test_each_rl_head_learns_the_rewarded_item_the_base_does_not(head: str) -> None:
    ds = reward_mdp()
    base = get_model("gru4rec")({**TOY}).fit(ds)
    c_first, b_first = _top_after_a(base, ds)
    assert b_first >= 0.9, f"the supervised base ranks the frequent item first ({b_first:.2f})"
    rl = get_model("gru4rec+rl")({**RL_TOY, "head": head, "rank_by": RANK.get(head, "q")})
    rl.fit(ds)
    c_first, _ = _top_after_a(rl, ds)
    assert c_first >= 0.9, f"{head} ranks the rewarded item first for only {c_first:.2f}"


@pytest.mark.parametrize("head", CONTROLS)
def test_the_controls_are_supervision_not_rl(head: str) -> None:
    # aux's head regresses the immediate reward: it also prefers c after a, without any
    # bootstrapped value. Its supervised head, which ranks, stays with the frequent item.
    ds = reward_mdp()
    control = get_model("gru4rec+rl")({**RL_TOY, "head": head}).fit(ds)
    assert _top_after_a(control, ds)[1] >= 0.9


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("check", CHECKS)
def test_every_head_passes_the_conformance_kit(head: str, check: str, tmp_path) -> None:
    cls = get_model("gru4rec+rl")
    check_recommender(lambda: cls({"epochs": 2, "dim": 8, "head": head}), tmp_path,
                      checks=(check,))  # fmt: skip


def test_sasrec_heads_are_deterministic_and_round_trip(tmp_path) -> None:
    ds = reward_mdp(60)
    params = {"dim": 8, "max_len": 8, "epochs": 2, "head": "csa", "heads": 2}
    a = get_model("sasrec+rl")(params).fit(ds)
    b = get_model("sasrec+rl")(params).fit(ds)
    users = np.arange(ds.n_users)
    np.testing.assert_array_equal(a.score(users), b.score(users))
    a.save(tmp_path / "m")
    loaded = type(a).load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(users), a.score(users))
    other = get_model("sasrec+rl")({**params, "seed": 1}).fit(ds)
    assert not np.array_equal(other.score(users), a.score(users))
    assert isinstance(a.learner, CSA) and a.encoder is a.learner.encoder
    assert not hasattr(get_model("sasrec")({"dim": 8}), "learner")  # the plain model: no RL


def test_a_resumed_head_continues_its_warm_up_and_weights_exactly(tmp_path) -> None:
    ds = reward_mdp(60)
    split = leave_one_out(ds)
    params = {"dim": 8, "max_len": 8, "head": "sa2c", "rl_warmup": 2, "patience": 100}
    rl = get_model("gru4rec+rl")
    whole = rl({**params, "epochs": 4}).fit(split.train, valid=split)
    rl({**params, "epochs": 2}).fit(split.train, valid=split, workdir=tmp_path)
    resumed = rl({**params, "epochs": 4}).fit(split.train, valid=split, workdir=tmp_path)
    assert [r["loss"] for r in resumed.train_state_.curve] == [
        r["loss"] for r in whole.train_state_.curve
    ]
    for k, v in whole.module_.state_dict().items():
        torch.testing.assert_close(resumed.module_.state_dict()[k], v, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"head": "dqn"}, "head must be one of"),
        ({"head": "sqn", "loss": "sampled"}, "full softmax"),
        ({"head": "sqn", "cl_weight": 0.1}, "cl_weight"),
        ({"rank_by": "q"}, "need an RL head"),
        ({"head": "sqn", "rank_by": "best"}, "rank_by must be one of"),
        ({"head": "sqn", "gamma": 1.5}, "gamma must be in"),
        ({"head": "sa2c", "rl_negatives": 0}, "rl_negatives"),
        ({"head": "csa", "csa_mask": 1.0}, "csa_mask"),
    ],
)
def test_bad_rl_options_are_clear_errors(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):  # as `recloop train sasrec` builds it
        cls, options = resolve_model("sasrec", params)
        cls(options)


@pytest.fixture
def td_only():
    """A head a user adds: Q-learning alone shapes the encoder (no supervised loss). Defined
    inside the fixture, so it exists for one test and leaves ``HEADS`` as it found it."""
    from recloop.rl import Learner

    before = dict(HEADS)

    class TDOnly(Learner):
        name = "td_only"
        default_rank = "q"

        def _loss(self, batch, main, target, rng):  # type: ignore[no-untyped-def]
            h, states = self._forward(main, batch.inputs, batch.valid)
            y, _, _ = self._bootstrap(batch, batch.inputs, main, h, target)
            td = 0.5 * (y - main.q_at(states, batch.actions[batch.valid])).pow(2).mean()
            return td, {"td": td.detach()}

    yield TDOnly
    HEADS.clear()
    HEADS.update(before)


def test_a_new_head_is_just_its_class(td_only) -> None:
    """Defining the class is the whole change: the head is a `head` option of the plain
    names, trains, counts as RL in the bench's verdict and gives DQN its Q layer."""
    from types import SimpleNamespace

    from recloop.bench.summary import _rl_labels
    from recloop.rl.deep import DeepConfig, DQNAgent

    assert HEADS["td_only"] is td_only and is_rl_head("td_only")
    cls, options = resolve_model("gru4rec", {**RL_TOY, "head": "td_only"})  # `--head td_only`
    ds = reward_mdp()
    model = cls(options).fit(ds)
    assert type(model.learner) is td_only
    assert set(model.train_state_.curve[0]) >= {"loss_td"}
    c_first, _ = _top_after_a(model, ds)
    assert c_first >= 0.9, f"td_only ranks the rewarded item first for only {c_first:.2f}"
    cells = [{"mode": "offline", "method": "sasrec", "variant": v, "config": {"params": p}}
             for v, p in (("td", {"head": "td_only"}), ("aux", {"head": "aux"}), ("", {}))]  # fmt: skip
    assert _rl_labels(SimpleNamespace(cells=cells)) == {"sasrec-td"}  # type: ignore[arg-type]
    dqn = DQNAgent(ds.n_items, 2, DeepConfig(batch_size=2), model=model, history_len=8)
    assert dqn.net.q is not None
    assert torch.equal(dqn.net.q.weight, model.learner.net(0).q.weight)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_dqn_starts_from_the_q_head_of_exactly_the_heads_that_have_one(head: str) -> None:
    from recloop.rl.deep import DeepConfig, DQNAgent

    ds = reward_mdp(40)
    model = get_model("gru4rec+rl")({"dim": 8, "max_len": 8, "epochs": 1, "head": head}).fit(ds)
    dqn = DQNAgent(ds.n_items, 2, DeepConfig(batch_size=2), model=model, history_len=8)
    assert dqn.net.q is not None
    took = torch.equal(dqn.net.q.weight, model.learner.net(0).q.weight)
    assert took == HEADS[head].has_q_head


def test_every_head_has_a_readme_row() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [h for h in HEADS if f"| `{h}` |" not in readme]
    assert not missing, f"add a row for {missing} to the README's table of heads"
