"""Adding a model is its module, one registry line and a README row — and nothing else.

The toy model of tests/models/toy_sequential.py is registered with one line, as its own
module would be, and then passes every check the registry's models pass: the conformance kit,
what serving needs, and training through a run as `recloop train` and the bench do. No list
of model names anywhere had to learn about it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import test_conformance as kit

from recloop.models import available_models, registry
from recloop.testing import CHECKS

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def meanpool(monkeypatch):
    """``meanpool`` registered with the one line a new model's author writes."""
    monkeypatch.setitem(registry._REGISTRY, "meanpool", "toy_sequential:MeanPool")
    kit._fitted.cache_clear()
    yield "meanpool"
    kit._fitted.cache_clear()


@pytest.mark.parametrize("check", CHECKS)
def test_a_new_model_passes_the_conformance_kit(meanpool, check, tmp_path) -> None:
    kit.test_conformance(meanpool, check, tmp_path)


def test_a_new_model_is_served_as_the_registered_ones_are(meanpool, tmp_path) -> None:
    assert meanpool in available_models()
    kit.test_uses_history_is_declared_and_truthful(meanpool)
    kit.test_user_states_and_item_vectors_are_what_a_server_assumes(meanpool)
    kit.test_the_server_sends_history_exactly_to_the_models_that_read_it(meanpool, tmp_path)


def test_a_new_model_trains_as_a_run(meanpool, tmp_path) -> None:
    """The path of `recloop train NAME` and of a bench cell: build, fit, evaluate, save."""
    from recloop.bench import RunSpec, train_run
    from recloop.runs import read_run

    spec = RunSpec(model=meanpool, params={"epochs": 1, "dim": 8}, seed=3)
    result = train_run(spec, tmp_path / "run", progress=False)
    assert result["model"].config.seed == 3  # the run's seed reached the model
    assert 0 <= result["metrics"]["test"]["all"]["ndcg@10"]["mean"] <= 1
    assert read_run(tmp_path / "run")["config"]["model"] == meanpool


def test_every_registered_model_has_a_readme_row() -> None:
    """The README's table of models names every registry entry (the third and last place)."""
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `")]
    named = {n for row in rows for n in re.findall(r"`([^`]+)`", row.split("|")[1])}
    missing = sorted(set(available_models()) - named)
    assert not missing, f"add a README row (## Models) for {missing}"
