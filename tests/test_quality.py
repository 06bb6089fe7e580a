"""Quality bars on real data: the protocol ranks the classic baselines as the literature does.

The cheap ML-100K bars (seconds) run by default; ML-1M, BPR and the deep models' bars are
marked ``slow`` (``.ci/run`` runs them after the default suite).
Thresholds sit well below the figures in benchmarks/RESULTS.md, so they catch a broken
protocol or model, not noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from recloop.bench import RunSpec, train_run
from recloop.data import cold_start_split, leave_one_out, load_dataset
from recloop.eval.protocol import evaluate
from recloop.eval.stats import paired_test
from recloop.models import get_model


def _fit_eval(split, name, **params):
    return evaluate(get_model(name)(params).fit(split.train), split, "test", ks=(10,))


def _per_user(res, metric="ndcg@10"):
    pu = res.per_user[res.per_user["group"] == "all"].sort_values("user")
    return pu[metric].to_numpy()


def _check_beats_pop(split, names, ratio, p_max=1e-3):
    """Each model's NDCG@10 is ``ratio`` × Popularity's, and (if ``p_max``) significantly so."""
    pop = _fit_eval(split, "pop")
    for name in names:
        res = _fit_eval(split, name)
        assert res.metric("ndcg@10") > ratio * pop.metric("ndcg@10"), (name, res.metric("ndcg@10"))
        pt = paired_test(_per_user(res), _per_user(pop))
        assert pt.mean_diff > 0, (name, pt)
        if p_max is not None:
            assert pt.wilcoxon_pvalue < p_max, (name, pt)
    rnd = _fit_eval(split, "random")
    assert rnd.metric("hr@10") < 0.5 * pop.metric("hr@10")


@pytest.fixture(scope="module")
def ml100k_split():
    return leave_one_out(load_dataset("ml-100k"))


def test_ml100k_ease_and_itemknn_beat_popularity(ml100k_split) -> None:
    # Measured (RESULTS.md): EASE 0.0735 vs Pop 0.0432 (p ≈ 6e-5); ItemKNN 0.0540, +25% but
    # not significant over 943 users (Holm p ≈ 0.14), so its bar is the ratio alone.
    _check_beats_pop(ml100k_split, ["ease"], ratio=1.4)
    _check_beats_pop(ml100k_split, ["itemknn"], ratio=1.15, p_max=None)


@pytest.mark.slow
def test_ml100k_bpr_and_markov_beat_popularity(ml100k_split) -> None:
    _check_beats_pop(ml100k_split, ["markov"], ratio=1.4)
    # One BPR seed: 0.057 vs 0.043 (+32%), Wilcoxon p ≈ 0.06 over 943 users; the three-seed
    # average in RESULTS.md reaches Holm p ≈ 0.014. The single-seed bar is the ratio.
    _check_beats_pop(ml100k_split, ["bpr"], ratio=1.2, p_max=None)


@pytest.mark.slow
def test_ml1m_ease_and_itemknn_clearly_beat_popularity() -> None:
    split = leave_one_out(load_dataset("ml-1m"))
    _check_beats_pop(split, ["ease", "itemknn"], ratio=1.6)


def test_same_seed_same_numbers_end_to_end(tmp_path) -> None:
    """A whole run (split, BPR training, evaluation) twice with one seed: identical metrics."""
    spec = RunSpec(model="bpr", data="ml-100k", seed=7, params={"epochs": 2, "factors": 8})
    a = train_run(spec, tmp_path / "a", progress=False)
    b = train_run(spec, tmp_path / "b", progress=False)
    c = train_run(RunSpec(**{**spec.__dict__, "seed": 8}), None, progress=False)
    pa, pb, pc = (_per_user(r["test"]) for r in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(pa, pc)
    assert (tmp_path / "a" / "metrics.json").read_text() != ""


def _fit_valid_eval(split, name, **params):
    model = get_model(name)(params).fit(split.train, valid=split)
    return evaluate(model, split, "test", ks=(10,))


@pytest.mark.slow  # ~100 s on this machine: a quality bar, not a unit test
def test_ml100k_sasrec_beats_every_baseline(ml100k_split) -> None:
    # One seed, max_len 50 (about a minute): 0.09-0.10 measured (RESULTS.md); Markov, the
    # strongest baseline, reaches 0.077 and Popularity 0.043.
    sasrec = _fit_valid_eval(ml100k_split, "sasrec", max_len=50, seed=0)
    markov = _fit_eval(ml100k_split, "markov")
    pop = _fit_eval(ml100k_split, "pop")
    assert sasrec.metric("ndcg@10") >= 0.085, sasrec.metric("ndcg@10")
    assert sasrec.metric("ndcg@10") > 1.08 * markov.metric("ndcg@10")
    vs_pop = paired_test(_per_user(sasrec), _per_user(pop))
    assert vs_pop.mean_diff > 0 and vs_pop.wilcoxon_pvalue < 1e-6, vs_pop


@pytest.mark.slow
def test_ml100k_gru4rec_and_mlp_beat_popularity_and_itemknn(ml100k_split) -> None:
    pop = _fit_eval(ml100k_split, "pop").metric("ndcg@10")
    knn = _fit_eval(ml100k_split, "itemknn").metric("ndcg@10")
    for name, params in (("gru4rec", {"max_len": 50}), ("mlp", {})):
        got = _fit_valid_eval(ml100k_split, name, **params).metric("ndcg@10")
        assert got > max(pop, knn), (name, got, pop, knn)


@pytest.mark.slow
def test_ml1m_sasrec_passes_markov_within_ten_epochs() -> None:
    # Ten epochs of the benchmark's ML-1M options (about 4-5 minutes here); measured runs
    # reach validation NDCG@10 ≈ 0.145 by epoch 10 (RESULTS.md). Markov, the ML-1M floor,
    # gets 0.126.
    split = leave_one_out(load_dataset("ml-1m"))
    sasrec = _fit_valid_eval(split, "sasrec", max_len=200, batch_size=64, lr=3e-3, bf16=True,
                             epochs=10, seed=0)  # fmt: skip
    markov = _fit_eval(split, "markov")
    assert sasrec.metric("ndcg@10") > max(0.135, markov.metric("ndcg@10")), sasrec.metric("ndcg@10")
    pt = paired_test(_per_user(sasrec), _per_user(markov))
    assert pt.mean_diff > 0 and pt.wilcoxon_pvalue < 0.01, pt


@pytest.mark.slow
def test_ml100k_text_sasrec_ranks_cold_items_an_id_model_cannot() -> None:
    # The benchmark's cold-start split and SASRec options (about 2 minutes for both models).
    # Measured over 3 seeds (RESULTS.md): text reaches cold HR@10 0.048 / NDCG@10 0.026 on
    # the 105 users whose test item is cold, with warm NDCG@10 0.041; id gets exactly 0 on
    # cold items (they only have untrained vectors, pushed down as softmax negatives).
    # 105 users and a ~5% hit rate are too few for a significance test on one seed, so the
    # bar is on counts: the text model must hit cold items, the id model never.
    split = cold_start_split(load_dataset("ml-100k"), cold_frac=0.2)
    params = {"max_len": 50, "batch_size": 32, "dropout": 0.5}
    res = {}
    for mode in ("id", "text"):
        model = get_model("sasrec")(params, item_repr=mode)
        model.fit(split.train, valid=split)
        res[mode] = evaluate(model, split, "test", ks=(10,))
    cold_users = res["text"].summary["cold"]["hr@10"].n
    assert cold_users >= 100
    assert res["text"].metric("hr@10", "cold") * cold_users >= 2, res["text"].metric(
        "hr@10", "cold"
    )
    assert res["id"].metric("hr@10", "cold") == 0.0
    assert res["text"].metric("ndcg@10", "warm") > 0.025  # text alone still ranks warm items
