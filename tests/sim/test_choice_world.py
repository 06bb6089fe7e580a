"""The users' choice over a slate, and the sequential world whose clicks follow the history."""

from __future__ import annotations

import numpy as np
import pytest

from recloop.errors import ConfigError
from recloop.sim.core import SimConfig, UserBatch, choice_probabilities
from recloop.sim.world import SEQUENTIAL_SEED_OFFSET, World, WorldConfig
from recloop.testing import toy_dataset


def test_choice_probabilities_by_hand_and_with_no_click() -> None:
    util = np.array([[0.0, np.log(2.0), -np.inf], [50.0, 50.0, 50.0]])
    p = choice_probabilities(util)
    # e^u = (1, 2, 0) and no click e^0 = 1: total 4
    np.testing.assert_allclose(p[0], [0.25, 0.5, 0.0, 0.25])
    np.testing.assert_allclose(p[1, :3], [1 / 3] * 3, rtol=1e-12)
    assert p[1, 3] < 1e-20
    rng = np.random.default_rng(0)
    many = choice_probabilities(rng.normal(0, 3, (100, 10)))
    np.testing.assert_allclose(many.sum(1), 1.0, rtol=1e-12)


def test_the_step_draws_clicks_with_those_probabilities() -> None:
    world = World.fit(toy_dataset(n_users=40), progress=False)
    cfg = SimConfig(slate_size=3, history_len=5, leave_bias=0.0, boredom=0.0)
    n = 20_000
    batch = UserBatch(world, cfg, n)
    batch.reset(np.arange(n), np.zeros(n, np.int64))
    unseen = np.flatnonzero(~batch.seen[0])[:3]
    util = batch.logits[0, unseen][None, :].astype(np.float64)
    want = choice_probabilities(util)[0]
    res = batch.step(np.tile(unseen, (n, 1)), np.random.default_rng(1))
    got = [(res.clicked == i).mean() for i in unseen] + [(res.clicked < 0).mean()]
    np.testing.assert_allclose(got, want, atol=4 * np.sqrt(0.25 / n))


@pytest.fixture(scope="module")
def seq_world() -> World:
    return World.fit(toy_dataset(n_users=40), WorldConfig(models=("sasrec",)), progress=False)


def test_a_sequential_world_follows_the_window_after_each_click(seq_world: World) -> None:
    world = seq_world
    assert world.sequential
    assert world.models[0].config.seed == SEQUENTIAL_SEED_OFFSET  # never the agents' seed
    cfg = SimConfig(slate_size=4, history_len=50, leave_bias=-20.0, boredom=0.0)
    batch = UserBatch(world, cfg, 3)
    users = np.array([0, 1, 2])
    batch.reset(np.arange(3), users)
    # at the start, the window path and the history path give the same logits
    np.testing.assert_allclose(world.window_logits(batch.history), batch.logits, atol=1e-4)
    # the logits are log-probabilities up to the calibration: a softmax of (logits - b) / a
    a, b = float(world.coef[0]), world.intercept
    p = np.exp((batch.logits.astype(np.float64) - b) / a)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-3)
    rng = np.random.default_rng(0)
    before = batch.logits.copy()
    for _ in range(5):
        res = batch.step(batch.top_unseen(batch.logits), rng)
        if (res.clicked >= 0).any():
            break
    clicked = np.flatnonzero(res.clicked >= 0)
    assert len(clicked), "no click in five steps of the world's own favourites"
    np.testing.assert_allclose(batch.logits[clicked],
                               world.window_logits(batch.history[clicked]), atol=1e-5)  # fmt: skip
    assert not np.allclose(batch.logits[clicked], before[clicked])


def test_an_ensemble_of_sequential_models_adds_their_calibrated_log_probabilities() -> None:
    import torch

    cfg = WorldConfig(models=("sasrec", "gru4rec"), negatives=0, epochs=2)
    world = World.fit(toy_dataset(n_users=40), cfg, progress=False)
    assert world.sequential and world.coef.shape == (2,)
    batch = UserBatch(world, SimConfig(slate_size=4, history_len=50, boredom=0.0), 3)
    batch.reset(np.arange(3), np.array([0, 1, 2]))
    want = np.full(batch.logits.shape, world.intercept)
    tokens = torch.from_numpy(batch.history.astype(np.int64))
    with torch.inference_mode():
        for c, m in zip(world.coef, world.models, strict=True):
            raw = m.token_scorer()(tokens[:, -m.config.max_len :]).double()
            want += c * torch.log_softmax(raw, -1).numpy()
    np.testing.assert_allclose(world.window_logits(batch.history), want, atol=1e-4)
    np.testing.assert_allclose(batch.logits, want, atol=1e-4)  # the history path agrees


def test_a_model_named_twice_is_a_seed_ensemble() -> None:
    """Repeated members get seeds of their own (the first keeps the single model's), so they
    are different fits whose calibrated log-probabilities add up."""
    from recloop.sim.world import MEMBER_SEED_STRIDE

    cfg = WorldConfig(models=("gru4rec", "gru4rec"), negatives=0, epochs=2)
    world = World.fit(toy_dataset(n_users=40), cfg, progress=False)
    seeds = [m.config.seed for m in world.models]
    assert seeds == [SEQUENTIAL_SEED_OFFSET, SEQUENTIAL_SEED_OFFSET + MEMBER_SEED_STRIDE]
    windows = UserBatch(world, SimConfig(history_len=50), 4)
    windows.reset(np.arange(4), np.arange(4))
    a, b = (m.token_scorer() for m in world.models)
    import torch

    tokens = torch.from_numpy(windows.history.astype(np.int64))
    with torch.inference_mode():
        assert not torch.allclose(a(tokens), b(tokens))  # two fits, not one counted twice
    assert world.coef.shape == (2,) and np.all(np.isfinite(world.coef))


def test_a_mixed_world_adds_the_window_to_the_long_run_taste() -> None:
    """Sequential members read the window after every click; a history member (EASE) adds
    its calibrated score, which a click moves by the clicked item's row of its weights."""
    cfg = WorldConfig(models=("gru4rec", "ease"), negatives=0, epochs=2)
    world = World.fit(toy_dataset(n_users=40), cfg, progress=False)
    assert world.sequential and world.mixed and world.coef.shape == (2,)
    batch = UserBatch(world, SimConfig(slate_size=4, history_len=50, boredom=0.0,
                                       leave_bias=-20.0), 3)  # fmt: skip
    users = np.array([0, 1, 2])
    batch.reset(np.arange(3), users)
    ease = world.models[1]
    static = world.coef[1] * ease.score(users, history=world.history)
    np.testing.assert_allclose(batch.static, static, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(batch.logits, world.window_logits(batch.history) + static,
                               atol=1e-4)  # fmt: skip
    rng = np.random.default_rng(0)
    for _ in range(10):
        res = batch.step(batch.top_unseen(batch.logits), rng)
        if (res.clicked >= 0).any():
            break
    clicked = np.flatnonzero(res.clicked >= 0)
    assert len(clicked), "no click in ten steps of the world's own favourites"
    items = res.clicked[clicked]
    row = world.coef[1] * ease.history_item_rows(items)  # what the click adds to EASE's score
    np.testing.assert_allclose(batch.static[clicked], static[clicked] + row, atol=1e-4)
    np.testing.assert_allclose(
        batch.logits[clicked],
        world.window_logits(batch.history[clicked]) + static[clicked] + row,
        atol=1e-4,
    )
    # the same state from the history path: each user's logs plus the click
    from recloop.data.history import History

    h = world.history
    extra = {int(u): [res.clicked[k]] for k, u in enumerate(users) if k in clicked}
    rows = [np.r_[h.items[h.indptr[u] : h.indptr[u + 1]], extra.get(u, [])]
            for u in range(h.n_users)]  # fmt: skip
    grown = History(np.r_[0, np.cumsum([len(r) for r in rows])],
                    np.concatenate(rows).astype(np.int64), world.n_items)  # fmt: skip
    np.testing.assert_allclose(world.static_logits(users, grown)[clicked],
                               batch.static[clicked], atol=1e-3)  # fmt: skip


def test_real_hazard_logit_by_hand() -> None:
    import pandas as pd

    from recloop.data import Dataset
    from recloop.sim.sessions import real_hazard_logit

    # sessions (gap > 1800 s splits): lengths 1, 1, 2, 3 (capped at 3)
    rows = [("a", "i0", 0), ("a", "i1", 10_000), ("a", "i2", 10_060),
            ("b", "i3", 0), ("b", "i4", 60), ("b", "i5", 120), ("b", "i6", 180),
            ("c", "i7", 0)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).assign(rating=5.0)
    ds = Dataset.from_frame(frame)
    world = type("W", (), {"dataset": ds})()
    h = real_hazard_logit(world, SimConfig(session_cap=3))  # type: ignore[arg-type]
    # at risk 4, 2, 1; ended 2, 1, 1: hazard (2.5/5, 1.5/3, 1.5/2)
    want = np.log(np.array([0.5, 0.5, 0.75]) / (1 - np.array([0.5, 0.5, 0.75])))
    np.testing.assert_allclose(h[1:], want)
    with pytest.raises(ConfigError, match="leave_shape"):
        SimConfig(leave_shape="curvy")


def test_the_leave_model_fits_returning_and_recent_sessions_by_hand() -> None:
    import pandas as pd

    from recloop.data import Dataset
    from recloop.errors import DataError
    from recloop.sim.sessions import real_lengths

    rows = [("a", "i0", 0), ("a", "i1", 10_000), ("a", "i2", 10_060),
            ("b", "i3", 0), ("b", "i4", 60), ("b", "i5", 120), ("b", "i6", 180),
            ("c", "i7", 0)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).assign(rating=5.0)
    world = type("W", (), {"dataset": Dataset.from_frame(frame)})()

    def lengths(**options: object) -> list[int]:
        return real_lengths(world, SimConfig(session_cap=3, **options)).tolist()  # type: ignore[arg-type]

    assert sorted(lengths()) == [1, 1, 2, 3]  # a: 1, 2; b: 4 capped at 3; c: 1
    assert lengths(leave_returning=True) == [2]  # only a's second session is not a first
    # the last half of the ratings starts at t = 120 (the "higher" median of the 8 stamps):
    # a's second session, and b's session split there (its part from 120 on)
    assert sorted(lengths(leave_recent=0.5)) == [2, 2]
    assert lengths(leave_recent=0.25) == [2]  # from t = 10,000: a's second session
    only_c = Dataset.from_frame(frame[frame.user == "c"].reset_index(drop=True))
    lone = type("W", (), {"dataset": only_c})()
    with pytest.raises(DataError, match=r"no real session is left.*leave_returning"):
        real_lengths(lone, SimConfig(leave_returning=True))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"leave_recent must be in \[0, 1\)"):
        SimConfig(leave_recent=1.0)


def test_the_choice_set_calibration_expects_one_pick_per_held_out_step() -> None:
    """Calibrated against every unrated item (``negatives = 0``), the click probabilities of
    a held-out user's whole choice set add up to about one pick, as in the logs (the logistic
    fit is calibrated in the large on the calibration half; the report half is checked); with
    100 sampled negatives a single item's rate is set for a choice among 101, far too high."""
    ds = toy_dataset(n_users=200, n_items=600)
    picks = {}
    for n_neg in (0, 100):
        world = World.fit(ds, WorldConfig(negatives=n_neg), progress=False)
        rate, n_report = world.report["click_rate_random_item"], world.report["report_users"]
        assert n_report > 50
        unrated = ds.n_items - ds.interactions.groupby("user").size().mean()
        picks[n_neg] = rate * unrated  # expected clicks over the whole choice set
    assert 0.75 < picks[0] < 1.33
    assert picks[100] > 3 * picks[0]  # ~5 clicks where the logs hold one
    with pytest.raises(ConfigError, match="negatives must be >= 0"):
        WorldConfig(negatives=-1)


def test_each_member_alone_is_a_world_under_its_own_calibration() -> None:
    import torch

    one = World.fit(toy_dataset(n_users=40), WorldConfig(models=("gru4rec",), negatives=0,
                                                          epochs=2), progress=False)  # fmt: skip
    # a lone member's own calibration is the world's
    np.testing.assert_allclose(one.member_coef, one.coef)
    np.testing.assert_allclose(one.member_intercept, [one.intercept])
    cfg = WorldConfig(models=("sasrec", "gru4rec"), negatives=0, epochs=2)
    world = World.fit(toy_dataset(n_users=40), cfg, progress=False)
    assert world.member_coef.shape == (2,) and world.member_intercept.shape == (2,)
    batch = UserBatch(world, SimConfig(slate_size=4, history_len=50), 3)
    batch.reset(np.arange(3), np.array([0, 1, 2]))
    tokens = torch.from_numpy(batch.history.astype(np.int64))
    for j, m in enumerate(world.models):
        alone = world.member(j)
        assert alone.config.models == (cfg.models[j],) and alone.models == [m]
        with torch.inference_mode():
            logp = torch.log_softmax(m.token_scorer()(tokens).double(), -1).numpy()
        want = world.member_coef[j] * logp + world.member_intercept[j]
        np.testing.assert_allclose(alone.window_logits(batch.history), want, atol=1e-4)
        np.testing.assert_allclose(alone.logits(np.array([0, 1, 2])), want, atol=1e-4)
    with pytest.raises(ConfigError, match="out of range"):
        world.member(2)


def test_the_popularity_covariate_adds_a_fitted_weight_on_log_counts() -> None:
    ds = toy_dataset(n_users=40)
    world = World.fit(ds, WorldConfig(models=("gru4rec", "pop"), negatives=0, epochs=2),
                      progress=False)  # fmt: skip
    assert world.mixed and world.coef.shape == (2,)
    users = np.arange(3)
    counts = world.models[1].counts_  # users per item in the world's fit data
    want = world.coef[1] * np.log1p(counts)
    np.testing.assert_allclose(world.static_logits(users), np.tile(want, (3, 1)), rtol=1e-5)
    batch = UserBatch(world, SimConfig(slate_size=4, history_len=50, boredom=0.0,
                                       leave_bias=-20.0), 3)  # fmt: skip
    batch.reset(np.arange(3), users)
    rng = np.random.default_rng(0)
    for _ in range(5):
        batch.step(batch.top_unseen(batch.logits), rng)
    # popularity does not follow a click: the covariate stays, the window moves
    np.testing.assert_allclose(batch.static, np.tile(want, (3, 1)), rtol=1e-5)
    np.testing.assert_allclose(batch.logits, world.window_logits(batch.history) + want,
                               atol=1e-4)  # fmt: skip


def test_an_anchored_world_keeps_part_of_the_session_start_after_clicks(seq_world: World) -> None:
    rho = 0.4
    cfg = SimConfig(slate_size=4, history_len=50, boredom=0.0, leave_bias=-20.0, anchor=rho)
    batch = UserBatch(seq_world, cfg, 3)
    batch.reset(np.arange(3), np.array([0, 1, 2]))
    start = batch.logits.copy()
    np.testing.assert_allclose(start, seq_world.window_logits(batch.history), atol=1e-4)
    rng = np.random.default_rng(0)
    clicked = np.zeros(3, dtype=bool)
    for _ in range(8):
        clicked |= batch.step(batch.top_unseen(batch.logits), rng).clicked >= 0
    assert clicked.any()
    want = (1 - rho) * seq_world.window_logits(batch.history) + rho * start
    np.testing.assert_allclose(batch.logits[clicked], want[clicked], atol=1e-4)
    with pytest.raises(ConfigError, match="anchor"):
        SimConfig(anchor=1.0)
