"""Exact-value tests for recloop.eval.metrics against hand-computed cases and slow references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from recloop.data.ranking import rank_targets, top_k
from recloop.eval.beyond import catalogue_coverage, intra_list_diversity, novelty
from recloop.eval.metrics import ranking_metrics

LOG2_3 = math.log2(3.0)  # 1.5849625...
METRIC_NAMES = ("hr", "ndcg", "mrr", "recall", "precision")


def _one_user(values: dict[str, np.ndarray], k: int) -> dict[str, float]:
    return {name: float(values[f"{name}@{k}"][0]) for name in METRIC_NAMES}


# ------------------------------------------------------------------------------------------
# slow references (independent formulation: build the whole ranking by sorting)
# ------------------------------------------------------------------------------------------


def _reference_ranks(
    scores: np.ndarray, indptr: np.ndarray, items: np.ndarray, excl: np.ndarray
) -> list[int]:
    """Sorts each user's non-excluded items by (-score, tie key) and reads off target positions.

    Tie key: non-targets get 0 (they go first among equal scores), the target at position p of
    the user's target list gets 1 + p (tied targets keep their listed order).
    """
    out = []
    for b in range(scores.shape[0]):
        targets = [int(t) for t in items[indptr[b] : indptr[b + 1]]]
        tie_key = {t: 1 + p for p, t in enumerate(targets)}
        candidates = [j for j in range(scores.shape[1]) if not excl[b, j]]
        ranking = sorted(candidates, key=lambda j: (-scores[b, j], tie_key.get(j, 0)))
        out.extend(ranking.index(t) for t in targets)
    return out


def _reference_metrics(ranks: list[int], indptr: np.ndarray, k: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in METRIC_NAMES}
    for b in range(len(indptr) - 1):
        user_ranks = ranks[indptr[b] : indptr[b + 1]]
        if not user_ranks:
            for name in METRIC_NAMES:
                out[name].append(math.nan)
            continue
        hits = [r for r in user_ranks if r < k]
        idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(user_ranks), k)))
        out["hr"].append(1.0 if hits else 0.0)
        out["ndcg"].append(sum(1.0 / math.log2(r + 2) for r in hits) / idcg)
        out["mrr"].append(1.0 / (min(user_ranks) + 1) if min(user_ranks) < k else 0.0)
        out["recall"].append(len(hits) / len(user_ranks))
        out["precision"].append(len(hits) / k)
    return out


def _reference_top_k(scores: np.ndarray, k: int, excl: np.ndarray) -> tuple[list, list]:
    items_out, scores_out = [], []
    n_items = scores.shape[1]
    for b in range(scores.shape[0]):
        candidates = [j for j in range(n_items) if not excl[b, j]]
        ranking = sorted(candidates, key=lambda j: (-scores[b, j], j))[: min(k, n_items)]
        pad = min(k, n_items) - len(ranking)
        items_out.append(ranking + [-1] * pad)
        scores_out.append([float(scores[b, j]) for j in ranking] + [-math.inf] * pad)
    return items_out, scores_out


# ------------------------------------------------------------------------------------------
# rank_targets + ranking_metrics: hand-computed cases
# ------------------------------------------------------------------------------------------


def test_single_user_distinct_scores_exact_metrics() -> None:
    # items:   0    1    2    3    4
    # scores: 0.9  0.5  0.7  0.1  0.3  -> order 0, 2, 1, 4, 3; target item 2 sits at rank 1.
    scores = np.array([[0.9, 0.5, 0.7, 0.1, 0.3]])
    indptr = np.array([0, 1])
    ranks = rank_targets(scores, indptr, np.array([2]))
    assert ranks.tolist() == [1]
    assert ranks.dtype == np.int64
    m = ranking_metrics(ranks, indptr, ks=(1, 2, 3))
    # k=1: rank 1 is not < 1 -> nothing hits.
    assert _one_user(m, 1) == {"hr": 0.0, "ndcg": 0.0, "mrr": 0.0, "recall": 0.0, "precision": 0.0}
    # k=2: hit at rank 1. DCG = 1/log2(1+2) = 1/log2(3) = 0.6309298; IDCG (1 target) = 1/log2(2)
    # = 1 -> ndcg 0.6309298. mrr = 1/(1+1) = 0.5. recall = 1/1. precision = 1/2.
    got = _one_user(m, 2)
    assert got["hr"] == 1.0
    assert got["ndcg"] == pytest.approx(1.0 / LOG2_3)
    assert got["ndcg"] == pytest.approx(0.6309297535714575)
    assert got["mrr"] == 0.5
    assert got["recall"] == 1.0
    assert got["precision"] == 0.5
    # k=3: same hit; precision = 1/3.
    got = _one_user(m, 3)
    assert got["hr"] == 1.0
    assert got["ndcg"] == pytest.approx(0.6309297535714575)
    assert got["mrr"] == 0.5
    assert got["recall"] == 1.0
    assert got["precision"] == pytest.approx(1.0 / 3.0)
    assert list(m) == [f"{n}@{k}" for k in (1, 2, 3) for n in METRIC_NAMES]


def test_tie_with_non_targets_is_broken_against_target() -> None:
    # scores 0.5 0.8 0.5 0.5 0.1, target item 2 (0.5):
    # strictly greater: item 1 -> 1; tied non-targets: items 0 and 3 -> 2; rank = 1 + 2 = 3.
    scores = np.array([[0.5, 0.8, 0.5, 0.5, 0.1]])
    ranks = rank_targets(scores, [0, 1], [2])
    assert ranks.tolist() == [3]
    m = ranking_metrics(ranks, [0, 1], ks=(3, 4))
    assert m["hr@3"][0] == 0.0  # ranked after both tied non-targets
    assert m["hr@4"][0] == 1.0
    assert m["ndcg@4"][0] == pytest.approx(1.0 / math.log2(5.0))  # 0.4306766
    assert m["mrr@4"][0] == 0.25


def test_constant_scorer_gets_no_credit() -> None:
    # 3 users x 6 items, all scores equal. User 0 excludes items {0, 4}: 4 non-excluded items,
    # 3 of them non-targets, so the target is ranked after all of them: rank 3.
    # User 1 excludes nothing: 5 non-target items -> rank 5.
    # User 2 has two targets (1, 3), excludes {5}: 3 non-excluded non-targets (0, 2, 4);
    # target 1 -> 3 + 0 earlier tied targets = 3, target 3 -> 3 + 1 = 4.
    scores = np.full((3, 6), 0.25)
    excl = sp.csr_matrix(
        np.array([[1, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=bool)
    )
    indptr = np.array([0, 1, 2, 4])
    items = np.array([2, 2, 1, 3])
    ranks = rank_targets(scores, indptr, items, exclude=excl)
    assert ranks.tolist() == [3, 5, 3, 4]
    m = ranking_metrics(ranks, indptr, ks=(1, 2, 3))
    # every k < #non-excluded items of user 0 (4) gives zero credit to every user
    for k in (1, 2, 3):
        for name in METRIC_NAMES:
            assert m[f"{name}@{k}"].tolist() == [0.0, 0.0, 0.0]


def test_constant_scorer_int_scores_and_bool_exclusion_dense() -> None:
    # integer scores are accepted; a dense boolean exclusion mask works like a sparse one.
    scores = np.zeros((1, 4), dtype=np.int64)
    ranks = rank_targets(scores, [0, 1], [0], exclude=np.array([[False, True, False, False]]))
    assert ranks.tolist() == [2]  # non-excluded non-targets: items 2, 3


def test_excluded_higher_item_does_not_push_target_down() -> None:
    # scores 0.9 0.8 0.1, target item 1. Without exclusion item 0 is ahead -> rank 1;
    # excluding item 0 (the user's history) removes it from the ranking -> rank 0.
    scores = np.array([[0.9, 0.8, 0.1]])
    assert rank_targets(scores, [0, 1], [1]).tolist() == [1]
    excl = sp.csr_matrix(np.array([[1, 0, 0]]))
    assert rank_targets(scores, [0, 1], [1], exclude=excl).tolist() == [0]


def test_explicit_zero_in_exclusion_matrix_is_not_excluded() -> None:
    # a stored 0 in the CSR data means "not excluded".
    excl = sp.csr_matrix((np.array([0.0]), np.array([0]), np.array([0, 1])), shape=(1, 3))
    assert excl.nnz == 1
    assert rank_targets(np.array([[0.9, 0.8, 0.1]]), [0, 1], [1], exclude=excl).tolist() == [1]


def test_excluded_target_raises() -> None:
    excl = sp.csr_matrix(np.array([[0, 1, 0]]))
    with pytest.raises(ValueError, match="excluded"):
        rank_targets(np.array([[0.9, 0.8, 0.1]]), [0, 1], [1], exclude=excl)


def test_multiple_targets_with_ties_exact_metrics() -> None:
    # User 0, items 0..5, scores 0.9 0.7 0.7 0.5 0.7 0.1, targets listed as [4, 1, 3]:
    #   target 4 (0.7): greater {0} = 1, tied non-targets {2} = 1, earlier tied targets 0 -> 2
    #   target 1 (0.7): greater 1 + tied non-target {2} 1 + earlier tied target {4} 1      -> 3
    #   target 3 (0.5): greater {0, 1, 2, 4} = 4, no ties                                -> 4
    # User 1, scores 0.3 0.3 0.3 0.9 0.3 0.3, item 3 excluded, targets [0, 5]:
    #   target 0: greater 0 (item 3 excluded), tied non-targets {1, 2, 4} = 3            -> 3
    #   target 5: 3 + earlier tied target {0}                                            -> 4
    scores = np.array(
        [
            [0.9, 0.7, 0.7, 0.5, 0.7, 0.1],
            [0.3, 0.3, 0.3, 0.9, 0.3, 0.3],
        ]
    )
    excl = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]]))
    indptr = np.array([0, 3, 5])
    items = np.array([4, 1, 3, 0, 5])
    ranks = rank_targets(scores, indptr, items, exclude=excl)
    assert ranks.tolist() == [2, 3, 4, 3, 4]

    m = ranking_metrics(ranks, indptr, ks=(1, 3, 5))
    # k=1: no rank < 1 for either user.
    for name in METRIC_NAMES:
        assert m[f"{name}@1"].tolist() == [0.0, 0.0]
    # k=3, user 0: one hit (rank 2). DCG = 1/log2(4) = 0.5.
    #   IDCG = sum_{i<min(3,3)} 1/log2(i+2) = 1 + 1/log2(3) + 1/log2(4) = 2.1309298
    #   ndcg = 0.5 / 2.1309298 = 0.2346394; mrr = 1/(2+1); recall = 1/3; precision = 1/3.
    # k=3, user 1: min rank 3 -> nothing.
    idcg3 = 1.0 + 1.0 / LOG2_3 + 0.5
    assert idcg3 == pytest.approx(2.1309297535714575)
    assert m["hr@3"].tolist() == [1.0, 0.0]
    assert m["ndcg@3"][0] == pytest.approx(0.5 / idcg3)
    assert m["ndcg@3"][0] == pytest.approx(0.23463936301137822)
    assert m["ndcg@3"][1] == 0.0
    assert m["mrr@3"][0] == pytest.approx(1.0 / 3.0)
    assert m["recall@3"][0] == pytest.approx(1.0 / 3.0)
    assert m["precision@3"].tolist() == pytest.approx([1.0 / 3.0, 0.0])
    # k=5, user 0: all three hit. DCG = 1/log2(4) + 1/log2(5) + 1/log2(6)
    #   = 0.5 + 0.4306766 + 0.3868528 = 1.3175294; IDCG still 2.1309298 -> ndcg 0.6182885.
    #   mrr 1/3, recall 3/3, precision 3/5.
    # k=5, user 1: both hit (ranks 3, 4). DCG = 1/log2(5) + 1/log2(6) = 0.8175294;
    #   IDCG = 1 + 1/log2(3) = 1.6309298 (only 2 targets) -> ndcg 0.5012658.
    #   mrr = 1/(3+1) = 0.25, recall 2/2, precision 2/5.
    assert m["hr@5"].tolist() == [1.0, 1.0]
    assert m["ndcg@5"].tolist() == pytest.approx([0.6182885020492784, 0.5012658353418871])
    assert m["mrr@5"].tolist() == pytest.approx([1.0 / 3.0, 0.25])
    assert m["recall@5"].tolist() == [1.0, 1.0]
    assert m["precision@5"].tolist() == pytest.approx([0.6, 0.4])


def test_ndcg_is_one_for_perfect_ranking_with_more_targets_than_k() -> None:
    # 3 targets at ranks 0, 1, 2 and k=2: DCG = 1 + 1/log2(3); IDCG uses min(n_t, k) = 2 slots
    # = 1 + 1/log2(3) -> ndcg exactly 1, recall 2/3, precision 2/2.
    m = ranking_metrics(np.array([0, 1, 2]), np.array([0, 3]), ks=2)
    assert m["ndcg@2"][0] == pytest.approx(1.0)
    assert m["recall@2"][0] == pytest.approx(2.0 / 3.0)
    assert m["precision@2"][0] == 1.0


def test_user_with_zero_targets_gets_nan() -> None:
    # users 0 and 2 have one target each, user 1 none.
    scores = np.array([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1]])
    indptr = np.array([0, 1, 1, 2])
    ranks = rank_targets(scores, indptr, np.array([1, 0]))
    assert ranks.tolist() == [0, 0]
    m = ranking_metrics(ranks, indptr, ks=(1,))
    for name in METRIC_NAMES:
        values = m[f"{name}@1"]
        assert values[0] == 1.0 and values[2] == 1.0
        assert math.isnan(values[1])


def test_no_targets_at_all() -> None:
    ranks = rank_targets(np.zeros((2, 3)), [0, 0, 0], [])
    assert ranks.shape == (0,) and ranks.dtype == np.int64
    m = ranking_metrics(ranks, [0, 0, 0], ks=(1,))
    assert np.isnan(m["hr@1"]).all() and m["hr@1"].shape == (2,)


def test_nan_scores_raise() -> None:
    scores = np.array([[0.1, np.nan], [0.2, 0.3], [np.nan, np.nan]])
    with pytest.raises(ValueError, match="scores contain NaN for 2 users"):
        rank_targets(scores, [0, 1, 2, 3], [0, 0, 1])
    with pytest.raises(ValueError, match="NaN"):
        top_k(scores, 1)


@pytest.mark.parametrize(
    ("scores", "indptr", "items", "exclude", "match"),
    [
        (np.zeros(3), [0, 1], [0], None, r"2-D"),
        (np.zeros((2, 3)), [0, 1], [0], None, r"\(2, 3\)"),  # indptr of length 2 for 2 users
        (np.zeros((1, 3)), [0, 2], [0], None, r"ends at 2 but there are 1"),
        (np.zeros((1, 3)), [0, 1], [3], None, r"\[0, 3\)"),
        (np.zeros((1, 3)), [0, 1], [-1], None, r"\[0, 3\)"),
        (np.zeros((1, 3)), [0, 1], [0.0], None, r"integer"),
        (np.zeros((1, 3)), [0, 2], [1, 1], None, r"duplicate"),
        (np.zeros((1, 3)), [0, 1], [0], sp.csr_matrix((1, 4)), r"\(1, 4\).*\(1, 3\)"),
        (np.zeros((2, 3)), [0, 2, 1], [0, 1], None, r"non-decreasing"),
    ],
)
def test_bad_inputs_raise(scores, indptr, items, exclude, match) -> None:
    with pytest.raises(ValueError, match=match):
        rank_targets(scores, indptr, items, exclude=exclude)


@pytest.mark.parametrize("ks", [(0,), (5, -1), (1.5,), (True,), ()])
def test_bad_ks_raise(ks) -> None:
    with pytest.raises(ValueError, match="k"):
        ranking_metrics(np.array([0]), np.array([0, 1]), ks=ks)


def test_ranking_metrics_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="ends at 1 but there are 2"):
        ranking_metrics(np.array([0, 1]), np.array([0, 1]), ks=(1,))


# ------------------------------------------------------------------------------------------
# rank_targets / ranking_metrics against the slow reference
# ------------------------------------------------------------------------------------------


def _random_problem(rng: np.random.Generator, n_users: int, n_items: int, n_levels: int):
    scores = rng.integers(0, n_levels, size=(n_users, n_items)).astype(np.float64)
    excl = rng.random((n_users, n_items)) < 0.3
    indptr = [0]
    items: list[int] = []
    for b in range(n_users):
        free = np.flatnonzero(~excl[b])
        n_t = int(rng.integers(0, 4)) if b % 5 else int(rng.integers(1, 4))
        chosen = rng.permutation(free)[: min(n_t, free.size)]
        items.extend(int(t) for t in chosen)
        indptr.append(len(items))
    return scores, np.array(indptr), np.array(items, dtype=np.int64), excl


def test_rank_targets_matches_reference_seeded() -> None:
    rng = np.random.default_rng(12345)
    for trial in range(40):
        n_users = int(rng.integers(1, 9))
        n_items = int(rng.integers(3, 15))
        scores, indptr, items, excl = _random_problem(rng, n_users, n_items, 1 + trial % 4)
        ranks = rank_targets(scores, indptr, items, exclude=sp.csr_matrix(excl))
        expected = _reference_ranks(scores, indptr, items, excl)
        assert ranks.tolist() == expected
        for k in (1, 2, 5):
            got = ranking_metrics(ranks, indptr, ks=(k,))
            ref = _reference_metrics(expected, indptr, k)
            for name in METRIC_NAMES:
                np.testing.assert_allclose(got[f"{name}@{k}"], ref[name], rtol=1e-12)


def test_rank_targets_chunking_matches_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # force tiny chunks so the multi-chunk code path is exercised
    import recloop.data.ranking as metrics_mod

    monkeypatch.setattr(metrics_mod, "_CHUNK_CELLS", 16)
    rng = np.random.default_rng(7)
    scores, indptr, items, excl = _random_problem(rng, 12, 9, 3)
    scores = scores.astype(np.float32)
    ranks = rank_targets(scores, indptr, items, exclude=sp.csr_matrix(excl))
    assert ranks.tolist() == _reference_ranks(scores, indptr, items, excl)
    got_items, _ = top_k(scores, 4, exclude=sp.csr_matrix(excl))
    assert got_items.tolist() == _reference_top_k(scores, 4, excl)[0]


@st.composite
def _ranking_problems(draw: st.DrawFn):
    n_users = draw(st.integers(1, 5))
    n_items = draw(st.integers(1, 10))
    scores = draw(hnp.arrays(np.float64, (n_users, n_items), elements=st.integers(0, 3).map(float)))
    excl = draw(hnp.arrays(np.bool_, (n_users, n_items)))
    indptr = [0]
    items: list[int] = []
    for b in range(n_users):
        free = [j for j in range(n_items) if not excl[b, j]]
        chosen = draw(st.lists(st.sampled_from(free), max_size=3, unique=True)) if free else []
        items.extend(chosen)
        indptr.append(len(items))
    return scores, np.array(indptr), np.array(items, dtype=np.int64), excl


@settings(max_examples=150, deadline=None)
@given(_ranking_problems())
def test_rank_targets_property(problem) -> None:
    scores, indptr, items, excl = problem
    ranks = rank_targets(scores, indptr, items, exclude=sp.csr_matrix(excl))
    expected = _reference_ranks(scores, indptr, items, excl)
    assert ranks.tolist() == expected
    got = ranking_metrics(ranks, indptr, ks=(1, 3))
    for k in (1, 3):
        ref = _reference_metrics(expected, indptr, k)
        for name in METRIC_NAMES:
            np.testing.assert_allclose(got[f"{name}@{k}"], ref[name], rtol=1e-12)


# ------------------------------------------------------------------------------------------
# top_k
# ------------------------------------------------------------------------------------------


def test_top_k_ties_lower_index_first() -> None:
    # scores 0 5 5 5 5 1: four items tied at 5 -> the top 2 are the two lowest indices (1, 2)
    # whichever of the tied items argpartition happened to keep.
    items, vals = top_k(np.array([[0.0, 5.0, 5.0, 5.0, 5.0, 1.0]]), 2)
    assert items.tolist() == [[1, 2]]
    assert vals.tolist() == [[5.0, 5.0]]
    # a constant row returns items in index order
    items, _ = top_k(np.full((2, 10), 3.0), 3)
    assert items.tolist() == [[0, 1, 2], [0, 1, 2]]
    # mixed: 2 > 1 (items 3, 0, 5 tied at 1 -> 0, 3, 5)
    items, vals = top_k(np.array([[1.0, 0.0, 2.0, 1.0, 0.0, 1.0]]), 3)
    assert items.tolist() == [[2, 0, 3]]
    assert vals.tolist() == [[2.0, 1.0, 1.0]]


def test_top_k_excluded_never_returned_and_padding() -> None:
    # item 1 has the best score but is excluded; item 3 too.
    scores = np.array([[0.2, 0.9, 0.5, 0.8]])
    excl = sp.csr_matrix(np.array([[0, 1, 0, 1]]))
    items, vals = top_k(scores, 2, exclude=excl)
    assert items.tolist() == [[2, 0]]
    assert vals.tolist() == [[0.5, 0.2]]
    # asking for 3: only two candidates remain -> last slot is padding (-1, -inf)
    items, vals = top_k(scores, 3, exclude=excl)
    assert items.tolist() == [[2, 0, -1]]
    assert vals[0, :2].tolist() == [0.5, 0.2] and vals[0, 2] == -np.inf
    # a fully excluded user gets only padding
    items, vals = top_k(np.ones((1, 2)), 2, exclude=np.ones((1, 2), dtype=bool))
    assert items.tolist() == [[-1, -1]] and np.isneginf(vals).all()


def test_top_k_valid_minus_inf_item_beats_padding() -> None:
    # an item scored -inf is still a candidate; only excluded items become padding.
    items, vals = top_k(np.array([[-np.inf, 1.0, 0.0]]), 3, exclude=np.array([[0, 0, 1]]))
    assert items.tolist() == [[1, 0, -1]]
    assert vals.tolist() == [[1.0, -np.inf, -np.inf]]


def test_top_k_k_larger_than_catalogue() -> None:
    items, vals = top_k(np.array([[0.1, 0.3, 0.2]], dtype=np.float32), 10)
    assert items.shape == (1, 3)
    assert items.tolist() == [[1, 2, 0]]
    assert vals.dtype == np.float32


@pytest.mark.parametrize("k", [0, -3, 2.0, True])
def test_top_k_bad_k(k) -> None:
    with pytest.raises(ValueError, match="k must be a positive int"):
        top_k(np.zeros((1, 3)), k)


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 12)),
        elements=st.integers(-2, 2).map(float),
    ),
    st.integers(1, 15),
    st.data(),
)
def test_top_k_property_matches_full_stable_sort(scores, k, data) -> None:
    excl = data.draw(hnp.arrays(np.bool_, scores.shape))
    items, vals = top_k(scores, k, exclude=sp.csr_matrix(excl))
    ref_items, ref_vals = _reference_top_k(scores, k, excl)
    assert items.tolist() == ref_items
    assert vals.tolist() == ref_vals


# ------------------------------------------------------------------------------------------
# beyond-accuracy metrics
# ------------------------------------------------------------------------------------------


def test_catalogue_coverage() -> None:
    # lists {0, 1} and {1, 3} (padding ignored) -> distinct {0, 1, 3} = 3 of 5 items = 0.6
    topk = np.array([[0, 1, -1], [1, 3, -1]])
    assert catalogue_coverage(topk, 5) == pytest.approx(0.6)
    assert catalogue_coverage(np.full((2, 2), -1), 5) == 0.0
    with pytest.raises(ValueError, match="only 3 items"):
        catalogue_coverage(topk, 3)


def test_intra_list_diversity_hand_computed() -> None:
    genres = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [1, 1]])
    topk = np.array(
        [
            [0, 1, 2],  # pairs (0,1): 1-1 = 0, (0,2): 1-0 = 1, (1,2): 1 -> 2/3
            [0, 2, -1],  # one valid pair (0,2): 1 -> 1
            [0, 3, -1],  # item 3 has no genres -> cosine 0 -> distance 1
            [0, 4, -1],  # cos([1,0],[1,1]) = 1/sqrt(2) -> 1 - 0.7071068 = 0.2928932
            [2, -1, -1],  # fewer than 2 valid items -> NaN
        ]
    )
    ild = intra_list_diversity(topk, genres)
    assert ild[:4].tolist() == pytest.approx([2.0 / 3.0, 1.0, 1.0, 1.0 - 1.0 / math.sqrt(2.0)])
    assert math.isnan(ild[4])
    # sparse features give the same answer
    np.testing.assert_allclose(intra_list_diversity(topk, sp.csr_matrix(genres)), ild)


def test_novelty_hand_computed() -> None:
    # n_users = 10, counts 10 5 0 1 -> p = 1, 0.5, 1/10 (0 counted as 1), 0.1
    # self-information -log2 p = 0, 1, 3.3219281, 3.3219281
    counts = np.array([10, 5, 0, 1])
    topk = np.array([[0, 1, -1], [2, 3, -1], [-1, -1, -1]])
    nov = novelty(topk, counts, n_users=10)
    assert nov[0] == pytest.approx(0.5)  # (0 + 1) / 2
    assert nov[1] == pytest.approx(math.log2(10.0))  # 3.3219281
    assert math.isnan(nov[2])
    with pytest.raises(ValueError, match="n_users"):
        novelty(topk, np.array([11, 0, 0, 0]), n_users=10)


def test_errors_are_recloop_errors() -> None:
    # the CLI prints RecloopError messages on one line; bad data vs bad options are distinguished
    from recloop.errors import ConfigError, DataError

    with pytest.raises(DataError):
        rank_targets(np.array([[np.nan, 1.0]]), [0, 1], [1])
    with pytest.raises(ConfigError):
        top_k(np.zeros((1, 2)), 0)
    with pytest.raises(ConfigError):
        ranking_metrics(np.array([0]), np.array([0, 1]), ks=(0,))
