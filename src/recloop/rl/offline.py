"""Offline RL recommenders: a plain sequential model with an RL head (:mod:`recloop.rl.heads`).

:class:`SASRecRL` and :class:`GRU4RecRL` (registered as ``sasrec+rl`` and ``gru4rec+rl``)
are SASRec and GRU4Rec whose network is the learner of one head: two copies of the base's
encoder and item table, each with a Q head. They keep everything else of the base: its
options (their config extends the base's), its data preparation and batching (one sequence
per user, users of similar length together), the shared training loop
(:class:`~recloop.models.training.Trainer`: early stopping, checkpoints, resume) and its
scoring of each user's latest ``max_len`` items. What they add:

* a batch's loss is the learner's, on the batch users' episodes
  (:func:`~recloop.rl.episodes.transitions`, rewards from ratings by ``like_threshold``,
  ``reward_like`` and ``reward_other``);
* the learner gets the run's context through one call, :meth:`~recloop.rl.heads.Learner.bind`:
  the base's supervised loss over the items it trains on, the warm-up (``rl_warmup`` epochs of
  transitions) and the precision;
* ranking is network 0's (``rank_by``: supervised scores, Q-values or both).

The base models know nothing of RL. The plain names keep working with a head: the registry
builds ``sasrec+rl`` for ``sasrec`` with a ``head`` option other than ``none``
(``recloop train sasrec --head sqn``, grid cells ``model = "sasrec"`` with
``params = { head = "sqn" }``), and loads runs saved as ``sasrec`` with a head into it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import nn

from recloop.config import option
from recloop.data.dataset import Dataset
from recloop.data.history import History
from recloop.data.reward import Reward
from recloop.errors import ConfigError
from recloop.models.encoders import SequenceEncoder
from recloop.models.sequential import (
    GRU4Rec,
    GRU4RecConfig,
    SASRec,
    SASRecConfig,
    SequentialConfig,
    SequentialRecommender,
)
from recloop.rl.episodes import transitions
from recloop.rl.heads import HEADS, RANKINGS, HeadConfig, Learner, make_learner


@dataclass(frozen=True)
class OfflineRLConfig(SequentialConfig):
    """The offline RL options, on top of a sequential model's."""

    head: str = option("sqn", f"Offline RL head: {', '.join(HEADS)} (aux: the auxiliary-loss "
                       "control, no RL); see recloop.rl.heads.")  # fmt: skip
    gamma: float = option(0.5, "RL: discount of the Q-learning target (the papers' 0.5).")
    like_threshold: float = option(4.0, "RL: a rating at or above this is a like.")
    reward_like: float = option(1.0, "RL: reward of a liked next item.")
    reward_other: float = option(0.2, "RL: reward of any other next item.")
    rl_negatives: int = option(10, "RL (snqn, sa2c): sampled negative actions per transition.")
    rl_warmup: int = option(2, "RL (sac, sa2c): epochs before Q-values weight the "
                            "supervised loss.")  # fmt: skip
    csa_mask: float = option(0.1, "RL (csa): share of items an augmented state hides.")
    rank_by: str = option("auto", "RL: rank by ce (supervised head), q, ce+q, or auto "
                          "(ce; ce+q for csa).")  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        heads = tuple(HEADS)
        self._check(
            (self.head in heads, f"head must be one of {heads}, not {self.head!r} (without "
             "a head, use the plain model: sasrec or gru4rec)"),
            (0 <= self.gamma <= 1, f"gamma must be in [0, 1], not {self.gamma}"),
            (self.rl_negatives >= 1, f"rl_negatives must be >= 1, not {self.rl_negatives}"),
            (self.rl_warmup >= 0, f"rl_warmup must be >= 0, not {self.rl_warmup}"),
            (0 <= self.csa_mask < 1, f"csa_mask must be in [0, 1), not {self.csa_mask}"),
            (self.rank_by in RANKINGS, f"rank_by must be one of {RANKINGS}, not {self.rank_by!r}"),
            (self.loss == "ce",
             "the RL heads train with the full softmax: set loss=ce (or use the plain model)"),
            (self.cl_weight == 0,
             "cl_weight is the CL4SRec loss of the plain models; with an RL head set "
             "cl_weight=0 (head=csa is the contrastive RL head)"),
        )  # fmt: skip
        self.reward  # noqa: B018 - validates the rewards

    @property
    def reward(self) -> Reward:
        """The reward convention these options describe."""
        return Reward(self.like_threshold, self.reward_like, self.reward_other)

    @property
    def head_config(self) -> HeadConfig:
        """The options the learner reads."""
        return HeadConfig(self.gamma, self.rl_negatives, self.csa_mask, self.rank_by, self.bf16)


class OfflineRL(SequentialRecommender):
    """A sequential recommender whose network is an RL head's learner (see the module doc).

    Combined with a base (``class SASRecRL(OfflineRL, SASRec)``), it overrides the network,
    the batch loss and the scoring, and inherits the rest from the base.
    """

    config: OfflineRLConfig

    @property
    def learner(self) -> Learner:
        """The trained learner: two networks with their Q heads (network 0 ranks)."""
        self._check_fitted()
        return self._learner()

    def _learner(self) -> Learner:
        return cast(Learner, self.module_)

    def _encoder(self) -> SequenceEncoder:
        return self._learner().encoder

    def _build(self) -> nn.Module:
        c = self.config
        return make_learner(c.head, self._build_encoder, self.n_items_, c.head_config)

    def _prepare(self, dataset: Dataset) -> None:
        if self.config.windows:
            raise ConfigError(
                f"{self.name}: windows=true is not supported with an RL head (its episodes are "
                "each user's latest max_len items); set windows=false"
            )
        super()._prepare(dataset)
        # The learner's training context: the base's loss over the items it trains on, and
        # the warm-up counted in this data's transitions (a user gives length - 1 of them).
        warmup = float(self.config.rl_warmup * (self._lengths - 1).sum())
        self._learner().bind(ce=self._ce, allowed=self._catalogue, warmup=warmup, bf16=self._bf16)
        self._reward = self.config.reward

    def _release(self) -> None:
        super()._release()
        self.__dict__.pop("_reward", None)
        self._learner().unbind()

    def _batch_seeds(self) -> bool:
        return True  # every head draws (its coin at least)

    def _loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.config
        return self._learner().loss(transitions(self._indptr, self._items, self._ratings,
                                                batch.users, cfg.max_len, self._reward,
                                                batch.seed))  # fmt: skip

    def token_scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        self._check_fitted()
        return self._learner().scores  # network 0, by rank_by

    def user_states(
        self, users: np.ndarray, history: History | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``None``: the head's ranking (``rank_by``) may add Q-values to the state's dot
        product with the item table, so a server scores these users through :meth:`score`."""
        self._resolve(users, history)  # the same checks as every model's
        return None


@dataclass(frozen=True)
class GRU4RecRLConfig(GRU4RecConfig, OfflineRLConfig):
    """Options of :class:`GRU4RecRL`: GRU4Rec's and the offline RL options.

    GRU4Rec's config comes first among the bases, so its own defaults (patience, lr) win
    over the ones the RL options inherit from the training options.
    """


class GRU4RecRL(OfflineRL, GRU4Rec):
    """GRU4Rec with an offline RL head (SQN, SAC, SNQN, SA2C, CSA or the aux control)."""

    name: ClassVar[str] = "gru4rec+rl"
    Config: ClassVar[type] = GRU4RecRLConfig
    config: GRU4RecRLConfig


@dataclass(frozen=True)
class SASRecRLConfig(SASRecConfig, OfflineRLConfig):
    """Options of :class:`SASRecRL`: SASRec's and the offline RL options."""


class SASRecRL(OfflineRL, SASRec):
    """SASRec with an offline RL head (SQN, SAC, SNQN, SA2C, CSA or the aux control)."""

    name: ClassVar[str] = "sasrec+rl"
    Config: ClassVar[type] = SASRecRLConfig
    config: SASRecRLConfig
