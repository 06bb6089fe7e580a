"""Base class of the torch models: one network, one training loop, safetensors state.

A :class:`TorchRecommender` builds an ``nn.Module`` from its config and the data shape,
describes an epoch's batches and one batch's loss, and leaves the rest to
:class:`~recloop.models.training.Trainer` (AdamW, clipping, early stopping on validation
NDCG@10, checkpoints, resume). Its saved state is the module's ``state_dict``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recloop.data.dataset import Dataset
from recloop.models.base import Recommender
from recloop.models.training import TrainConfig, Trainer, TrainState, count_parameters


class TorchRecommender(Recommender):
    """A recommender whose learned state is one ``torch.nn.Module`` (``module_``).

    Subclasses implement :meth:`_build` (the network), :meth:`_prepare` (training arrays),
    :meth:`_plan` (an epoch's batches) and :meth:`_loss` (one batch's loss), plus
    ``_score``. After ``fit``, ``train_state_`` holds the training curve and the best epoch.
    """

    config: TrainConfig
    module_: torch.nn.Module

    @abstractmethod
    def _build(self) -> torch.nn.Module:
        """A freshly initialised network for ``n_users_`` × ``n_items_``."""

    @abstractmethod
    def _prepare(self, dataset: Dataset) -> None:
        """Precompute whatever the epochs need from the training data."""

    @abstractmethod
    def _plan(self, rng: np.random.Generator) -> Sequence[Any]:
        """The batches of one epoch, in order."""

    @abstractmethod
    def _loss(self, batch: Any) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar training loss of one batch (optionally with named components)."""

    @property
    def n_parameters(self) -> int:
        """Trainable parameters of the network."""
        return count_parameters(self.module_)

    def _fit(self, dataset: Dataset, progress: bool) -> None:
        from recloop.eval.protocol import validation_ndcg

        cfg = self.config
        valid = self._valid
        # Global torch RNG state is restored afterwards: fitting never disturbs the caller.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self._setup(dataset, progress)
            self.module_ = self._build()
            self._prepare(dataset)
            trainer = Trainer(
                self.module_,
                cfg,
                validate=(lambda: validation_ndcg(self, valid)) if valid is not None else None,
                workdir=Path(self._workdir) if self._workdir is not None else None,
                fingerprint={
                    "model": self.name,
                    "n_users": self.n_users_,
                    "n_items": self.n_items_,
                    "n_interactions": len(dataset),
                },
                progress=progress,
                description=f"train {self.name}",
            )
            self.train_state_: TrainState = trainer.fit(self._plan, self._loss)
        self._release()

    def _setup(self, dataset: Dataset, progress: bool) -> None:
        """Whatever ``_build`` needs from the data besides its shape (e.g. item texts)."""

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        """Whatever ``_build`` needs from a saved state (the counterpart of ``_setup``)."""

    def _release(self) -> None:
        """Drop training-only arrays after fitting."""

    def _state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.module_.state_dict().items()}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self._restore(state)
        with torch.random.fork_rng(devices=[]):
            self.module_ = self._build()
        self.module_.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        self.module_.eval()
