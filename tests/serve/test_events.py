"""The served event log turned into training data and estimator logs, checked by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from recloop.data import Dataset
from recloop.errors import DataError
from recloop.serve.events import known_logs, with_base_interactions


def test_events_follow_the_dataset_and_win_a_tie() -> None:
    ds = Dataset.from_frame(pd.DataFrame({
        "user": [7, 7, 9], "item": [100, 200, 100], "rating": [5.0, 3.0, 4.0],
        "timestamp": [1, 2, 3]}))  # fmt: skip
    events = pd.DataFrame({
        "user": ["9", "u-new"], "item": ["100", "200"], "rating": [1.0, 2.0],
        "timestamp": [3, 4]})  # fmt: skip
    frame = with_base_interactions(events, ds)
    # the dataset's rows first (external ids as text), then the events; user 9's rating of
    # item 100 at time 3 is in both, and the event's row is the one kept
    assert frame.to_dict("list") == {
        "user": ["7", "7", "9", "u-new"], "item": ["100", "200", "100", "200"],
        "rating": [5.0, 3.0, 1.0, 2.0], "timestamp": [1, 2, 3, 4]}  # fmt: skip


def test_known_logs_keep_the_rounds_a_policy_knows() -> None:
    logs = pd.DataFrame({"user": ["1", "1", "2", "3"], "item": ["a", "z", "a", "b"],
                         "reward": [1.0, 0.0, 0.0, 1.0]})  # fmt: skip
    kept, left_out = known_logs(logs, [1, 2], ["a", "b"], "runs/pop")
    assert left_out == 2  # item z and user 3 are unknown
    assert kept.to_dict("list") == {"user": ["1", "2"], "item": ["a", "a"], "reward": [1.0, 0.0]}
    assert list(kept.index) == [0, 1]
    with pytest.raises(DataError, match=r"none of the 4 served impressions .* runs/pop knows"):
        known_logs(logs, [5], ["a"], "runs/pop")
