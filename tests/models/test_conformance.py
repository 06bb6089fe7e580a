"""Every registered model passes the conformance kit (adding a model adds a line here)."""

from __future__ import annotations

import pytest

from recloop.models import available_models, get_model
from recloop.testing import CHECKS, check_recommender

# Small budgets keep the kit fast; the checks are about contracts, not quality.
FAST = {
    "bpr": {"epochs": 3, "factors": 8},
    "mlp": {"epochs": 2, "dim": 8, "widths": (16, 8)},
    "gru4rec": {"epochs": 2, "dim": 8},
    "gru4rec+rl": {"epochs": 2, "dim": 8},
    "sasrec": {"epochs": 2, "dim": 8, "heads": 2, "max_len": 5},
    "sasrec+rl": {"epochs": 2, "dim": 8, "heads": 2, "max_len": 5},
}


def test_every_trained_model_has_a_small_budget() -> None:
    """The models run below are the registry's; those trained over epochs need a budget here
    (their defaults train for minutes)."""
    trained = {
        n for n in available_models() if "epochs" in get_model(n).Config.__dataclass_fields__
    }
    assert trained and trained <= set(FAST), f"add a small budget for {trained - set(FAST)}"


@pytest.mark.parametrize("name", available_models())
@pytest.mark.parametrize("check", CHECKS)
def test_conformance(name: str, check: str, tmp_path) -> None:
    cls = get_model(name)
    check_recommender(lambda: cls(FAST.get(name, {})), tmp_path, checks=(check,))
