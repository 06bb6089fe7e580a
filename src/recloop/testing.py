"""The conformance kit every recloop recommender passes (ship-with-the-package, like LensKit's).

Use it for your own models too::

    from recloop.testing import check_recommender
    check_recommender(lambda: MyModel(seed=0), tmp_path)

Each check raises ``AssertionError`` with a message naming the broken contract.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recloop.data.dataset import Dataset
from recloop.errors import ConfigError, NotFittedError, UnknownIdError
from recloop.models.base import Recommender

CHECKS = (
    "shapes_and_dtypes",
    "unknown_ids",
    "k_larger_than_catalogue",
    "exclude_seen",
    "batch_equals_single",
    "save_load_round_trip",
    "same_seed_same_output",
    "not_fitted_and_bad_config",
    "history_argument",
)


def toy_dataset(seed: int = 0, n_users: int = 30, n_items: int = 25) -> Dataset:
    """A small random dataset with string ids, ratings and timestamps (each user ≥ 4 items)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        n = int(rng.integers(4, 10))
        items = rng.choice(n_items, size=n, replace=False)
        for t, i in enumerate(items):
            rows.append((f"u{u}", f"i{i}", 1000 * u + t, float(rng.integers(1, 6))))
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])
    return Dataset.from_frame(frame, name="toy")


def chain_dataset(n_users: int = 200, n_items: int = 120, length: int = 24,
                  seed: int = 0) -> Dataset:  # fmt: skip
    """Users who mostly rate the item after their last one (``i → i + 1``), sometimes skip
    ahead 2-4 items; every user's events are a minute apart over the same time span, so a
    global time cut leaves each user's last few events as one later session. A known
    sequential rule: a world or agent that learns it can be checked against it."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        pos = int(rng.integers(0, n_items))
        for j in range(length):
            rows.append((f"u{u}", f"i{pos % n_items}", 1_000_000 + 60 * j + u,
                         float(rng.integers(3, 6))))  # fmt: skip
            pos += 1 if rng.random() < 0.8 else int(rng.integers(2, 5))
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])
    return Dataset.from_frame(frame, name="chain")


def _fitted(make: Callable[[], Recommender], ds: Dataset) -> Recommender:
    return make().fit(ds)


def check_recommender(
    make: Callable[[], Recommender],
    tmp_path: str | Path,
    checks: tuple[str, ...] = CHECKS,
    dataset: Dataset | None = None,
) -> None:
    """Run the conformance checks on a model factory (a fresh, unfitted model per call)."""
    ds = dataset or toy_dataset()
    model = _fitted(make, ds)
    for name in checks:
        fn = globals()[f"check_{name}"]
        if name in ("save_load_round_trip",):
            fn(model, ds, Path(tmp_path))
        elif name in ("same_seed_same_output", "not_fitted_and_bad_config"):
            fn(make, ds)
        else:
            fn(model, ds)


def check_shapes_and_dtypes(model: Recommender, ds: Dataset) -> None:
    users = np.arange(min(5, ds.n_users))
    s = model.score(users)
    assert s.shape == (len(users), ds.n_items), f"score shape {s.shape}"
    assert s.dtype == np.float32, f"score dtype {s.dtype}, expected float32"
    assert np.isfinite(s).all(), "score returned non-finite values"
    sub = model.score(users, items=[3, 1])
    assert sub.shape == (len(users), 2)
    np.testing.assert_array_equal(sub, s[:, [3, 1]])
    items, scores = model.recommend(users, k=5)
    assert items.shape == (len(users), 5) and scores.shape == (len(users), 5)
    assert items.dtype == np.int64, f"recommend item dtype {items.dtype}"
    assert (np.diff(scores, axis=1) <= 0).all(), "recommend scores not sorted descending"
    np.testing.assert_array_equal(np.take_along_axis(s, items, axis=1), scores)


def check_unknown_ids(model: Recommender, ds: Dataset) -> None:
    for bad in ([ds.n_users], [-1]):
        try:
            model.score(bad)
        except UnknownIdError as e:
            assert "out of range" in str(e), f"unclear message: {e}"
        else:
            raise AssertionError(f"score({bad}) did not raise UnknownIdError")
    try:
        model.recommend(np.array(["u1"]), k=3)
    except UnknownIdError as e:
        assert "dataset.users.index" in str(e)
    else:
        raise AssertionError("string user ids must be rejected with a hint to map them")
    try:
        model.score([0], items=[ds.n_items])
    except UnknownIdError:
        pass
    else:
        raise AssertionError("an out-of-range item index did not raise UnknownIdError")
    try:
        ds.users.index(["no-such-user"])
    except UnknownIdError as e:
        assert "no-such-user" in str(e)


def check_k_larger_than_catalogue(model: Recommender, ds: Dataset) -> None:
    items, _ = model.recommend([0, 1], k=ds.n_items + 7, exclude_seen=False)
    assert items.shape == (2, ds.n_items), f"k > n_items gave shape {items.shape}"
    for row in items:
        assert sorted(row.tolist()) == list(range(ds.n_items)), "not every item listed once"


def check_exclude_seen(model: Recommender, ds: Dataset) -> None:
    users = np.arange(ds.n_users)
    items, scores = model.recommend(users, k=ds.n_items + 1)
    seq = ds.sequences
    for u in users.tolist():
        seen = set(seq.of(u).tolist())
        row = items[u]
        listed = set(row[row >= 0].tolist())
        assert not (listed & seen), f"user {u}: seen items {sorted(listed & seen)} recommended"
        assert len(listed) == ds.n_items - len(seen), f"user {u}: unseen items missing"
        assert (row[len(listed) :] == -1).all() and np.isneginf(scores[u, len(listed) :]).all()


def check_batch_equals_single(model: Recommender, ds: Dataset) -> None:
    users = np.arange(min(8, ds.n_users))
    batch_items, batch_scores = model.recommend(users, k=6)
    full = model.score(users)
    for b, u in enumerate(users):
        it, sc = model.recommend([u], k=6)
        np.testing.assert_array_equal(it[0], batch_items[b], err_msg=f"user {u}: batch != single")
        np.testing.assert_allclose(sc[0], batch_scores[b], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(model.score([u])[0], full[b], rtol=1e-6, atol=1e-6)


def check_save_load_round_trip(model: Recommender, ds: Dataset, tmp: Path) -> None:
    folder = model.save(tmp / f"ckpt-{model.name}")
    assert (folder / "model.json").exists() and (folder / "model.safetensors").exists()
    assert not list(folder.glob("*.pkl")), "checkpoints must not use pickle"
    loaded = Recommender.load(folder)
    assert type(loaded) is type(model) and loaded.config == model.config
    users = np.arange(ds.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    np.testing.assert_array_equal(loaded.recommend(users, k=5)[0], model.recommend(users, k=5)[0])


def check_same_seed_same_output(make: Callable[[], Recommender], ds: Dataset) -> None:
    a, b = _fitted(make, ds), _fitted(make, ds)
    users = np.arange(ds.n_users)
    np.testing.assert_array_equal(a.score(users), b.score(users), err_msg="same seed, other scores")


def check_not_fitted_and_bad_config(make: Callable[[], Recommender], ds: Dataset) -> None:
    fresh = make()
    try:
        fresh.score([0])
    except NotFittedError:
        pass
    else:
        raise AssertionError("scoring an unfitted model must raise NotFittedError")
    try:
        type(fresh)(no_such_option=1)
    except ConfigError as e:
        assert "no_such_option" in str(e)
    else:
        raise AssertionError("an unknown option must raise ConfigError")


def check_history_argument(model: Recommender, ds: Dataset) -> None:
    users = np.arange(ds.n_users)
    np.testing.assert_allclose(model.score(users, history=ds), model.score(users), rtol=1e-6)
    # Removing the last interaction of every user must still score (and exclude) correctly.
    keep = np.ones(len(ds), dtype=bool)
    order = ds.chronological_order
    ends = ds.sequences.indptr[1:] - 1
    keep[order[ends]] = False
    shorter = ds.with_interactions(ds.interactions[keep].reset_index(drop=True))
    items, _ = model.recommend(users, k=ds.n_items, history=shorter)
    dropped = ds.interactions["item"].to_numpy()[order[ends]]
    for u in users:
        assert dropped[u] in items[u], f"user {u}: an item removed from history stayed excluded"
