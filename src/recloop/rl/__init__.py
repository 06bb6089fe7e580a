"""Offline reinforcement learning on logged sequences (SQN, SAC, SNQN, SA2C, CSA, aux control).

* :mod:`recloop.rl.episodes`: per-user episodes from logs as typed, position-aligned batches.
* :mod:`recloop.rl.heads`: the learners, on the GRU4Rec / SASRec encoders.

Use them through the sequential models (``SASRec(head="sqn")``, ``recloop train sasrec
--head sqn``), or directly: every learner has ``learn_batch(batch) -> dict[str, float]``.
Names load lazily: the sequential models import :mod:`recloop.rl.reward`, and the heads
import the models.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Reward": "recloop.rl.reward",
    "Transitions": "recloop.rl.episodes",
    "transitions": "recloop.rl.episodes",
    "HEADS": "recloop.rl.heads",
    "HeadConfig": "recloop.rl.heads",
    "Learner": "recloop.rl.heads",
    "SQN": "recloop.rl.heads",
    "SAC": "recloop.rl.heads",
    "SNQN": "recloop.rl.heads",
    "SA2C": "recloop.rl.heads",
    "CSA": "recloop.rl.heads",
    "AuxControl": "recloop.rl.heads",
    "make_learner": "recloop.rl.heads",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'recloop.rl' has no attribute {name!r}")
