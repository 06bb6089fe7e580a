"""The fidelity panel: its parts on hand-made cases, and a world that must recover a known
choice rule's policy order on synthetic data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recloop.bench.experiments import EXPERIMENTS
from recloop.bench.experiments.fidelity import (
    WORLDS,
    FidelityConfig,
    _consumed,
    _groups,
    _ks,
    _start_batch,
    _start_history,
    run_fidelity,
)
from recloop.bench.experiments.fidelity_next_item import _session_ndcg
from recloop.bench.experiments.fidelity_report import agreed_inversions as _agreed_inversions
from recloop.bench.experiments.fidelity_report import panel_text
from recloop.data import Dataset
from recloop.errors import ConfigError
from recloop.eval.agreement import policy_agreement
from recloop.models.registry import build_model
from recloop.rl.panel import PANEL, ModelAgent, models_needed
from recloop.sim.core import SimConfig, UserBatch
from recloop.testing import chain_dataset, toy_dataset

# --------------------------------------------------------------------------- parts


def test_groups_put_each_users_kth_session_together() -> None:
    users = np.array([5, 3, 5, 7, 3, 5])
    groups = _groups(users)
    assert [g.tolist() for g in groups] == [[0, 1, 3], [2, 4], [5]]
    assert _groups(np.zeros(0, np.int64)) == []


def test_start_history_holds_each_users_items_before_the_start() -> None:
    ds = toy_dataset()
    seq = ds.sequences
    users = np.array([4, 1])
    starts = seq.indptr[users] + np.array([2, 3])
    h = _start_history(ds, users, starts)
    assert h.n_users == ds.n_users and h.n_items == ds.n_items
    for u, s in zip(users, starts, strict=True):
        assert (
            h.items[h.indptr[u] : h.indptr[u + 1]].tolist() == seq.items[seq.indptr[u] : s].tolist()
        )
    others = np.setdiff1d(np.arange(ds.n_users), users)
    assert (np.diff(h.indptr)[others] == 0).all()


def test_consumed_counts_the_items_of_the_sessions() -> None:
    ds = toy_dataset()
    seq = ds.sequences
    starts, lengths = np.array([0, 7]), np.array([2, 3])
    want = np.bincount(np.r_[seq.items[0:2], seq.items[7:10]], minlength=ds.n_items)
    assert np.array_equal(_consumed(ds, starts, lengths), want)


def test_session_ndcg_scores_every_step_of_a_later_session_by_hand() -> None:
    # one user: i5 i6 i7 before the cut, then the later session i0 i3 i2; another rated i1 i4
    rows = [("u", f"i{i}", t, 4.0) for i, t in ((5, 0), (6, 60), (7, 120))]
    rows += [("u", f"i{i}", t, 4.0) for i, t in ((0, 10**6), (3, 10**6 + 60), (2, 10**6 + 120))]
    rows += [("v", "i1", 0, 4.0), ("v", "i4", 60, 4.0)]
    ds = Dataset.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"]))
    assert ds.items.ids(np.arange(8)).tolist() == [f"i{i}" for i in range(8)]

    def ascending(batch, act):  # type: ignore[no-untyped-def]
        return np.tile(-np.arange(8.0), (len(act), 1))  # i0 first, then i1, …

    def descending(batch, act):  # type: ignore[no-untyped-def]
        return np.tile(np.arange(8.0), (len(act), 1))  # i7 first, then i6, …

    got = _session_ndcg(ds, SimConfig(), 10**6, np.array([0]), [ascending, descending])
    # ascending: i0 at rank 0 (1); i3 behind unseen i1 i2 (1/log2 4); i2 behind i1 (1/log2 3)
    # descending (i5-i7 seen): i0 behind i4 i3 i2 i1 (1/log2 6); i3 behind i4 (1/log2 3);
    # i2 behind i4 (i3 now seen: 1/log2 3)
    want_up = (1.0 + 1.0 / np.log2(4) + 1.0 / np.log2(3)) / 3
    want_down = (1.0 / np.log2(6) + 1.0 / np.log2(3) + 1.0 / np.log2(3)) / 3
    np.testing.assert_allclose(got, [[want_up, want_down]])


def test_the_open_loop_world_earns_its_expected_reward_on_the_replayed_states_by_hand() -> None:
    """The world's choice model on the replay's protocol: the real history moves on, and each
    step earns the slate's click probabilities times the expected reward of a click."""
    from recloop.bench.experiments.fidelity_next_item import _world_open_loop

    rows = [("u", f"i{i}", t, 4.0) for i, t in ((5, 0), (6, 60), (7, 120))]
    rows += [("u", f"i{i}", t, 4.0) for i, t in ((0, 10**6), (3, 10**6 + 60), (2, 10**6 + 120))]
    rows += [("v", "i1", 0, 4.0), ("v", "i4", 60, 4.0)]
    ds = Dataset.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"]))

    class Stub:  # click logits log 2 for i0, 0 for i1 (and the rest); every like at 1/2
        sequential, models = False, []

        def logits(self, users, history=None):  # type: ignore[no-untyped-def]
            return np.tile(np.r_[np.log(2.0), np.zeros(7)], (len(users), 1))

        def like_prob(self, users, items):  # type: ignore[no-untyped-def]
            return np.full(len(items), 0.5)

    class Shows01:  # always the slate (i0, i1)
        name, guard = "fixed", None

        def act(self, batch, rng, explore=False):  # type: ignore[no-untyped-def]
            return np.tile([0, 1], (batch.size, 1))

    sim = SimConfig(slate_size=2, like=1.0, other=0.2)
    got = _world_open_loop(Stub(), ds, sim, 10**6, np.array([0]), {"fixed": Shows01()},  # type: ignore[arg-type,dict-item]
                           ("fixed",), seed=0)  # fmt: skip
    # step 1 (i5-i7 seen): P(click) = (2 + 1) / (1 + 2 + 1); then i0 joins the history, and
    # steps 2 and 3 can click only i1: 1 / (1 + 1) each. A click earns 0.5·1 + 0.5·0.2.
    np.testing.assert_allclose(got, [[(3 / 4 + 1 / 2 + 1 / 2) * 0.6]])


def test_a_sequential_world_scores_the_replay_window_as_its_history() -> None:
    """The next-item yardstick's fast path (the world scores the replay's window) gives what
    rebuilding each user's history at every step gives."""
    from recloop.bench.experiments.fidelity import _later_sessions
    from recloop.bench.experiments.fidelity_next_item import _world_next_item_ndcg
    from recloop.sim.world import World, WorldConfig

    ds = chain_dataset(n_users=60, n_items=40, length=16)
    world = World.fit(ds, WorldConfig(models=("gru4rec",), negatives=0, epochs=3), progress=False)
    sim = SimConfig(history_len=50, session_cap=10)
    cut = int(np.quantile(ds.interactions["timestamp"], 0.85, method="higher"))
    logs = _later_sessions(ds, sim, cut)
    ev = np.flatnonzero(ds.sequences.timestamps[logs.episode_start] >= cut)
    assert len(set(logs.episode_user[ev].tolist())) == len(ev) > 10  # distinct users

    def rebuilt(batch, act):  # type: ignore[no-untyped-def]
        users = batch.users[act]
        return world.logits(users, history=_start_history(ds, users, batch.pos[act]))

    want = _session_ndcg(ds, sim, cut, ev, [rebuilt])[:, 0]
    got = _world_next_item_ndcg(world, ds, sim, cut, ev)
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert want.mean() > 0.2  # a learned chain, not a tie of zeros


def test_the_default_world_counts_tau_only_up_to_the_noise_ceiling() -> None:
    from recloop.bench.experiments.fidelity import default_world

    rng = np.random.default_rng(1)
    names = tuple("abcde")
    truth = np.array([0.0, 1.0, 2.0, 3.0, 3.0])  # d and e alike: no test separates them
    units = truth + rng.normal(0, 1.5, (400, 5))
    m = units.mean(0)

    def agree(world: np.ndarray):  # type: ignore[no-untyped-def]
        return policy_agreement(world, units, names, n_boot=200, seed=0)

    exact = agree(m)  # τ 1
    swapped = agree(m[[0, 1, 2, 4, 3]])  # τ 0.8: d and e swapped
    inverted = agree(m[[4, 1, 2, 3, 0]])  # a and e swapped: significant inversions
    assert exact.tau > swapped.tau
    assert inverted.significant_inversions and not swapped.significant_inversions
    # fewest inversions first, whatever the next-item figures
    assert default_world({"x": inverted, "y": swapped}, {"x": 0.9, "y": 0.1}) == "y"
    # τ decides while below the ceiling …
    low = replace(exact, noise_ceiling=0.95)
    assert default_world({"x": low, "y": swapped}, {"x": 0.1, "y": 0.9}) == "x"
    # … and not above it: both capped at a ceiling of 0.7, the next-item figure decides
    capped = replace(exact, noise_ceiling=0.7)
    capped_swapped = replace(swapped, noise_ceiling=0.7)
    assert default_world({"x": capped, "y": capped_swapped}, {"x": 0.1, "y": 0.9}) == "y"
    assert default_world({"x": capped, "y": capped_swapped}, {"x": 0.9, "y": 0.1}) == "x"


def test_ks_distance_by_hand() -> None:
    # CDFs on {1, 2, 3, 4}: a = (1/4, 2/4, 3/4, 1), b = (0, 0, 1/2, 1): largest gap 2/4 at 2
    assert _ks(np.array([1, 2, 3, 4]), np.array([3, 4])) == pytest.approx(0.5)
    assert _ks(np.array([2, 2]), np.array([2, 2, 2])) == 0.0


def test_agreed_inversions_count_only_pairs_the_other_yardstick_orders_alike() -> None:
    names = ("a", "b", "c")
    rng = np.random.default_rng(0)
    # the yardstick: a > b > c by a wide, consistent margin over 40 units
    yard = np.c_[3 + rng.normal(0, 0.1, 40), 2 + rng.normal(0, 0.1, 40), 1 + rng.normal(0, 0.1, 40)]
    agr = policy_agreement(np.array([1.0, 2.0, 3.0]), yard, names, n_boot=50)  # all inverted
    assert len(agr.significant_inversions) == 3
    other = np.array([[3.0, 2.0, 2.5]])  # agrees on a > b and a > c, not on b > c
    assert _agreed_inversions(agr, other, names) == 2


def test_model_agent_scores_a_user_as_the_model_does_from_their_items() -> None:
    ds = toy_dataset()
    for name in ("ease", "markov", "itemknn"):
        model = build_model(name, {}, 0).fit(ds)
        agent = ModelAgent(model, 3)
        seq = ds.sequences
        users = np.array([0, 2, 5])
        seen = np.zeros((3, ds.n_items), bool)
        window = np.zeros((3, 4), np.int64)
        for r, u in enumerate(users):
            items = seq.items[seq.indptr[u] : seq.indptr[u + 1]]
            seen[r, items] = True
            window[r, -min(4, len(items)) :] = items[-4:] + 1
        state = type("S", (), {"seen": seen, "history": window, "users": users})()
        np.testing.assert_allclose(agent.scores(state), model.score(users), rtol=1e-5, atol=1e-6)


def test_model_agent_refuses_a_model_without_history() -> None:
    model = build_model("bpr", {"epochs": 1}, 0).fit(toy_dataset())
    with pytest.raises(ConfigError, match="history"):
        ModelAgent(model, 3)


def test_panel_and_config_checks() -> None:
    assert len(PANEL) >= 10
    assert models_needed(("random", "reinforce_topk")) == {"sasrec"}
    assert models_needed(("ease", "gru4rec")) == {"ease", "gru4rec"}
    with pytest.raises(ConfigError, match="world"):
        FidelityConfig(worlds=("nope",))
    with pytest.raises(ConfigError, match="member"):
        FidelityConfig(members=("random", "nope", "ease"))
    with pytest.raises(ConfigError, match="folds"):
        FidelityConfig(folds=1)
    assert EXPERIMENTS.module("fidelity") == "recloop.bench.experiments.fidelity"
    assert {"ease", "bpr", "sasrec", "gru4rec"} <= set(WORLDS)


def test_reset_from_a_given_history_starts_there() -> None:
    from recloop.sim.world import World

    ds = toy_dataset(n_users=40)
    world = World.fit(ds, progress=False)
    seq = ds.sequences
    users = np.array([1, 3])
    starts = seq.indptr[users] + 2
    h = _start_history(ds, users, starts)
    batch = UserBatch(world, SimConfig(slate_size=3, history_len=5, leave_bias=0.0), 2)
    batch.reset(np.arange(2), users, history=h)
    for r, (u, s) in enumerate(zip(users, starts, strict=True)):
        items = seq.items[seq.indptr[u] : s]
        assert set(np.flatnonzero(batch.seen[r])) == set(items.tolist())
        assert (batch.history[r, -2:] - 1).tolist() == items.tolist()
    np.testing.assert_allclose(batch.logits, world.logits(users, history=h))


def test_one_batch_starts_each_users_sessions_from_their_own_pasts() -> None:
    from recloop.sim.world import World

    ds = toy_dataset(n_users=40)
    world = World.fit(ds, progress=False)
    seq = ds.sequences
    users = np.array([1, 3, 1])  # user 1 twice: two later sessions, two pasts
    starts_at = seq.indptr[users] + np.array([2, 3, 5])
    groups = [np.array([0, 1]), np.array([2])]
    starts = [(g, _start_history(ds, users[g], starts_at[g])) for g in groups]
    batch = _start_batch(world, SimConfig(slate_size=3, history_len=5, leave_bias=0.0), users,
                         starts, repeats=2)  # fmt: skip
    assert batch.size == 6
    for k in range(2):
        for j, (u, s) in enumerate(zip(users, starts_at, strict=True)):
            items = seq.items[seq.indptr[u] : s]
            assert set(np.flatnonzero(batch.seen[3 * k + j])) == set(items.tolist())
            assert batch.users[3 * k + j] == u
    assert not np.array_equal(batch.seen[0], batch.seen[2])  # not the same past twice


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def chain_result():  # type: ignore[no-untyped-def]
    cfg = FidelityConfig(
        worlds=("sasrec",), members=("random", "popularity", "markov", "sasrec"),
        folds=2, repeats=2, steps=1, bootstrap=200, cut_frac=0.15,
        greedy={"max_len": 20, "batch_size": 32, "epochs": 30, "patience": 3},
        world={"epochs": 30}, sim={"session_cap": 10, "history_len": 20},
    )  # fmt: skip
    return run_fidelity(chain_dataset(), cfg)


def test_a_world_fitted_on_a_known_choice_rule_recovers_its_policy_order(chain_result) -> None:  # type: ignore[no-untyped-def]
    r = chain_result
    panel = r.panel.set_index(["variant", "method"])["value"]
    # the rule's own policies (the next item, learned) beat popularity and random on replay
    for good in ("markov", "sasrec"):
        for bad in ("random", "popularity"):
            assert panel[("replay", good)] > panel[("replay", bad)] + 0.5
            assert panel[("world:sasrec", good)] > panel[("world:sasrec", bad)]
            # and the world's choice model alone, on the replayed states (open loop)
            assert panel[("world:sasrec#open", good)] > panel[("world:sasrec#open", bad)]
    agr = r.agreements[("sasrec", "replay")]
    assert agr.significant_inversions == ()
    assert agr.n_significant_pairs >= 4
    assert r.default_world == "sasrec"
    # the world knows the rule: its next-item ranking is near the best policy's
    figs = r.world_figures["sasrec"]
    assert figs["heldout_ndcg@10"] > 0.5
    assert set(r.rows["metric"]) >= {"kendall_tau", "pairs_same_order", "inversions_significant",
                                     "heldout_ndcg@10", "best_panel_ndcg@10", "session_len_ks",
                                     "click_gini_gap", "n_policies", "noise_ceiling_tau",
                                     "default_world"}  # fmt: skip
    gap = r.rows[(r.rows["metric"] == "heldout_ndcg_gap@10") & (r.rows["method"] == "sasrec")]
    assert len(gap) == 1
    g = gap.iloc[0]
    assert g["value"] == pytest.approx(figs["heldout_ndcg@10"] - figs["best_panel_ndcg@10"])
    assert g["ci_low"] < g["value"] < g["ci_high"]
    text = panel_text(r)
    assert "default world" in text and "sasrec" in text


def test_same_seed_same_numbers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = FidelityConfig(worlds=("ease",), members=("random", "popularity", "markov", "ease"),
                         folds=2, repeats=2, steps=1, bootstrap=100, cut_frac=0.15,
                         sim={"session_cap": 8, "history_len": 20})  # fmt: skip
    one, two = run_fidelity(chain_dataset(), cfg), run_fidelity(chain_dataset(), cfg)
    pd.testing.assert_frame_equal(one.rows, two.rows)
    pd.testing.assert_frame_equal(one.panel, two.panel)
    # the worlds' response models go through the fit cache: fitted once, then loaded alike
    cached = run_fidelity(chain_dataset(), cfg, cache=tmp_path)
    entries = sorted(p.name.split("-")[0] for p in tmp_path.iterdir())
    assert entries == ["ease"] * cfg.folds  # one world EASE per fold (not the panel's own)
    pd.testing.assert_frame_equal(one.panel, cached.panel)
    again = run_fidelity(chain_dataset(), cfg, cache=tmp_path)
    pd.testing.assert_frame_equal(one.panel, again.panel)
    other = run_fidelity(chain_dataset(), replace(cfg, seed=1))
    assert not one.panel["value"].equals(other.panel["value"])  # the seed is used


def test_the_report_states_each_worlds_ranking_beside_simulated_results() -> None:
    from recloop.bench.summary import ranking_fidelity

    base = {"benchmark": "sim_fidelity", "dataset": "d", "variant": "replay", "seed": 0}
    rows = pd.DataFrame([
        {**base, "method": "ease", "metric": "kendall_tau", "value": 0.25, "note": np.nan},
        {**base, "method": "ease", "metric": "inversions_significant", "value": 2.0,
         "note": "sasrec > popularity (p=1.0e-05); markov > popularity (p=2.0e-03)"},
        {**base, "method": "sasrec", "metric": "kendall_tau", "value": 0.9, "note": np.nan},
        {**base, "method": "sasrec", "metric": "inversions_significant", "value": 0.0, "note": ""},
        {**base, "method": "sasrec", "variant": "", "metric": "default_world", "value": 1.0},
        {**base, "dataset": "other", "method": "bpr", "metric": "kendall_tau", "value": 0.1},
    ])  # fmt: skip
    text = ranking_fidelity(rows, "d")
    assert "ease τ +0.25, 2 significant inversions: sasrec > popularity" in text
    assert "sasrec τ +0.90, 0 significant inversions" in text
    assert "best-ranking world: sasrec" in text and "bpr" not in text
    assert ranking_fidelity(rows, "nowhere") == ""


def test_member_spread_scores_each_member_of_an_ensemble_world_alone() -> None:
    cfg = FidelityConfig(worlds=("sasrec_gru4rec",), members=("random", "popularity", "markov"),
                         folds=2, repeats=2, steps=1, bootstrap=100, cut_frac=0.15,
                         world={"epochs": 5}, member_spread=True,
                         sim={"session_cap": 8, "history_len": 20})  # fmt: skip
    r = run_fidelity(chain_dataset(), cfg)
    wide = r.panel.pivot_table(index="method", columns="variant", values="value")
    members = wide[["world:sasrec_gru4rec#m0", "world:sasrec_gru4rec#m1"]].to_numpy()
    assert np.all(np.isfinite(members))
    assert not np.allclose(members[:, 0], members[:, 1])  # two models, two sets of values
    cv = members.std(1, ddof=1) / np.abs(members.mean(1))
    assert r.world_figures["sasrec_gru4rec"]["member_value_cv"] == pytest.approx(cv.mean())
    # each member is ranked against the yardsticks too, but only a named world is the default
    assert ("sasrec_gru4rec#m0", "replay") in r.agreements
    assert r.default_world == "sasrec_gru4rec"
