"""Recommenders: the protocol, the registry and the models."""

from recloop.models.base import History, Recommender
from recloop.models.registry import available_models, get_model, register

__all__ = ["History", "Recommender", "available_models", "get_model", "register"]
