"""Recommenders: the protocol, the registry and the models."""

from recloop.data.history import History
from recloop.models.base import Recommender
from recloop.models.registry import available_models, get_model, register

__all__ = ["History", "Recommender", "available_models", "get_model", "register"]
