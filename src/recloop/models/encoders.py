"""The sequence encoders behind GRU4Rec and SASRec, and the batching helpers they share.

A :class:`SequenceEncoder` maps left-padded item tokens (item ``i`` is token ``i + 1``; 0 is
padding) to causal states, ``(B, L) → (B, L, d)``, and scores states against its own item
table. The sequential models (:mod:`recloop.models.sequential`) and the RL heads
(:mod:`recloop.rl`) build on these classes without copying them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recloop.models.items import ItemTable


def window(
    indptr: np.ndarray, rows: np.ndarray, max_len: int, ends: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned windows of each CSR row's last ``max_len`` entries (before ``ends``,
    positions in the CSR value arrays, where given; the row ends otherwise).

    Returns ``(source, real)``, both ``(B, L)``: ``source`` indexes the CSR value arrays
    where ``real`` is true (0 elsewhere). ``L`` is the longest clipped row (at least 1), so a
    batch of similar lengths carries little padding.
    """
    end = indptr[rows + 1] if ends is None else ends
    n = np.minimum(end - indptr[rows], max_len)  # (B,)
    width = max(int(n.max(initial=0)), 1)
    offset = np.arange(width)[None, :] - (width - n)[:, None]  # (B, L); >= 0 where real
    real = offset >= 0
    return np.where(real, (end - n)[:, None] + offset, 0), real


def left_padded(
    indptr: np.ndarray,
    items: np.ndarray,
    rows: np.ndarray,
    max_len: int,
    ends: np.ndarray | None = None,
) -> torch.Tensor:
    """(B, L) int64 tokens: each row's last ``max_len`` items + 1 (before ``ends``, see
    :func:`window`), padded with 0 on the left."""
    source, real = window(indptr, rows, max_len, ends)
    picked = items[source] if len(items) else np.zeros(source.shape, dtype=np.int64)
    return torch.from_numpy(np.where(real, picked + 1, 0).astype(np.int64))


class Dropout(nn.Module):
    """Inverted dropout with masks from ``rand_like``: same semantics as ``nn.Dropout``,
    about 1.8× faster on CPU, where ``bernoulli_`` took a fifth of a SASRec step."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x.mul(torch.rand_like(x) >= self.p).mul_(1.0 / (1.0 - self.p))


class SequenceEncoder(nn.Module):
    """History → state. The interface GRU4Rec, SASRec and the RL heads share.

    Args:
        n_items: catalogue size (tokens ``1..n_items``; 0 is padding).
        dim: state and item-vector dimension.
        items: the item table (``id``, ``id+text`` or ``text``); ID embeddings by default.
    """

    def __init__(self, n_items: int, dim: int, items: ItemTable | None = None) -> None:
        super().__init__()
        self.n_items, self.dim = n_items, dim
        self.items = ItemTable(n_items, dim, padded=True) if items is None else items

    def embed(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded tokens → (B, L, d) item vectors, zero at padding."""
        return self.items.tokens(seq)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """(B, L) left-padded tokens → (B, L, d) causal states."""
        raise NotImplementedError

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded tokens → (B, d) state after the latest item."""
        return self(seq)[:, -1]

    def item_weights(self) -> torch.Tensor:
        """(n_items, d) the item table (row ``i`` is item ``i``), used to score states."""
        return self.items.weight()

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """(..., d) states → (..., n_items) scores of every item."""
        return states @ self.item_weights().T


class GRU4RecEncoder(SequenceEncoder):
    """GRU4Rec's network (Hidasi et al., ICLR 2016): item embeddings → GRU layers."""

    def __init__(self, n_items: int, dim: int, layers: int = 1, dropout: float = 0.2,
                 items: ItemTable | None = None) -> None:  # fmt: skip
        super().__init__(n_items, dim, items)
        self.drop = Dropout(dropout)
        # No biases: from a zero state, zero (padding) inputs keep the state exactly zero,
        # so left padding of any width leaves every real position's state unchanged.
        self.gru = nn.GRU(dim, dim, num_layers=layers, batch_first=True, bias=False,
                          dropout=dropout if layers > 1 else 0.0)  # fmt: skip
        self.out = nn.Linear(dim, dim)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embed(seq))  # (B, L, d); padding rows are zero
        h, _ = self.gru(x)  # (B, L, d)
        return self.out(self.drop(h))


class _Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a point-wise feed-forward."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.p = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ff1, self.ff2 = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, length, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, L, d/H)
        if self.training and self.p > 0:  # SDPA's own attention dropout uses bernoulli_
            att = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5  # (B, H, L, L)
            att = self.drop(att.masked_fill(~mask, float("-inf")).softmax(dim=-1))
            a = att @ v  # (B, H, L, d/H)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, length, d)))
        return x + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.norm2(x))))))


class SASRecEncoder(SequenceEncoder):
    """SASRec's network (Kang & McAuley, ICDM 2018).

    Scaled item embeddings plus learned position embeddings, dropout, ``layers`` pre-norm
    blocks of causal multi-head self-attention and a point-wise feed-forward, a final layer
    norm. Positions count back from the latest item (the last column is position 0), so a
    batch may be narrower than ``max_len``. Padding takes no part in attention (a padding
    query attends to itself only, which keeps its row finite; its output is never used).
    """

    def __init__(self, n_items: int, dim: int = 64, max_len: int = 200, layers: int = 2,
                 heads: int = 1, dropout: float = 0.2,
                 items: ItemTable | None = None) -> None:  # fmt: skip
        super().__init__(n_items, dim, items)
        self.max_len = max_len
        self.position = nn.Embedding(max_len, dim)
        nn.init.normal_(self.position.weight, std=dim**-0.5)
        self.drop = Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        seq = seq[:, -self.max_len :]
        _b, length = seq.shape
        keep = (seq != 0).unsqueeze(-1)  # (B, L, 1)
        back = torch.arange(length - 1, -1, -1, device=seq.device)  # (L,) distance to the end
        x = self.embed(seq) * math.sqrt(self.dim) + self.position(back)
        x = self.drop(x) * keep
        eye = torch.eye(length, dtype=torch.bool, device=seq.device)
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        mask = (causal & ((seq != 0).unsqueeze(1) | eye)).unsqueeze(1)  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, mask) * keep
        return self.norm(x)
