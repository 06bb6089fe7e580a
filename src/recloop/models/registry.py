"""Model registry: name → class, imported lazily so that ``recloop --help`` stays light.

Adding a model touches its module and one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from recloop.errors import ConfigError

if TYPE_CHECKING:
    from recloop.models.base import Recommender

_REGISTRY: dict[str, str] = {
    "random": "recloop.models.baselines:RandomRecommender",
    "pop": "recloop.models.baselines:Popularity",
    "markov": "recloop.models.baselines:Markov",
    "itemknn": "recloop.models.baselines:ItemKNN",
    "ease": "recloop.models.baselines:EASE",
    "bpr": "recloop.models.bpr:BPRMF",
    "gru4rec": "recloop.models.sequential:GRU4Rec",
    "mlp": "recloop.models.mlp:MLPTower",
    "sasrec": "recloop.models.sequential:SASRec",
}


def register(name: str, target: str) -> None:
    """Register a model class given as ``"module:Class"`` under ``name``."""
    _REGISTRY[name] = target


def available_models() -> list[str]:
    """Names of every registered model."""
    return sorted(_REGISTRY)


def get_model(name: str) -> type[Recommender]:
    """The model class registered as ``name``.

    Raises:
        ConfigError: no model has that name (the message lists the names).
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)
