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

#: Rows of logits per chunk: ``_CHUNK × I`` floats stay within a few MB.
_CHUNK = 128


class _ChunkedSoftmaxCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, states: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = states.shape[0]
        lse = torch.empty(n, dtype=torch.float32)
        picked = (states * weights[targets]).sum(-1).float()  # (N,) target logits
        for s in range(0, n, _CHUNK):
            logits = states[s : s + _CHUNK] @ weights.T  # (C, I)
            lse[s : s + _CHUNK] = torch.logsumexp(logits.float(), dim=1)
        ctx.save_for_backward(states, weights, targets, lse)
        return (lse - picked).mean()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        states, weights, targets, lse = ctx.saved_tensors
        n = states.shape[0]
        scale = grad / n
        g_states = torch.empty_like(states)
        g_weights = torch.zeros_like(weights)
        for s in range(0, n, _CHUNK):
            h = states[s : s + _CHUNK]
            # (C, I) recomputed logits → scale · (softmax − one-hot), in place. The scale
            # enters the exponent (exp(x − lse + log scale)), which saves a pass.
            p = h @ weights.T
            shift = lse[s : s + _CHUNK, None] - torch.log(scale)
            p.sub_(shift.to(p.dtype)).exp_()
            p[torch.arange(len(h)), targets[s : s + _CHUNK]] -= scale.to(p.dtype)
            g_states[s : s + _CHUNK] = p @ weights
            g_weights.addmm_(p.T, h)
        return g_states, g_weights, None


def softmax_cross_entropy(states: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of ``-log softmax(states @ weights.T)[n, targets[n]]`` over rows.

    Equal (to float rounding) to ``F.cross_entropy(states @ weights.T, targets)`` in value
    and gradients, with memory traffic of ``O(chunk × I)`` instead of ``O(N × I)``.

    Args:
        states: (N, d) float.
        weights: (I, d) float, the output item table.
        targets: (N,) int64 item indices.
    """
    if states.shape[0] == 0:
        return (states.sum() + weights.sum()) * 0.0
    return _ChunkedSoftmaxCE.apply(states, weights, targets)
