"""Seconds per SASRec epoch on ML-1M against the ideal set by its FLOP count and this CPU's
measured matrix-product rate, and what the platform's options buy (issue 32).

A speed benchmark, not a study: it times training steps. For one configuration (the
benchmark's ML-1M options by default) it

* counts the floating-point operations of one epoch from the epoch's real batches (output
  layer: the chunked softmax's four products over every item; encoder: the linear layers over
  every padded position; attention: ``Q Kᵀ`` and ``A V``; forward and backward);
* measures the matrix-product rate on the output layer's shape (128 × d) · (d × I), in
  float32 and bfloat16;
* times ``--steps`` training steps under each variant (float32, bf16, bf16 + torch.compile)
  and projects seconds per epoch.

Writes tidy rows to ``benchmarks/results/seq_ideal.csv`` (``variant``, ``metric``, ``value``)
and prints a table; figures in RESULTS.md "Time to quality on ML-1M".

    python benchmarks/seq_ideal.py --steps 20 --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recloop.data import leave_one_out, load_dataset
from recloop.models import get_model
from recloop.models.sequential import left_padded
from recloop.models.training import _adamw

RESULTS = Path(__file__).resolve().parent / "results"
OPTIONS = {"max_len": 200, "batch_size": 64, "lr": 3e-3, "windows": True}


def epoch_flops(model, batches, n_items: int) -> dict[str, float]:
    """FLOPs of one training epoch (forward + backward), by part."""
    cfg, d = model.config, model.config.dim
    out = {"output": 0.0, "linear": 0.0, "attention": 0.0}
    for b in batches:
        seq = left_padded(model._indptr, model._items, b.users, cfg.max_len + 1, b.ends)
        inputs, targets = seq[:, :-1], seq[:, 1:]
        n = int(((inputs != 0) & (targets != 0)).sum())
        rows, width = inputs.shape
        out["output"] += 4 * 2 * n * n_items * d  # logits, recomputed logits, two gradients
        out["linear"] += cfg.layers * 3 * 2 * 6 * d * d * rows * width  # qkv, proj, ff1, ff2
        out["attention"] += cfg.layers * 3 * 2 * 2 * rows * width * width * d
    return out


def matmul_rate(d: int, n_items: int, dtype: torch.dtype, reps: int = 200) -> float:
    """FLOP/s of (128 × d) · (d × I) products, the chunked softmax's shape."""
    a, w = torch.randn(128, d).to(dtype), torch.randn(n_items, d).to(dtype)
    for _ in range(10):
        a @ w.T
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ w.T
    return reps * 2 * 128 * d * n_items / (time.perf_counter() - t0)


def time_steps(split, options: dict, steps: int) -> tuple[float, int, object, list]:
    model = get_model("sasrec")(options)
    model.n_users_, model.n_items_ = split.train.n_users, split.train.n_items
    torch.manual_seed(0)
    model.module_ = model._build()
    model._prepare(split.train)
    opt = _adamw(model.module_, model.config)
    batches = model._plan(np.random.default_rng(0))
    model.module_.train()

    def step(batch) -> None:
        loss = model._loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.module_.parameters(), 5.0)
        opt.step()

    warm = 12 if options.get("compile") else 2  # compile: every new width compiles first
    for b in batches[:warm]:
        step(b)
    t0 = time.perf_counter()
    for b in batches[warm : warm + steps]:
        step(b)
    return (time.perf_counter() - t0) / steps, len(batches), model, batches


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--options", default=json.dumps(OPTIONS), help="SASRec options (JSON)")
    ap.add_argument("--variants", default="f32,bf16,bf16+compile")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    options = json.loads(args.options)
    split = leave_one_out(load_dataset("ml-1m"))
    n_items, d = split.train.n_items, int(options.get("dim", 64))
    rates = {"f32": matmul_rate(d, n_items, torch.float32),
             "bf16": matmul_rate(d, n_items, torch.bfloat16)}  # fmt: skip
    rows, flops = [], None
    for variant in args.variants.split(","):
        opts = {**options, "bf16": "bf16" in variant, "compile": "compile" in variant}
        per, n_batches, model, batches = time_steps(split, opts, args.steps)
        if flops is None:
            flops = epoch_flops(model, batches, n_items)
        total = sum(flops.values())
        rate = rates["bf16" if "bf16" in variant else "f32"]
        ideal = total / rate
        rows += [{"variant": variant, "metric": "s_per_step", "value": per},
                 {"variant": variant, "metric": "s_per_epoch", "value": per * n_batches},
                 {"variant": variant, "metric": "ideal_s_per_epoch", "value": ideal},
                 {"variant": variant, "metric": "matmul_gflops", "value": rate / 1e9}]  # fmt: skip
    assert flops is not None
    frame = pd.DataFrame(rows).assign(threads=args.threads, options=json.dumps(options))
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "seq_ideal.csv", index=False)
    print(f"SASRec on ML-1M, {args.threads} threads, options {json.dumps(options)}")
    print("epoch TFLOP: " + ", ".join(f"{k} {v / 1e12:.3f}" for k, v in flops.items())
          + f" (total {sum(flops.values()) / 1e12:.3f})")  # fmt: skip
    print("matmul rate (128 × d · d × I): " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s"
                                                          for k, v in rates.items()))  # fmt: skip
    wide = frame.pivot_table(index="variant", columns="metric", values="value", sort=False)
    print(
        "\n| variant | s/step | s/epoch | ideal s/epoch | ratio to ideal |\n|---|---|---|---|---|"
    )
    for variant, r in wide.iterrows():
        print(
            f"| {variant} | {r['s_per_step']:.3f} | {r['s_per_epoch']:.1f} | "
            f"{r['ideal_s_per_epoch']:.1f} | {r['s_per_epoch'] / r['ideal_s_per_epoch']:.1f}× |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
