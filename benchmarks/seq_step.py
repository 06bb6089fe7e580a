"""Where a SASRec training step on ML-1M spends its time, and what each optimisation buys.

A speed benchmark, not a study: it times training steps, which a grid does not measure, so it
stays a benchmark command. Its figures: RESULTS.md "Where a SASRec step goes (`seq_step`)".

Times the same batches (max_len 200, batch 128, full softmax over 3,706 items) under:

* ``baseline``: ``F.cross_entropy(states @ items.T)`` and ``nn.Dropout`` (also inside
  attention) — the textbook implementation;
* ``+chunked CE``: recloop's :func:`~recloop.models.losses.softmax_cross_entropy`;
* ``+fast dropout``: recloop's ``rand_like`` dropout and explicit attention (recloop's
  default, the model as shipped);
* ``+bf16``: the shipped model with ``bf16=True`` (bfloat16 autocast).

Prints seconds per step, the projected seconds per epoch and the ratio to the baseline,
then a profile of the baseline and of the shipped step (top operators by self CPU time).

    python benchmarks/seq_step.py --steps 12
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recloop.data import leave_one_out, load_dataset
from recloop.models import encoders, get_model
from recloop.models import sequential as seq
from recloop.models.training import _adamw


def _textbook(model: seq.SequentialRecommender) -> None:
    """Swap in nn.Dropout and SDPA's own attention dropout, and F.cross_entropy."""
    enc = model.module_
    for module in enc.modules():
        for child_name, child in list(module.named_children()):
            if isinstance(child, seq.Dropout):
                setattr(module, child_name, nn.Dropout(child.p))
    for block in getattr(enc, "blocks", []):

        def forward(
            x: torch.Tensor, mask: torch.Tensor, b: encoders._Block = block
        ) -> torch.Tensor:
            n, length, d = x.shape
            qkv = b.qkv(b.norm1(x)).view(n, length, 3, b.heads, d // b.heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                               dropout_p=b.p if b.training else 0.0)  # fmt: skip
            x = x + b.drop(b.proj(a.transpose(1, 2).reshape(n, length, d)))
            return x + b.drop(b.ff2(b.drop(F.gelu(b.ff1(b.norm2(x))))))

        block.forward = forward  # type: ignore[method-assign]

    def loss(batch: seq.Batch) -> torch.Tensor:
        tokens = seq.left_padded(model._indptr, model._items, batch.users, model.config.max_len + 1)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        mask = (inputs != 0) & (targets != 0)
        states = enc(inputs)[mask]
        return F.cross_entropy(enc.logits(states), targets[mask] - 1)

    model._loss = loss  # type: ignore[method-assign]


def _setup(
    split, variant: str
) -> tuple[seq.SequentialRecommender, Callable[[seq.Batch], None], list]:
    model = get_model("sasrec")(max_len=200, bf16=variant == "+bf16")
    model.n_users_, model.n_items_ = split.train.n_users, split.train.n_items
    torch.manual_seed(0)
    model.module_ = model._build()
    model._prepare(split.train)
    if variant == "baseline":
        _textbook(model)
    elif variant == "+chunked CE":
        for m in model.module_.modules():
            for name, child in list(m.named_children()):
                if isinstance(child, seq.Dropout):
                    setattr(m, name, nn.Dropout(child.p))
    opt = _adamw(model.module_, model.config)
    model.module_.train()

    def step(batch: seq.Batch) -> None:
        loss = model._loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.module_.parameters(), 5.0)
        opt.step()

    return model, step, model._plan(np.random.default_rng(0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    split = leave_one_out(load_dataset("ml-1m"))
    variants = ["baseline", "+chunked CE", "+fast dropout", "+bf16"]
    results = {}
    for variant in variants:
        _, step, batches = _setup(split, variant)
        for b in batches[:2]:  # warm-up
            step(b)
        t0 = time.perf_counter()
        for b in batches[2 : 2 + args.steps]:
            step(b)
        per = (time.perf_counter() - t0) / args.steps
        results[variant] = (per, per * len(batches))
    base = results["baseline"][0]
    print(f"SASRec step on ML-1M, {args.threads} threads, {args.steps} steps of batch 128 "
          f"({len(batches)} steps/epoch)\n")  # fmt: skip
    print("| variant | s/step | s/epoch (projected) | speed-up vs baseline |\n|---|---|---|---|")
    for variant, (per, epoch) in results.items():
        print(f"| {variant} | {per:.3f} | {epoch:.1f} | {base / per:.2f}× |")
    from torch.profiler import ProfilerActivity, profile

    for variant in ("baseline", "+fast dropout"):
        _, step, batches = _setup(split, variant)
        step(batches[0])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for b in batches[1:4]:
                step(b)
        print(f"\nprofile, {variant} (3 steps):")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
    return 0


if __name__ == "__main__":
    sys.exit(main())
