"""Model registry: name → class, imported lazily so that ``recloop --help`` stays light.

Adding a model touches its module and one line here.

A plain sequential model with an offline RL head is its own registered model (``sasrec+rl``,
in :mod:`recloop.rl.offline`); :func:`resolve_model` keeps the plain names working with a
``head`` option, for new runs and for runs saved before the RL recommenders had names.
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
    "gru4rec+rl": "recloop.rl.offline:GRU4RecRL",
    "mlp": "recloop.models.mlp:MLPTower",
    "sasrec": "recloop.models.sequential:SASRec",
    "sasrec+rl": "recloop.rl.offline:SASRecRL",
    "gsasrec": "recloop.models.sequential:GSASRec",
}

#: A plain model whose options set ``head`` (other than ``"none"``) is this RL recommender.
_WITH_HEAD: dict[str, str] = {"gru4rec": "gru4rec+rl", "sasrec": "sasrec+rl"}


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


def _fields(cls: type[Recommender]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls.Config)}


def resolve_model(
    name: str, params: Mapping[str, Any] | None = None
) -> tuple[type[Recommender], dict[str, Any]]:
    """The class that builds model ``name`` with options ``params``, and the options it takes.

    For a plain model with an RL recommender (``sasrec`` → ``sasrec+rl``): a ``head`` other
    than ``"none"`` builds the RL recommender; ``head="none"`` builds the plain model without
    the RL options (runs saved before the split carry them, unused, in their config). RL
    options without a head are an error. Any other name is :func:`get_model`'s, with
    ``params`` as given.

    Raises:
        ConfigError: an unknown name, or RL options on a plain model without a head.
    """
    params = dict(params or {})
    cls = get_model(name)
    if name not in _WITH_HEAD:
        return cls, params
    head = params.get("head")
    rl = get_model(_WITH_HEAD[name])
    if head is not None and head != "none":
        return rl, params
    extra = set(params) & (_fields(rl) - _fields(cls))
    if head is None and extra:
        raise ConfigError(
            f"{sorted(extra)} need an RL head: set head (e.g. head=sqn; see "
            f"`recloop models {_WITH_HEAD[name]}`) or leave them out"
        )
    return cls, {k: v for k, v in params.items() if k not in extra}


def model_options(name: str) -> type:
    """The config class listing every option model ``name`` takes (for a plain model with an
    RL recommender, the recommender's: the plain options and the RL ones)."""
    return get_model(_WITH_HEAD.get(name, name)).Config


def build_model(name: str, params: Mapping[str, Any] | None = None,
                seed: int | None = None) -> Recommender:  # fmt: skip
    """The model registered as ``name``, built with the options ``params``.

    ``seed`` fills the model's ``seed`` option where its config has one and ``params`` leave it
    unset, so one seed drives a run, a simulator world or an experiment whatever its models.

    Raises:
        ConfigError: no model has that name, or an option is unknown or invalid.
    """
    cls, options = resolve_model(name, params)  # sasrec with a head: sasrec+rl
    if seed is not None and "seed" in _fields(cls):
        options.setdefault("seed", seed)
    return cls(options)
