"""Contrastive self-supervision for sequence encoders (CL4SRec; Xie et al., ICDE 2022).

Two random views of each sequence in a batch are made with CL4SRec's augmentations, both
are encoded, and an InfoNCE loss pulls the two views of the same sequence together and
pushes the other ``2B - 2`` views of the batch away. The sequential models add it to their
next-item loss with a weight λ (``cl_weight``); the offline RL heads reuse the same parts
for contrastive state augmentation.

Augmentations act on left-padded token rows (item + 1, 0 = padding), and each row gets one,
drawn uniformly from the enabled ones:

* **crop**: a random contiguous window of ``⌊η·n⌋`` items (at least one);
* **mask**: ``⌊γ·n⌋`` random items hidden, never the latest (the state is read there). A
  hidden item becomes padding, which both encoders ignore, instead of a dedicated mask
  token: the item table stays exactly the one the RL heads reuse;
* **reorder**: a random contiguous window of ``⌊β·n⌋`` items shuffled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recloop.errors import ConfigError

AUGMENTATIONS = ("crop", "mask", "reorder")


@dataclass(frozen=True)
class Augmenter:
    """CL4SRec's three sequence augmentations with their rates (η, γ, β)."""

    crop: float = 0.6
    mask: float = 0.3
    reorder: float = 0.3
    methods: tuple[str, ...] = AUGMENTATIONS

    def __post_init__(self) -> None:
        for name in ("crop", "mask", "reorder"):
            rate = getattr(self, name)
            if not 0 <= rate <= 1:
                raise ConfigError(f"the {name} rate must be in [0, 1], not {rate}")
        unknown = [m for m in self.methods if m not in AUGMENTATIONS]
        if unknown or not self.methods:
            raise ConfigError(
                f"augmentations must be a non-empty subset of {AUGMENTATIONS}, not {self.methods}"
            )

    def row(self, items: np.ndarray, method: str, rng: np.random.Generator) -> np.ndarray:
        """One augmented copy of one row's items (no padding), by ``method``."""
        n = len(items)
        if n <= 1:
            return items.copy()
        if method == "crop":
            k = max(1, int(self.crop * n))
            start = int(rng.integers(0, n - k + 1))
            return items[start : start + k].copy()
        if method == "mask":
            out = items.copy()
            k = min(int(self.mask * n), n - 1)
            out[rng.choice(n - 1, size=k, replace=False)] = 0  # the latest item stays visible
            return out
        k = int(self.reorder * n)
        out = items.copy()
        if k >= 2:
            start = int(rng.integers(0, n - k + 1))
            out[start : start + k] = rng.permutation(out[start : start + k])
        return out

    def __call__(self, seq: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """(B, L) left-padded tokens → (B, L') one augmented view per row, left-padded."""
        rows = seq.numpy()
        picks = rng.integers(0, len(self.methods), size=len(rows))
        views = []
        for r, p in zip(rows, picks, strict=True):
            views.append(self.row(r[r != 0], self.methods[p], rng))
        width = max(1, max((len(v) for v in views), default=1))
        out = np.zeros((len(rows), width), dtype=np.int64)
        for b, v in enumerate(views):
            if len(v):
                out[b, width - len(v) :] = v
        return torch.from_numpy(out)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """InfoNCE (NT-Xent) between two views: (B, d), (B, d) → scalar.

    Row ``i`` of ``a`` and row ``i`` of ``b`` are positives; every other row of both views
    is a negative. Similarity is the cosine divided by ``temperature``. The loss is the mean
    over the ``2B`` anchors of ``-log softmax`` at the positive, so it is ``log(2B - 1)`` when
    every view looks alike, and 0 only when every positive pair stands out completely.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"views must both be (B, d), not {tuple(a.shape)} and {tuple(b.shape)}")
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b]).float(), dim=-1)  # (2B, d)
    sim = (z @ z.T) / temperature  # (2B, 2B)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, positive)
