"""The evaluation protocol end to end, with exact values on hand-made cases."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from recloop.config import option
from recloop.data import Dataset, cold_start_split, leave_one_out
from recloop.data.history import History
from recloop.errors import DataError
from recloop.eval.protocol import evaluate
from recloop.models.base import Recommender


@dataclass(frozen=True)
class _FixedConfig:
    kind: str = option("table", "table: fixed matrix; constant: all equal; oracle: targets first")


class Fixed(Recommender):
    """A test model whose scores are set by hand (not registered)."""

    name = "fixed"
    Config = _FixedConfig
    table: np.ndarray
    oracle: np.ndarray

    def _fit(self, dataset: Dataset, progress: bool) -> None:
        pass

    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        if self.config.kind == "constant":
            return np.ones((len(users), self.n_items_), np.float32)
        if self.config.kind == "oracle":
            s = np.zeros((len(users), self.n_items_), np.float32)
            s[np.arange(len(users)), self.oracle[users]] = 1.0
            return s
        return self.table[users]


def _split():
    # Two users, 6 items (ids 0..5). Chronological histories:
    #   user 0: 0, 1, 2, 3   → train {0, 1}, valid 2, test 3 (rating 5)
    #   user 1: 4, 0, 5, 1   → train {4, 0}, valid 5, test 1 (rating 2)
    rows = [(0, 0, 1, 4), (0, 1, 2, 4), (0, 2, 3, 4), (0, 3, 4, 5),
            (1, 4, 1, 4), (1, 0, 2, 4), (1, 5, 3, 4), (1, 1, 4, 2)]  # fmt: skip
    f = pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])
    return leave_one_out(Dataset.from_frame(f))


def test_exact_metrics_with_exclusion_of_train_and_valid_items() -> None:
    split = _split()
    m = Fixed(kind="table").fit(split.train)
    #            items: 0    1    2    3    4    5
    m.table = np.array([[9.0, 8.0, 7.0, 6.0, 1.0, 0.0],   # user 0
                        [9.0, 3.0, 5.0, 2.0, 8.0, 7.0]],  # user 1
                       dtype=np.float32)  # fmt: skip
    res = evaluate(m, split, "test", ks=(1, 2, 3))
    pu = res.per_user[res.per_user["group"] == "all"].set_index("user")
    # user 0, test item 3: items 0, 1 (train) and 2 (valid) are excluded → ranking 3, 4, 5 → rank 0
    assert pu.loc[0, "hr@1"] == 1.0 and pu.loc[0, "ndcg@1"] == 1.0 and pu.loc[0, "mrr@3"] == 1.0
    # user 1, test item 1 (score 3): 4, 0, 5 excluded → candidates 1 (3), 2 (5), 3 (2) → rank 1
    assert pu.loc[1, "hr@1"] == 0.0 and pu.loc[1, "hr@2"] == 1.0
    assert pu.loc[1, "ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert pu.loc[1, "mrr@3"] == pytest.approx(0.5) and pu.loc[1, "precision@2"] == 0.5
    assert res.metric("hr@1") == 0.5
    assert res.metric("ndcg@2") == pytest.approx((1 + 1 / math.log2(3)) / 2)
    # positive group: only user 0's test item is rated ≥ 4
    pos = res.per_user[res.per_user["group"] == "pos"]
    assert pos["user"].tolist() == [0] and res.metric("hr@1", "pos") == 1.0
    # coverage@1: top-1 lists are item 3 (user 0) and item 2 (user 1) → 2 of 6 items
    assert res.beyond["coverage@1"] == pytest.approx(2 / 6)


def test_validation_excludes_only_training_items() -> None:
    split = _split()
    m = Fixed(kind="table").fit(split.train)
    m.table = np.array([[9, 8, 1, 7, 0, 0], [0, 0, 0, 0, 9, 1]], dtype=np.float32)
    res = evaluate(m, split, "valid", ks=(1, 5))
    pu = res.per_user[res.per_user["group"] == "all"].set_index("user")
    # user 0 valid item 2 (score 1): excluded 0, 1 → candidates 2 (1), 3 (7), 4 (0), 5 (0) → rank 1
    assert pu.loc[0, "mrr@5"] == 0.5
    # user 1 valid item 5 (score 1): excluded 4, 0 → 1 (0), 2 (0), 3 (0), 5 (1) → rank 0
    assert pu.loc[1, "hr@1"] == 1.0


def test_constant_scorer_gets_no_credit_and_oracle_gets_full_credit() -> None:
    split = _split()
    const = evaluate(Fixed(kind="constant").fit(split.train), split, "test", ks=(1, 2))
    # 3 candidates remain per user; with ties broken against the target it ranks last (rank 2)
    assert const.metric("hr@2") == 0.0 and const.metric("mrr@2") == 0.0
    oracle = Fixed(kind="oracle").fit(split.train)
    oracle.oracle = split.test.sort_values("user")["item"].to_numpy()
    res = evaluate(oracle, split, "test", ks=(1,))
    assert res.metric("hr@1") == 1.0 and res.metric("ndcg@1") == 1.0


def test_tidy_rows_and_summary_have_intervals() -> None:
    split = _split()
    m = Fixed(kind="constant").fit(split.train)
    rows = evaluate(m, split, "test", ks=(1,)).tidy(method="fixed", seed=0)
    names = {r["metric"] for r in rows}
    assert {"hr@1", "ndcg@1", "hr@1_pos", "coverage@1", "novelty@1"} <= names
    assert all(r["split"] == "test" and r["method"] == "fixed" for r in rows)


def test_cold_start_split_and_exact_cold_and_warm_groups() -> None:
    # Items first appear at times 1, 2, 3, 4, 10, 20 (items 0..5); the newest third (4, 5)
    # is cold. Leave-one-out, then every cold interaction leaves training and validation:
    #   user 0: 0, 1, 2, 5 → train {0, 1}, valid 2, test 5 (cold)
    #   user 1: 3, 0, 4, 1 → train {3, 0}, valid 4 dropped (cold), test 1 (warm)
    #   user 2: 1, 2, 4, 3 → train {1, 2}, valid 4 dropped (cold), test 3 (warm)
    rows = [(0, 0, 1), (0, 1, 2), (0, 2, 3), (0, 5, 20),
            (1, 3, 4), (1, 0, 5), (1, 4, 10), (1, 1, 21),
            (2, 1, 6), (2, 2, 7), (2, 4, 11), (2, 3, 22)]  # fmt: skip
    f = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).assign(rating=4.0)
    split = cold_start_split(Dataset.from_frame(f), cold_frac=1 / 3)
    assert split.cold_items.tolist() == [4, 5]
    assert not set(split.train.interactions["item"]) & {4, 5}
    assert split.valid["item"].tolist() == [2]
    assert split.test.sort_values("user")["item"].tolist() == [5, 1, 3]
    groups = split.item_groups()
    assert groups["cold"].tolist() == [False] * 4 + [True] * 2
    assert groups["warm"].tolist() == [True] * 4 + [False] * 2
    m = Fixed(kind="table").fit(split.train)
    #            items: 0    1    2    3    4    5
    m.table = np.array([[0.0, 0.0, 0.0, 6.0, 7.0, 5.0],   # user 0: 5 ranks 3rd of 3, 4, 5
                        [0.0, 5.0, 9.0, 0.0, 1.0, 0.0],   # user 1: 1 ranks 2nd of 1, 2, 4, 5
                        [1.0, 0.0, 0.0, 9.0, 2.0, 3.0]],  # user 2: 3 ranks 1st of 0, 3, 4, 5
                       dtype=np.float32)  # fmt: skip
    res = evaluate(m, split, "test", ks=(3,))
    assert res.metric("ndcg@3", "cold") == pytest.approx(0.5)
    assert res.summary["cold"]["ndcg@3"].n == 1
    assert res.metric("ndcg@3", "warm") == pytest.approx((1 / math.log2(3) + 1) / 2)
    assert res.metric("ndcg@3") == pytest.approx((0.5 + 1 / math.log2(3) + 1) / 3)
    tidy = {r["metric"] for r in res.tidy()}
    assert {"ndcg@3_cold", "ndcg@3_warm"} <= tidy
    with pytest.raises(DataError, match="cold_frac"):
        cold_start_split(Dataset.from_frame(f), cold_frac=1.5)
    with pytest.raises(DataError, match="no item"):
        cold_start_split(Dataset.from_frame(f), cold_frac=0.01)


def test_saved_scores_and_saved_top_k_lists_evaluate_like_the_model() -> None:
    """The protocol takes any scorer: a saved score matrix gives the model's every figure,
    saved top-20 lists its HR/NDCG/MRR at 5, 10 and 20 (as LensKit evaluates saved lists)."""
    from recloop.data import load_dataset
    from recloop.eval.protocol import ScoreMatrix, TopKLists
    from recloop.models.baselines import ItemKNN

    split = leave_one_out(load_dataset("ml-100k"))
    model = ItemKNN().fit(split.train)
    known = History.from_dataset(split.known("test"))
    users = np.arange(split.train.n_users)
    expected = evaluate(model, split, "test", progress=False)
    saved = ScoreMatrix(model.score(users, history=known), name="saved")
    got = evaluate(saved, split, "test", progress=False)
    pd.testing.assert_frame_equal(got.per_user, expected.per_user)
    lists, _ = model.recommend(users, k=20, history=known)
    from_lists = evaluate(TopKLists(lists, split.train.n_items), split, "test", progress=False)
    for m in ("hr", "ndcg", "mrr"):
        for k in (5, 10, 20):
            assert from_lists.metric(f"{m}@{k}") == pytest.approx(expected.metric(f"{m}@{k}"))
    # A list that misses the target earns nothing, even where unlisted items tie.
    empty = TopKLists(np.full((split.train.n_users, 20), -1), split.train.n_items)
    assert evaluate(empty, split, "test", ks=(10,), progress=False).metric("hr@10") == 0.0


def test_saved_scores_of_the_wrong_shape_get_a_clear_error() -> None:
    from recloop.eval.protocol import ScoreMatrix, TopKLists

    split = _split()
    with pytest.raises(DataError, match="split's vocabularies"):
        evaluate(ScoreMatrix(np.zeros((1, 1))), split, "test", progress=False)
    with pytest.raises(DataError, match="finite"):
        ScoreMatrix(np.full((2, 2), np.nan))
    with pytest.raises(DataError, match="outside"):
        TopKLists(np.array([[5]]), n_items=3)
