"""Reinforcement learning for recommendation: offline heads on logs, online agents and bandits.

* :mod:`recloop.rl.episodes`: per-user episodes from logs as typed, position-aligned batches.
* :mod:`recloop.rl.heads`: the offline learners (SQN, SAC, SNQN, SA2C, CSA, aux control) on
  the GRU4Rec / SASRec encoders; each head's class says what it is (``uses_reward``,
  ``has_q_head``) and joins :data:`~recloop.rl.heads.HEADS` by being defined.
* :mod:`recloop.rl.offline`: the RL recommenders, a plain SASRec / GRU4Rec with a head
  (``sasrec+rl``, ``gru4rec+rl``).
* :mod:`recloop.rl.qlearning`: the double Q-learning steps the heads and DQN share.
* :mod:`recloop.rl.bandits`: linear contextual bandits (ε-greedy, LinUCB, Thompson sampling)
  over item feature vectors, for the simulator (:mod:`recloop.sim`).
* :mod:`recloop.rl.agents`: online agents (baselines, bandits, DQN, REINFORCE top-K) and
  the exposure guardrail; :mod:`recloop.rl.deep`: DQN and REINFORCE top-K;
  :mod:`recloop.rl.online`: their training and evaluation loops.

Use the heads through the RL recommenders (``SASRecRL(head="sqn")``, or by the plain name
with a head: ``recloop train sasrec --head sqn``), or directly: every learner has
``learn_batch(batch) -> dict[str, float]``. Names load lazily, so ``import recloop.rl``
imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Reward": "recloop.data.reward",
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
    "is_rl_head": "recloop.rl.heads",
    "make_learner": "recloop.rl.heads",
    "OfflineRL": "recloop.rl.offline",
    "OfflineRLConfig": "recloop.rl.offline",
    "GRU4RecRL": "recloop.rl.offline",
    "SASRecRL": "recloop.rl.offline",
    "BanditBatch": "recloop.rl.bandits",
    "BanditConfig": "recloop.rl.bandits",
    "LinearBandit": "recloop.rl.bandits",
    "AGENTS": "recloop.rl.agents",
    "Agent": "recloop.rl.agents",
    "BanditAgent": "recloop.rl.agents",
    "DeepConfig": "recloop.rl.deep",
    "DQNAgent": "recloop.rl.deep",
    "Feedback": "recloop.rl.agents",
    "GreedyAgent": "recloop.rl.agents",
    "Guardrail": "recloop.rl.agents",
    "PopularityAgent": "recloop.rl.agents",
    "RandomAgent": "recloop.rl.agents",
    "ReinforceTopK": "recloop.rl.deep",
    "Evaluation": "recloop.rl.online",
    "TrainLog": "recloop.rl.online",
    "evaluate_agent": "recloop.rl.online",
    "train_agent": "recloop.rl.online",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'recloop.rl' has no attribute {name!r}")
