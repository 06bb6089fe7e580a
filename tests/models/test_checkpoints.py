"""Damaged or foreign checkpoints are refused with a clear error, never half-loaded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recloop.errors import CheckpointError
from recloop.models import Recommender, get_model
from recloop.testing import toy_dataset


@pytest.fixture
def saved(tmp_path):
    ds = toy_dataset()
    model = get_model("ease")().fit(ds)
    return model, model.save(tmp_path / "ckpt")


def test_round_trip_keeps_scores(saved) -> None:
    model, folder = saved
    loaded = Recommender.load(folder)
    np.testing.assert_array_equal(loaded.score([0, 1]), model.score([0, 1]))
    assert not list(folder.glob(".*")), "temporary files left behind"


def test_damaged_weights(saved) -> None:
    _, folder = saved
    (folder / "model.safetensors").write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(CheckpointError, match="is damaged"):
        Recommender.load(folder)


def test_damaged_json_and_other_format(saved) -> None:
    _, folder = saved
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match=r"v99; this recloop reads recloop\.model v1"):
        Recommender.load(folder)
    (folder / "model.json").write_text("{ truncated")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        Recommender.load(folder)


def test_missing_files_and_wrong_class(saved, tmp_path) -> None:
    _, folder = saved
    with pytest.raises(CheckpointError, match="holds no recloop model"):
        Recommender.load(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="holds a ease model, not pop"):
        get_model("pop").load(folder)


def test_available_cores_honours_the_bench_share(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A bench worker caps torch's threads at its cell's share (RECLOOP_CPUS)."""
    import os

    from recloop.models.training import available_cores

    monkeypatch.delenv("RECLOOP_CPUS", raising=False)
    full = available_cores()
    assert full == len(os.sched_getaffinity(0))
    monkeypatch.setenv("RECLOOP_CPUS", "1")
    assert available_cores() == 1
    monkeypatch.setenv("RECLOOP_CPUS", str(full + 8))
    assert available_cores() == full  # never above the affinity mask
    monkeypatch.setenv("RECLOOP_CPUS", "zero")
    assert available_cores() == full  # a bad value is ignored
