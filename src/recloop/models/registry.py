"""Model registry: name → class, imported lazily so that ``recloop --help`` stays light.

Adding a model touches its module and one line here.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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


def build_model(name: str, params: Mapping[str, Any] | None = None,
                seed: int | None = None) -> Recommender:  # fmt: skip
    """The model registered as ``name``, built with the options ``params``.

    ``seed`` fills the model's ``seed`` option where its config has one and ``params`` leave it
    unset, so one seed drives a run, a simulator world or an experiment whatever its models.

    Raises:
        ConfigError: no model has that name, or an option is unknown or invalid.
    """
    cls = get_model(name)
    options = dict(params or {})
    if seed is not None and "seed" in {f.name for f in dataclasses.fields(cls.Config)}:
        options.setdefault("seed", seed)
    return cls(options)
