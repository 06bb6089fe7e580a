"""The simulator's genre dynamics fitted on data: the world's genre-repetition weight (its
boredom) and the leave model's genre-repetition push."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recloop.data import Dataset
from recloop.errors import ConfigError
from recloop.sim import SimConfig, UserBatch, World
from recloop.sim.choice import genre_repetition, genre_share, window_taste
from recloop.sim.sessions import _ranges, fit_leave_per_repeat
from recloop.sim.world import TASTE_DECAY, TASTE_WINDOW


def _two_genres(plan, n_users: int = 80) -> Dataset:
    """Users rating 40 items (genre A: 0-19, B: 20-39): ``plan(rng)`` gives a user's steps as
    (genre, the session ends after it) pairs; each step rates a random unrated item of its
    genre, a minute after the last one or, after a session's end, a day."""
    rng = np.random.default_rng(0)
    rows, stamp = [], 0
    for u in range(n_users):
        left = [list(rng.permutation(20)), list(rng.permutation(20) + 20)]
        for g, ends in plan(rng):
            rows.append((f"u{u:02d}", f"i{left[g].pop():02d}", stamp, 4.0))
            stamp += 86_400 if ends else 60
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])
    info = pd.DataFrame(
        {"title": [f"film {i}" for i in range(40)],
         "genres": [("A",) if i < 20 else ("B",) for i in range(40)]},
        index=[f"i{i:02d}" for i in range(40)],
    )  # fmt: skip
    return Dataset.from_frame(frame, item_info=info, name="genres")


def _steps(genre_of_step, n: int = 16):
    return lambda rng: [(genre_of_step(t, rng), False) for t in range(n)]


def _sessions(last_repeats: bool):
    """Sessions of 2-5 ratings whose genres alternate, or stay, and whose last rating repeats
    the genre before it, or switches (``last_repeats``)."""

    def plan(rng: np.random.Generator) -> list[tuple[int, bool]]:
        out: list[tuple[int, bool]] = []
        while len(out) < 18:
            g = int(rng.integers(2))
            n = int(rng.integers(2, 6))
            for _ in range(n - 1):
                out.append((g, False))
                g = 1 - g if last_repeats else g  # alternate, or stay
            g = out[-1][0] if last_repeats else 1 - out[-1][0]
            out.append((g, True))
        return out[:18]

    return plan


def test_window_taste_by_hand_and_as_the_simulator_starts() -> None:
    genres = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # window [pad, item 0, item 2], decay 0.5: weights 0.5 × (0.25, 0.5, 1)
    taste = window_taste(genres, np.array([[0, 1, 3]]), 0.5)
    np.testing.assert_allclose(taste, [[0.25 + 0.5, 0.5]])
    share = genre_share(genres)  # item 2 counts half in each genre
    np.testing.assert_allclose(genre_repetition(share, taste), [[0.75, 0.5, 0.625]])
    # the calibration's window and decay are the simulator's defaults
    assert (SimConfig().history_len, SimConfig().taste_decay) == (TASTE_WINDOW, TASTE_DECAY)


def test_ranges_by_hand() -> None:
    assert _ranges(np.array([3, 0, 2, 1])).tolist() == [0, 1, 2, 0, 1, 0]


@pytest.fixture(scope="module")
def runs() -> World:
    """Users rate in genre runs of four: the next item's genre is the recent clicks'."""
    data = _two_genres(
        _steps(lambda t, rng: (t // 4) % 2 if rng.random() < 0.9 else 1 - (t // 4) % 2)
    )
    return World.fit(data, progress=False, genre=True, negatives=0, models=("ease",))


def test_the_genre_weight_recovers_whether_users_return_to_genres_or_tire_of_them(
    runs: World,
) -> None:
    # EASE reads the whole history (as many A as B): only the genre term sees the runs
    assert runs.genre_coef is not None and runs.genre_coef > 1.0
    assert runs.boredom(None) == -runs.genre_coef  # users come back: negative boredom
    assert runs.boredom(0.5) == 0.5  # a number given wins
    assert runs.report["genre_coef"] == runs.genre_coef
    alternate = World.fit(_two_genres(_steps(lambda t, rng: t % 2)), progress=False, genre=True,
                          negatives=0, models=("ease",))  # fmt: skip
    assert alternate.genre_coef is not None and alternate.genre_coef < -1.0  # they tire
    plain = World.fit(_two_genres(_steps(lambda t, rng: t % 2)), progress=False, negatives=0)
    assert plain.genre_coef is None
    with pytest.raises(ConfigError, match="genre = true"):
        plain.boredom(None)


def test_the_simulator_uses_the_fitted_weight_and_a_member_its_own(runs: World) -> None:
    batch = UserBatch(runs, SimConfig(boredom=None, leave_per_repeat=0.0), 3)
    users = runs.active_users[:3]
    batch.reset(np.arange(3), users)
    assert batch.boredom == np.float32(-runs.genre_coef)
    rep = genre_repetition(genre_share(batch.genres), batch.taste)
    np.testing.assert_allclose(batch.utility(), batch.logits + runs.genre_coef * rep, rtol=1e-5)
    # the start taste is the calibration's: the window of the last 50 items
    windows = batch.history
    np.testing.assert_allclose(batch.taste, window_taste(batch.genres, windows, 0.8), rtol=1e-5)
    member = runs.member(0)
    assert member.genre_coef == runs.member_genre[0]
    assert member.boredom(None) == -runs.member_genre[0]


def test_the_leave_push_is_fitted_on_how_real_sessions_end() -> None:
    cfg = SimConfig(leave_per_repeat=None, session_cap=10)

    def fitted(plan) -> float:
        world = World.__new__(World)
        world.dataset, world.cache = _two_genres(plan), {}
        return fit_leave_per_repeat(world, cfg)

    # sessions of random lengths: users leave after a rating that repeats the genres before
    # it (the others switch), or after one that switches (the others repeat)
    assert fitted(_sessions(last_repeats=True)) > 1.0
    assert fitted(_sessions(last_repeats=False)) < -1.0

    # no genre signal in the ends: genres and ends at random
    def noise(rng: np.random.Generator) -> list[tuple[int, bool]]:
        return [(int(rng.integers(2)), bool(rng.random() < 0.3)) for _ in range(18)]

    assert abs(fitted(noise)) < 0.5


def test_the_open_loop_scores_with_the_fitted_genre_term() -> None:
    from recloop.bench.experiments.fidelity_next_item import _start_history, _world_scorer
    from recloop.sim.replay import ReplayBatch

    runs = World.fit(_two_genres(_sessions(last_repeats=False)), progress=False, genre=True,
                     negatives=0, models=("ease",))  # fmt: skip
    assert runs.genre_coef

    sim = SimConfig(boredom=None)
    batch = ReplayBatch(runs.dataset, sim, 4)
    batch.reset(np.arange(4), np.unique(batch.episode_user, return_index=True)[1][:4])
    act = np.arange(4)
    got = _world_scorer(runs, runs.dataset, sim)(batch, act)
    base = runs.logits(batch.users, history=_start_history(runs.dataset, batch.users, batch.pos))
    genres = runs.dataset.genre_matrix()[0]
    rep = genre_repetition(genre_share(genres), window_taste(genres, batch.history, 0.8))
    np.testing.assert_allclose(got, base + runs.genre_coef * rep, rtol=1e-5, atol=1e-6)
    # a hand-set boredom is a closed-loop dynamic: the choice model alone leaves it out
    plain = _world_scorer(runs, runs.dataset, SimConfig(boredom=1.0))(batch, act)
    np.testing.assert_allclose(plain, base, rtol=1e-6)
