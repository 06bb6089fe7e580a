"""The fitted-model cache: a hit is the same fit bit for bit, keys tell fits apart, a damaged
entry is refitted, a held entry is not waited for, and a killed fit continues exactly."""

from __future__ import annotations

import numpy as np
import pytest

from recloop.bench.cache import _try_lock, cache_key, fit_cached
from recloop.data import leave_one_out
from recloop.models.sequential import SASRec
from recloop.testing import toy_dataset

OPTIONS = {"dim": 8, "max_len": 6, "batch_size": 16, "epochs": 4, "patience": 100}
USERS = np.arange(10)


@pytest.fixture(scope="module")
def split():
    return leave_one_out(toy_dataset())


def count_fits(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = SASRec._fit

    def counted(self, dataset, progress):
        calls.append(1)
        return real(self, dataset, progress)

    monkeypatch.setattr(SASRec, "_fit", counted)
    return calls


def test_a_hit_is_the_same_fit_bit_for_bit(split, tmp_path, monkeypatch) -> None:
    calls = count_fits(monkeypatch)
    first = fit_cached(SASRec(seed=3, **OPTIONS), split.train, valid=split, cache=tmp_path)
    (entry,) = tmp_path.iterdir()
    assert entry.name == f"sasrec-{cache_key(first, split.train, split)}"
    assert (entry / "model" / "model.json").exists() and not (entry / "train").exists()
    again = fit_cached(SASRec(seed=3, **OPTIONS), split.train, valid=split, cache=tmp_path)
    assert len(calls) == 1 and again is not first
    np.testing.assert_array_equal(again.score(USERS), first.score(USERS))
    # and a plain fit, no cache, is that same model
    plain = SASRec(seed=3, **OPTIONS).fit(split.train, valid=split)
    np.testing.assert_array_equal(plain.score(USERS), first.score(USERS))


def test_the_key_tells_configs_seeds_data_and_validation_apart(split) -> None:
    key = cache_key(SASRec(seed=0, **OPTIONS), split.train, split)
    assert key == cache_key(SASRec(seed=0, **OPTIONS), leave_one_out(toy_dataset()).train,
                            leave_one_out(toy_dataset()))  # fmt: skip
    assert key != cache_key(SASRec(seed=1, **OPTIONS), split.train, split)
    assert key != cache_key(SASRec(seed=0, **{**OPTIONS, "dim": 16}), split.train, split)
    assert key != cache_key(SASRec(seed=0, **OPTIONS), split.train, None)
    inter = split.train.interactions.copy()
    inter.loc[0, "item"] = (inter.loc[0, "item"] + 1) % split.train.n_items
    assert key != cache_key(SASRec(seed=0, **OPTIONS), split.train.with_interactions(inter), split)
    other = leave_one_out(toy_dataset(seed=1))
    assert key != cache_key(SASRec(seed=0, **OPTIONS), other.train, other)


def test_a_damaged_entry_is_refitted(split, tmp_path, monkeypatch) -> None:
    first = fit_cached(SASRec(seed=0, **OPTIONS), split.train, valid=split, cache=tmp_path)
    (weights,) = tmp_path.glob("*/model/model.safetensors")
    weights.write_bytes(b"half a file")
    calls = count_fits(monkeypatch)
    again = fit_cached(SASRec(seed=0, **OPTIONS), split.train, valid=split, cache=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(again.score(USERS), first.score(USERS))
    third = fit_cached(SASRec(seed=0, **OPTIONS), split.train, valid=split, cache=tmp_path)
    assert len(calls) == 1  # the refit was saved over the damaged entry
    np.testing.assert_array_equal(third.score(USERS), first.score(USERS))


def test_an_entry_another_process_is_fitting_is_not_waited_for(split, tmp_path) -> None:
    model = SASRec(seed=0, **OPTIONS)
    entry = tmp_path / f"sasrec-{cache_key(model, split.train, split)}"
    # a second lock on one file conflicts, as it does across processes
    with _try_lock(entry / ".lock") as held:
        assert held
        fitted = fit_cached(model, split.train, valid=split, cache=tmp_path)
    assert fitted.score(USERS).shape == (10, split.train.n_items)
    assert not (entry / "model").exists() and not (entry / "train").exists()


def test_a_saved_entry_is_read_while_another_process_holds_its_lock(split, tmp_path,
                                                                   monkeypatch) -> None:  # fmt: skip
    first = fit_cached(SASRec(seed=0, **OPTIONS), split.train, valid=split, cache=tmp_path)
    (entry,) = tmp_path.iterdir()
    calls = count_fits(monkeypatch)
    with _try_lock(entry / ".lock") as held:  # e.g. another cell loading the same fit
        assert held
        again = fit_cached(SASRec(seed=0, **OPTIONS), split.train, valid=split, cache=tmp_path)
    assert calls == []
    np.testing.assert_array_equal(again.score(USERS), first.score(USERS))


def test_a_killed_fit_continues_from_its_checkpoint_exactly(split, tmp_path) -> None:
    model = SASRec(seed=0, **OPTIONS)
    entry = tmp_path / f"sasrec-{cache_key(model, split.train, split)}"
    # the first two of four epochs, checkpointed where the cache's fit keeps them, as a kill
    # after epoch 2 leaves them (the epoch budget may change on resume; nothing else may)
    SASRec(seed=0, **{**OPTIONS, "epochs": 2}).fit(split.train, valid=split,
                                                   workdir=entry / "train")  # fmt: skip
    resumed = fit_cached(model, split.train, valid=split, cache=tmp_path)
    assert resumed.train_state_.epoch == 4 and not (entry / "train").exists()
    assert resumed.train_state_.resumed_from["epoch"] == 2
    whole = SASRec(seed=0, **OPTIONS).fit(split.train, valid=split)
    assert whole.train_state_.resumed_from == {}
    assert [e["loss"] for e in resumed.train_state_.curve] == [
        e["loss"] for e in whole.train_state_.curve
    ]
    np.testing.assert_array_equal(resumed.score(USERS), whole.score(USERS))
