"""Vocabulary, Dataset construction and validation: every bad input gets a clear error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recloop.data import Dataset, Vocabulary, load_table
from recloop.errors import DataError, UnknownIdError


def frame(**cols) -> pd.DataFrame:
    base = {
        "user": [1, 1, 2, 2],
        "item": [10, 20, 10, 30],
        "timestamp": [5, 6, 5, 7],
        "rating": [4, 3, 5, 1],
    }
    base.update(cols)
    return pd.DataFrame(base)


def test_vocabulary_round_trip_and_coercion() -> None:
    v = Vocabulary([30, 10, 20], name="item")
    assert v.index([10, "20", np.int32(30)]).tolist() == [1, 2, 0]
    assert v.ids([2, 0]).tolist() == [20, 30]
    assert v.index([99, 10], missing="negative").tolist() == [-1, 1]
    with pytest.raises(UnknownIdError, match=r"unknown item id\(s\) \[99\]"):
        v.index([99])
    with pytest.raises(UnknownIdError, match="out of range"):
        v.ids([3])
    s = Vocabulary(["a", "b"], name="user")
    assert s.index(["b"]).tolist() == [1]
    with pytest.raises(DataError, match="not unique"):
        Vocabulary(["a", "a"])


def test_from_frame_builds_sorted_contiguous_indices() -> None:
    ds = Dataset.from_frame(frame())
    assert (ds.n_users, ds.n_items, len(ds)) == (2, 3, 4)
    assert ds.users.all_ids.tolist() == [1, 2] and ds.items.all_ids.tolist() == [10, 20, 30]
    assert ds.interactions["item"].tolist() == [0, 1, 0, 2]
    assert ds.interactions["rating"].dtype == np.float32
    st = ds.stats()
    assert st["n_interactions"] == 4 and st["density"] == pytest.approx(4 / 6)
    assert st["positive_share"] == pytest.approx(0.5)
    m = ds.user_item_matrix()
    assert m.shape == (2, 3) and m.toarray().tolist() == [[1, 1, 0], [1, 0, 1]]


def test_column_mapping_and_implicit_feedback() -> None:
    f = pd.DataFrame({"uid": ["a", "b", "a"], "mid": ["x", "x", "y"], "ts": [1, 2, 3]})
    ds = Dataset.from_frame(f, {"user": "uid", "item": "mid", "timestamp": "ts", "rating": None})
    assert ds.interactions["rating"].tolist() == [1.0, 1.0, 1.0]


def test_missing_columns_error_names_them_and_the_fix() -> None:
    with pytest.raises(DataError, match=r"lacks column\(s\) \['rating'\].*columns=") as e:
        Dataset.from_frame(frame().drop(columns="rating"))
    assert "\n" not in str(e.value)


def test_nan_rating_error() -> None:
    with pytest.raises(DataError, match=r"'rating' has 1 missing \(NaN\) values at rows \[2\]"):
        Dataset.from_frame(frame(rating=[4, 3, np.nan, 1]))


def test_non_numeric_rating_error() -> None:
    with pytest.raises(DataError, match=r"'rating' has 1 non-numeric \(e.g. 'five'\)"):
        Dataset.from_frame(frame(rating=["4", "3", "five", "1"]))


def test_nan_and_non_numeric_timestamp_errors() -> None:
    with pytest.raises(DataError, match=r"'timestamp' has 1 missing"):
        Dataset.from_frame(frame(timestamp=[1, None, 3, 4]))
    with pytest.raises(
        DataError, match=r"'timestamp' has 1 non-numeric .*Unix seconds or ISO-8601"
    ):
        Dataset.from_frame(frame(timestamp=["1", "2", "yesterday", "4"]))


def test_iso_dates_are_accepted_as_timestamps() -> None:
    ds = Dataset.from_frame(
        frame(timestamp=["2020-01-01", "2020-01-02", "2020-01-01", "2020-01-03"])
    )
    assert ds.interactions["timestamp"].iloc[0] == 1577836800


def test_duplicate_rows_error_and_explicit_dedupe() -> None:
    dup = frame(user=[1, 1, 2, 1], item=[10, 20, 10, 10], timestamp=[5, 6, 5, 5])
    with pytest.raises(DataError, match=r"2 duplicate rows .*rows \[0, 3\].*on_duplicate"):
        Dataset.from_frame(dup)
    ds = Dataset.from_frame(dup, on_duplicate="last")
    assert len(ds) == 3 and ds.interactions["rating"].tolist() == [3.0, 5.0, 1.0]


def test_empty_inputs_error(tmp_path) -> None:
    with pytest.raises(DataError, match="is empty"):
        Dataset.from_frame(frame().iloc[:0])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        load_table(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("user,item,timestamp,rating\n")
    with pytest.raises(DataError, match="is empty"):
        load_table(header_only)


def test_missing_ids_error() -> None:
    with pytest.raises(DataError, match=r"missing item ids at rows \[1\]"):
        Dataset.from_frame(frame(item=[10, None, 10, 30]))


def test_kcore_filters_iteratively() -> None:
    # user a: 3 items, user b: 2, user c: 1; item z only seen by c.
    f = pd.DataFrame(
        {"user": list("aaabbc"), "item": list("xyxyxz"), "timestamp": range(6), "rating": 4}
    )
    f.loc[2, "item"] = "w"  # a: x, y, w; b: y, x; c: z
    core = Dataset.from_frame(f).kcore(min_user=2, min_item=2)
    # w (1 user) and z go; c then has 0; a keeps x, y; b keeps x, y
    assert sorted(core.users.all_ids.tolist()) == ["a", "b"]
    assert sorted(core.items.all_ids.tolist()) == ["x", "y"]
    with pytest.raises(DataError, match="removed every interaction"):
        Dataset.from_frame(f).kcore(min_user=10)


def test_before_keeps_the_past_of_a_time_cut() -> None:
    ds = Dataset.from_frame(frame())  # timestamps 5, 6, 5, 7
    past = ds.before(6)
    assert past.interactions["timestamp"].tolist() == [5, 5]
    assert past.interactions["item"].tolist() == ds.interactions["item"].iloc[[0, 2]].tolist()
    assert (past.n_users, past.n_items) == (ds.n_users, ds.n_items)  # the same vocabularies
    assert len(ds.before(5)) == 0 and len(ds.before(8)) == len(ds)


def test_genre_matrix_and_titles() -> None:
    info = pd.DataFrame(
        {"title": ["A", "B"], "year": [1999, np.nan], "genres": ["Drama|Comedy", ""]},
        index=[10, 20],
    )
    ds = Dataset.from_frame(frame(item=[10, 20, 10, 20]), item_info=info)
    m, names = ds.genre_matrix()
    assert names == ["Comedy", "Drama"] and m.tolist() == [[1, 1], [0, 0]]
    assert ds.titles(np.array([0, 1])) == ["A (1999)", "B"]


def test_csv_and_parquet_with_column_mapping(tmp_path) -> None:
    f = pd.DataFrame(
        {"userId": [1, 1, 2], "movieId": [5, 6, 5], "stars": [4.0, 2.0, 5.0], "when": [1, 2, 3]}
    )
    cols = {"user": "userId", "item": "movieId", "rating": "stars", "timestamp": "when"}
    f.to_csv(tmp_path / "r.csv", index=False)
    f.to_parquet(tmp_path / "r.parquet")
    a = load_table(tmp_path / "r.csv", cols)
    b = load_table(tmp_path / "r.parquet", cols)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    assert a.users.all_ids.tolist() == [1, 2] and a.users.is_integer
    with pytest.raises(DataError, match=r"lacks column\(s\) \['user', 'item'.*it has \['userId'"):
        load_table(tmp_path / "r.csv")


def test_malformed_files(tmp_path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_text("this is not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_table(bad)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('user,item\n1,2\n3,4,5,6\n"unterminated\n')
    with pytest.raises(DataError, match="malformed"):
        load_table(ragged)
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nope.csv")
