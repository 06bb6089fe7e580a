"""Full-softmax cross-entropy over a large catalogue without the ``(N, I)`` tensors.

``F.cross_entropy(states @ items.T, targets)`` materialises the logits, their log-softmax
and, in the backward pass, a zero-filled gradient and the softmax gradient: four
``(N, I)`` arrays streamed through memory. On a CPU that traffic, not the matrix products,
dominates a SASRec step over ML-1M's 3,706 items (see benchmarks/RESULTS.md).

:func:`softmax_cross_entropy` computes the same loss and gradients chunk by chunk: each
``(chunk, I)`` block of logits lives only while it is in cache, and the backward pass
recomputes it (one extra matrix product) instead of storing it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

#: Rows of logits per chunk: ``_CHUNK × I`` floats stay within a few MB.
_CHUNK = 128


class _ChunkedSoftmaxCE(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        states: torch.Tensor,
        weights: torch.Tensor,
        targets: torch.Tensor,
        bf16: bool,
        row_weights: torch.Tensor | None,
        smoothing: float,
    ) -> torch.Tensor:
        n = states.shape[0]
        acc = torch.promote_types(states.dtype, torch.float32)  # float64 stays float64
        lse = torch.empty(n, dtype=acc)
        picked = (states * weights[targets]).sum(-1).to(acc)  # (N,) target logits
        if smoothing > 0:  # the target mixes one-hot (1 − ε) with uniform ε: the mean logit
            picked = (1 - smoothing) * picked + smoothing * (states @ weights.mean(0)).to(acc)
        h, w = (states.bfloat16(), weights.bfloat16()) if bf16 else (states, weights)
        for s in range(0, n, _CHUNK):
            logits = h[s : s + _CHUNK] @ w.T  # (C, I)
            lse[s : s + _CHUNK] = torch.logsumexp(logits.to(acc), dim=1)
        ctx.save_for_backward(states, weights, targets, lse, row_weights)
        ctx.bf16, ctx.smoothing = bf16, smoothing
        if row_weights is None:
            return (lse - picked).mean()
        return ((lse - picked) * row_weights.to(acc)).mean()

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None, None, None, None]:
        states, weights, targets, lse, row_weights = ctx.saved_tensors
        n, eps = states.shape[0], ctx.smoothing
        uniform = eps / weights.shape[0]
        scale = grad / n
        g_states = torch.empty_like(states)
        g_weights = torch.zeros_like(weights)
        hs, w = (states.bfloat16(), weights.bfloat16()) if ctx.bf16 else (states, weights)
        for s in range(0, n, _CHUNK):
            h = hs[s : s + _CHUNK]
            # (C, I) recomputed logits → scale · (softmax − one-hot). Without row weights the
            # scale enters the exponent (exp(x − lse + log scale)), which saves a pass.
            p = (h @ w.T).to(lse.dtype)
            if row_weights is None:
                p.sub_(lse[s : s + _CHUNK, None] - torch.log(scale)).exp_()
                p[torch.arange(len(h)), targets[s : s + _CHUNK]] -= (1 - eps) * scale.to(p.dtype)
                if eps > 0:
                    p.sub_(uniform * scale.to(p.dtype))
            else:
                rs = (scale * row_weights[s : s + _CHUNK]).to(p.dtype)  # (C,)
                p.sub_(lse[s : s + _CHUNK, None]).exp_().mul_(rs[:, None])
                p[torch.arange(len(h)), targets[s : s + _CHUNK]] -= (1 - eps) * rs
                if eps > 0:
                    p.sub_(uniform * rs[:, None])
            p = p.to(w.dtype)
            g_states[s : s + _CHUNK] = p @ w
            if ctx.bf16:
                g_weights += (p.T @ h).float()
            else:
                g_weights.addmm_(p.T, h)
        return g_states, g_weights, None, None, None, None


def softmax_cross_entropy(
    states: torch.Tensor,
    weights: torch.Tensor,
    targets: torch.Tensor,
    bf16: bool = False,
    row_weights: torch.Tensor | None = None,
    smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean of ``-log softmax(states @ weights.T)[n, targets[n]]`` over rows.

    Equal (to float rounding) to ``F.cross_entropy(states @ weights.T, targets)`` in value
    and gradients, with memory traffic of ``O(chunk × I)`` instead of ``O(N × I)``.

    Args:
        states: (N, d) float.
        weights: (I, d) float, the output item table.
        targets: (N,) int64 item indices.
        bf16: run the matrix products in bfloat16 (the softmax stays in float32).
        row_weights: (N,) constant weights ``w_n``: the loss becomes the mean of
            ``w_n · CE_n`` (no gradient flows into the weights; the actor losses of SAC and
            SA2C weight each transition's cross-entropy by a detached Q-value or advantage).
        smoothing: label smoothing ε: the target distribution is ``(1 − ε)`` on the target
            plus ``ε / I`` on every item, as ``F.cross_entropy(..., label_smoothing=ε)``.
    """
    if states.shape[0] == 0:
        return (states.sum() + weights.sum()) * 0.0
    if row_weights is not None:
        if row_weights.shape != targets.shape:
            raise ValueError(
                f"row_weights must be ({targets.shape[0]},), not {tuple(row_weights.shape)}"
            )
        row_weights = row_weights.detach()
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), not {smoothing}")
    return _ChunkedSoftmaxCE.apply(states, weights, targets, bf16, row_weights, smoothing)


def gbce(
    states: torch.Tensor,
    weights: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    n_items: int,
    t: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """gSASRec's generalised binary cross-entropy (Petrov & Macdonald, RecSys 2023).

    ``−log σ(s⁺)^β − Σ log(1 − σ(s⁻))`` per position, averaged over positions, over ``S``
    sampled negatives (a negative equal to the position's target is left out) with
    ``β = α (t (1 − 1/α) + 1/α)``, ``α = S / (n_items − 1)``: ``t = 0`` is plain BCE
    (β = 1), ``t = 1`` makes β = α, the weight that undoes the negative sampling's
    overconfidence.

    Args:
        states: (N, d), or (B, L, d) with per-sequence negatives.
        weights: (I, d) item table.
        targets: (N,) or (B, L) item indices.
        negatives: (S,) shared by every position, or (B, S): each sequence its own.
        n_items: catalogue size. t: calibration in [0, 1].
        mask: positions that count (same shape as ``targets``); all by default.
    """
    alpha = negatives.shape[-1] / max(n_items - 1, 1)
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    pos = (states * weights[targets]).sum(-1).float()  # (N,) or (B, L)
    if negatives.dim() == 1:
        neg = (states @ weights[negatives].T).float()  # (N, S)
        keep = negatives != targets[..., None]
    else:
        neg = (states @ weights[negatives].transpose(-1, -2)).float()  # (B, L, S)
        keep = negatives[:, None, :] != targets[..., None]
    per = beta * F.softplus(-pos) + (F.softplus(neg) * keep).sum(-1)
    return (per if mask is None else per[mask]).mean()
