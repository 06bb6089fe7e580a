"""Chronological leave-one-out with its tie rule, the temporal split, and short users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recloop.data import Dataset, leave_one_out, load_dataset, temporal_split
from recloop.errors import DataError


def test_leave_one_out_roles() -> None:
    f = pd.DataFrame({"user": ["a"] * 4 + ["b"] * 3, "item": [1, 2, 3, 4, 1, 5, 6],
                      "timestamp": [40, 10, 30, 20, 1, 3, 2], "rating": 4.0})  # fmt: skip
    s = leave_one_out(Dataset.from_frame(f))
    ids = s.train.items.ids
    # a by time: 2(10) 4(20) 3(30) 1(40) → test 1, valid 3; b: 1(1) 6(2) 5(3) → test 5, valid 6
    assert ids(s.test["item"]).tolist() == [1, 5]
    assert ids(s.valid["item"]).tolist() == [3, 6]
    assert sorted(ids(s.train.interactions["item"]).tolist()) == [1, 2, 4]
    known = s.known("test")
    assert len(known) == 5 and s.known("valid") is s.train


def test_timestamp_ties_keep_source_row_order() -> None:
    """Equal timestamps: the row the source lists later counts as later."""
    f = pd.DataFrame(
        {"user": [7] * 4, "item": [11, 12, 13, 14], "timestamp": [5, 9, 9, 9], "rating": 3.0}
    )
    s = leave_one_out(Dataset.from_frame(f))
    ids = s.train.items.ids
    assert ids(s.test["item"]).tolist() == [14]
    assert ids(s.valid["item"]).tolist() == [13]
    # Reversing the source order of the tied rows reverses the roles: the rule is row order.
    g = f.iloc[[0, 3, 2, 1]].reset_index(drop=True)
    s2 = leave_one_out(Dataset.from_frame(g))
    assert s2.train.items.ids(s2.test["item"]).tolist() == [12]
    assert s2.train.items.ids(s2.valid["item"]).tolist() == [13]


def test_ml100k_tie_rule_on_real_data() -> None:
    ds = load_dataset("ml-100k")
    s = leave_one_out(ds)
    assert len(s.test) == len(s.valid) == 943 and len(s.train) == 100_000 - 2 * 943
    last_two = pd.concat([s.valid.assign(role=0), s.test.assign(role=1)])
    tied = last_two.groupby("user")["timestamp"].nunique() == 1
    assert int(tied.sum()) == 415  # the figure
    # For tied users, the test row comes later in the source file than the valid row.
    inter = ds.interactions
    pos = {(u, i): k for k, (u, i) in enumerate(zip(inter["user"], inter["item"], strict=True))}
    for u in np.flatnonzero(tied.to_numpy())[:50]:
        user = tied.index[u]
        v = s.valid[s.valid["user"] == user]["item"].iloc[0]
        t = s.test[s.test["user"] == user]["item"].iloc[0]
        assert pos[(user, t)] > pos[(user, v)]


def test_short_users_error_or_train_only() -> None:
    f = pd.DataFrame(
        {
            "user": ["a"] * 3 + ["b"] * 2,
            "item": [1, 2, 3, 1, 2],
            "timestamp": range(5),
            "rating": 4.0,
        }
    )
    ds = Dataset.from_frame(f)
    with pytest.raises(
        DataError, match=r"1 users have fewer than 3 interactions \(e.g. \['b'\]\).*--min-user 3"
    ):
        leave_one_out(ds)
    s = leave_one_out(ds, short_users="train")
    assert len(s.test) == 1 and len(s.train) == 3
    assert s.targets("test").users.tolist() == [ds.users.index(["a"])[0]]


def test_empty_dataset_cannot_be_split() -> None:
    f = pd.DataFrame({"user": ["a"] * 3, "item": [1, 2, 3], "timestamp": range(3), "rating": 4.0})
    ds = Dataset.from_frame(f)
    empty = ds.with_interactions(ds.interactions.iloc[:0])
    with pytest.raises(DataError, match="empty"):
        leave_one_out(empty)


def test_temporal_split_cuts_by_time_and_drops_known_targets() -> None:
    f = pd.DataFrame({"user": ["a", "a", "b", "a", "b", "a", "c", "b"],
                      "item": [1, 2, 1, 3, 2, 1, 9, 3],
                      "timestamp": [1, 2, 3, 4, 5, 6, 7, 8], "rating": [5, 5, 5, 2, 5, 5, 5, 4.0]})  # fmt: skip
    ds = Dataset.from_frame(f)
    s = temporal_split(ds, valid_start=4, test_start=6)
    assert s.train.interactions["timestamp"].tolist() == [1, 2, 3]
    assert s.valid["timestamp"].tolist() == [4, 5]
    assert s.test["timestamp"].tolist() == [6, 7, 8]
    t = s.targets("test")
    ids = ds.items.ids
    # a's test item 1 is already known (train) → dropped; c has no training history → not
    # evaluated; b's item 3 is new → kept.
    assert ds.users.ids(t.users).tolist() == ["b"] and ids(t.items).tolist() == [3]
    assert t.positive().users.tolist() == t.users.tolist()
    v = s.targets("valid")
    assert ds.users.ids(v.users).tolist() == ["a", "b"]
    assert v.positive().users.tolist() == [ds.users.index(["b"])[0]]  # a's valid rating is 2


def test_temporal_split_fractions_and_bad_arguments() -> None:
    ds = load_dataset("ml-100k")
    s = temporal_split(ds, test_frac=0.1, valid_frac=0.1)
    assert abs(len(s.test) / len(ds) - 0.1) < 0.01 and abs(len(s.valid) / len(ds) - 0.1) < 0.01
    assert s.train.interactions["timestamp"].max() <= s.valid["timestamp"].min()
    with pytest.raises(DataError, match="sum to less than 1"):
        temporal_split(ds, test_frac=0.6, valid_frac=0.5)
    with pytest.raises(DataError, match="stage must be one of"):
        s.targets("train")
