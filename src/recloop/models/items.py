"""Item representations shared by the torch models: ID embeddings, text features, or both.

Three modes (the ``item_repr`` option of every torch model):

* ``id``: one learned embedding per item (the classic table);
* ``id+text``: a learned ID embedding plus a learned projection of the item's frozen text
  embedding (the ID part starts at zero, so a new item is scored from its text alone);
* ``text``: no ID embedding at all; an item is its projected text, so the model scores
  items that never appeared in training.

Text embeddings come from :func:`recloop.models.text.item_text_embeddings`; they are
standardised per dimension over the catalogue and stored in the module as a buffer, so a
saved model scores without the text model installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from recloop.config import option
from recloop.data.dataset import Dataset
from recloop.models.text import DEFAULT_TEMPLATE, MINILM, check_template
from recloop.models.training import TrainConfig

ITEM_REPRS = ("id", "id+text", "text")


@dataclass(frozen=True)
class ItemConfig(TrainConfig):
    """Training options plus how items are represented (``id``, ``id+text``, ``text``)."""

    item_repr: str = option("id", "Item representation: id, id+text or text (needs [text]).")
    text_model: str = option(MINILM, "Text model: minilm (offline), a folder, or a name.")
    text_template: str = option(DEFAULT_TEMPLATE, "Item text from {title}, {year}, {genres}.")
    text_dims: int = option(64, "Principal components of the text features kept (0: all).")
    id_dropout: float = option(0.0, "id+text: chance an item's ID vector is dropped per step.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check(
            (self.item_repr in ITEM_REPRS,
             f"item_repr must be one of {ITEM_REPRS}, not {self.item_repr!r}"),
            (0 <= self.id_dropout < 1, f"id_dropout must be in [0, 1), not {self.id_dropout}"),
            (self.text_dims >= 0, f"text_dims must be >= 0, not {self.text_dims}"),
        )  # fmt: skip
        check_template(self.text_template)

    @property
    def uses_text(self) -> bool:
        return self.item_repr != "id"


def standardised(features: np.ndarray, dims: int = 0) -> torch.Tensor:
    """Frozen text features prepared for a projection: centred, reduced to the top ``dims``
    principal components over the catalogue (``0``: all dimensions), each scaled to unit
    variance (sentence embeddings are anisotropic: a few directions dominate).

    Fewer dimensions mean a projection with less room to memorise individual items; on
    ML-100K, ``id+text`` with 64 components matched ``id`` on warm items where all 384
    overfitted within 15 epochs (see benchmarks/RESULTS.md).
    """
    x = features.astype(np.float64)
    x = x - x.mean(axis=0)
    if 0 < dims < min(x.shape):
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        x = x @ vt[:dims].T  # (n_items, dims); components in decreasing variance
        x *= np.sign(x[np.abs(x).argmax(axis=0), np.arange(dims)])  # deterministic signs
    x = x / (x.std(axis=0) + 1e-6)
    return torch.from_numpy(x.astype(np.float32))


class ItemTable(nn.Module):
    """``n_items`` item vectors of size ``dim`` in one of the three modes.

    Args:
        n_items: catalogue size.
        dim: vector size.
        mode: ``id``, ``id+text`` or ``text``.
        text: (n_items, D) frozen text features for the text modes (already standardised).
        std: initial scale of the ID vectors and of the projected text.
        padded: draw initial ID vectors as a table with a padding row 0 would (the sequence
            encoders' tables had one), keeping seeded results of earlier versions.
        init: initialise now; ``False`` leaves it to a later :meth:`init_` (to keep the
            order of random draws of a network that builds several tables).
    """

    def __init__(
        self,
        n_items: int,
        dim: int,
        mode: str = "id",
        text: torch.Tensor | None = None,
        std: float | None = None,
        padded: bool = False,
        init: bool = True,
        id_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if mode not in ITEM_REPRS:
            raise ValueError(f"mode must be one of {ITEM_REPRS}, not {mode!r}")
        self.std = dim**-0.5 if std is None else std
        self.mode, self.n_items, self.dim, self._padded = mode, n_items, dim, int(padded)
        self.id_dropout = id_dropout if mode == "id+text" else 0.0
        self.text: torch.Tensor
        self.id: nn.Embedding | None = None
        self.proj: nn.Linear | None = None
        if mode != "text":
            # The same random draws as ``nn.Embedding(n_items + padded, dim)``'s constructor,
            # so a seed initialises exactly as the plain (padded) embedding tables did.
            w = torch.empty(n_items + self._padded, dim).normal_()[self._padded :]
            self.id = nn.Embedding(n_items, dim, _weight=w.contiguous())
        if mode != "id":
            if text is None or text.shape[0] != n_items:
                raise ValueError(f"mode {mode!r} needs (n_items={n_items}, D) text features")
            self.register_buffer("text", text.float().contiguous())
            self.proj = nn.Linear(text.shape[1], dim, bias=False)
        if init:
            self.init_()

    def init_(self) -> None:
        """Initial values: ID vectors ~ N(0, std²) (zero in ``id+text``, where an item starts
        as its text and the ID part learns a correction); the projection keeps the projected
        text at about the same scale."""
        with torch.no_grad():
            if self.id is not None:
                if self.mode == "id":
                    w = torch.empty(self.n_items + self._padded, self.dim).normal_(std=self.std)
                    self.id.weight.copy_(w[self._padded :])
                else:
                    self.id.weight.zero_()
            if self.proj is not None:
                nn.init.normal_(self.proj.weight, std=self.std * self.text.shape[1] ** -0.5)

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """(...) item indices → (..., dim) vectors."""
        out: torch.Tensor | None = None
        if self.id is not None:
            out = (
                self.id(idx) * self._id_keep()[idx].unsqueeze(-1)
                if self._dropping()
                else self.id(idx)
            )
        if self.proj is not None:
            t = self.proj(self.text[idx])
            out = t if out is None else out + t
        assert out is not None
        return out

    def weight(self) -> torch.Tensor:
        """(n_items, dim) every item's vector (row ``i`` is item ``i``)."""
        if self.mode == "id":
            assert self.id is not None
            return self.id.weight
        assert self.proj is not None
        t = self.text @ self.proj.weight.T
        if self.id is None:
            return t
        if self._dropping():
            return t + self.id.weight * self._id_keep().unsqueeze(-1)
        return t + self.id.weight

    def _dropping(self) -> bool:
        return self.training and self.id_dropout > 0

    def _id_keep(self) -> torch.Tensor:
        """(n_items,) 1 where an item keeps its ID vector in this call, 0 where it is dropped
        (DropoutNet; Volkovs et al., NeurIPS 2017): the model learns to score an item from its
        text alone, which is all a new item has."""
        return (torch.rand(self.n_items) >= self.id_dropout).float()

    def tokens(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) tokens (item + 1, 0 = padding) → (B, L, dim), zero at padding."""
        return self.rows((seq - 1).clamp(min=0)) * (seq != 0).unsqueeze(-1)


class TextFeatures:
    """Mixin for torch recommenders whose config is an :class:`ItemConfig`.

    ``_setup`` embeds the catalogue's texts before the network is built; ``_restore`` takes
    them back from a saved state; ``_item_table`` builds the :class:`ItemTable`.
    """

    config: Any
    n_items_: int
    text_features_: torch.Tensor | None = None

    #: state-dict key of the text buffer (the module path of the ItemTable + ".text")
    _text_key: str = "items.text"

    def _setup(self, dataset: Dataset, progress: bool) -> None:
        if not self.config.uses_text:
            self.text_features_ = None
            return
        from recloop.models.text import item_text_embeddings

        emb = item_text_embeddings(
            dataset, self.config.text_model, self.config.text_template, progress=progress
        )
        self.text_features_ = standardised(emb, self.config.text_dims)

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        text = state.get(self._text_key)
        self.text_features_ = None if text is None else torch.from_numpy(np.array(text))

    def _item_table(
        self, dim: int, std: float | None = None, padded: bool = False, init: bool = True
    ) -> ItemTable:
        cfg = self.config
        return ItemTable(self.n_items_, dim, cfg.item_repr, self.text_features_, std, padded, init,
                         cfg.id_dropout)  # fmt: skip
