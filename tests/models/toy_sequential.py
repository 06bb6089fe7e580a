"""A sequential model written as a newcomer would add one: this module and one registry line.

``meanpool`` states are the running mean of the item vectors seen so far (causal), scored
against the same item table. tests/models/test_adding_a_model.py registers it and runs every
check the registered models pass.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from recloop.models.encoders import SequenceEncoder
from recloop.models.sequential import SequentialConfig, SequentialRecommender


class MeanPoolEncoder(SequenceEncoder):
    """(B, L) tokens → (B, L, d): the mean of the real item vectors up to each position."""

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        x = self.embed(seq)  # (B, L, d), zero at padding
        seen = (seq != 0).cumsum(1).clamp(min=1)[..., None]  # (B, L, 1) real items so far
        return x.cumsum(1) / seen


class MeanPool(SequentialRecommender):
    """The running mean of a user's item vectors, trained with the shared next-item loss."""

    name: ClassVar[str] = "meanpool"
    Config: ClassVar[type] = SequentialConfig

    def _build_encoder(self) -> MeanPoolEncoder:
        dim = self.config.dim
        return MeanPoolEncoder(self.n_items_, dim, self._item_table(dim, padded=True))
