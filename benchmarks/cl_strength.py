"""CL4SRec's contrastive term at several strengths, against SASRec without it (λ = 0).

Frozen record of a finished study: RESULTS.md "CL4SRec's contrastive strength on ML-1M
(`cl_strength`)"; rerun only to reproduce those figures. No grid: the next-item cross-entropy
of the saved models on their training sequences is no grid metric.

Why: in the full grid (``benchmarks/grids/full.toml``) SASRec with CL4SRec's loss trails
plain SASRec on ML-1M by about 0.035 NDCG@10 over 3 seeds, while its training next-item loss
follows SASRec's. Each variant here is the grid's ``sasrec-cl4srec`` cell (same options and
seed), trained for ``--epochs`` epochs with the contrastive weight λ and temperature τ set:

- validation NDCG@10 at the last epoch and test NDCG@10, with the change against λ = 0
  trained in the same run;
- next-item cross-entropy on the training sequences (eval mode), at the last position (the
  state that ranks) and over all positions: where the fit is lost.

Runs already in ``--out`` with the same options are reused, so a killed run resumes. Writes
``benchmarks/results/cl_strength.csv`` (tidy rows) and ``cl_strength.md`` (the table).

    python benchmarks/cl_strength.py --out DIR --dataset ml-1m --seed 0 --epochs 10 --quiet
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recloop.bench import RunSpec, load_grid, prepare_data, spec_of, train_run, write_results
from recloop.models.base import Recommender
from recloop.models.encoders import left_padded
from recloop.runs import git_sha, machine, read_run

RESULTS = Path(__file__).resolve().parent / "results"
GRID = Path(__file__).resolve().parent / "grids" / "full.toml"
#: (λ, τ): none, weak, the grid's weight at τ 1, the grid's own
VARIANTS = ((0.0, 0.5), (0.02, 0.5), (0.1, 1.0), (0.1, 0.5))


def base_spec(dataset: str, seed: int) -> dict[str, object]:
    """The full grid's ``sasrec-cl4srec`` cell of ``dataset`` and ``seed`` (a RunSpec dict)."""
    for cell in load_grid(GRID).cells:
        if (cell.mode, cell.dataset, cell.variant, cell.seed) == ("offline", dataset, "cl4srec",
                                                                  seed):  # fmt: skip
            return dict(cell.config)
    raise SystemExit(f"{GRID} has no sasrec-cl4srec cell for {dataset} seed {seed}")


def fit(spec: dict[str, object], folder: Path, progress: bool) -> dict[str, object]:
    """Train the run into ``folder``, or reuse it there when its options match."""
    if (folder / "metrics.json").exists():
        done = read_run(folder)
        params = spec["params"]
        assert isinstance(params, dict)
        if all(done["config"]["params"].get(k) == v for k, v in params.items()):
            return done["metrics"]
    cfg = {**spec, "ks": tuple(spec["ks"])}  # type: ignore[call-overload]
    res = train_run(RunSpec(**cfg), folder, progress=progress)
    return res["metrics"]


def cross_entropy(folder: Path) -> tuple[float, float]:
    """Next-item cross-entropy on the training sequences: (last position, all positions)."""
    model = Recommender.load(folder / "model")
    _, split = prepare_data(spec_of(read_run(folder)["config"]))
    seq = split.train.sequences
    enc = model.encoder
    enc.eval()
    users = np.flatnonzero(np.diff(seq.indptr) >= 2)
    last, total, count = [], 0.0, 0
    with torch.no_grad():
        for s in range(0, len(users), 256):
            toks = left_padded(seq.indptr, seq.items, users[s : s + 256], model.config.max_len + 1)
            inputs, targets = toks[:, :-1], toks[:, 1:]
            logits = enc.logits(enc(inputs))
            ce = F.cross_entropy(logits.transpose(1, 2), (targets - 1).clamp(min=0),
                                 reduction="none")  # fmt: skip
            real = (inputs != 0) & (targets != 0)
            total, count = total + float(ce[real].sum()), count + int(real.sum())
            last.append(ce[:, -1].numpy())  # left-padded: the last column is always real
    return float(np.concatenate(last).mean()), total / count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for the runs")
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    os.environ["RECLOOP_CPUS"] = "1"  # one core, as the grid's cells: the same numbers as theirs
    torch.set_num_threads(1)
    base = base_spec(args.dataset, args.seed)
    code, where = git_sha(), machine()
    frames, table = [], []
    for weight, temp in VARIANTS:
        params = {**base["params"], "epochs": args.epochs, "patience": args.epochs,  # type: ignore[dict-item]
                  "cl_weight": weight, "cl_temperature": temp}  # fmt: skip
        folder = args.out / f"{args.dataset}-s{args.seed}-l{weight}-t{temp}"
        metrics = fit({**base, "params": params}, folder, not args.quiet)
        curve = metrics["training"]["curve"]  # type: ignore[index]
        last, every = cross_entropy(folder)
        test = metrics["test"]["all"]["ndcg@10"]  # type: ignore[index]
        figures = [("valid", "ndcg@10", curve[-1]["valid_ndcg@10"], None),
                   ("test", "ndcg@10", test["mean"], test),
                   ("train", "ce_last", last, None), ("train", "ce_all", every, None)]  # fmt: skip
        frames.append(pd.DataFrame([{
            "benchmark": "cl_strength", "dataset": args.dataset, "method": "sasrec",
            "variant": f"cl{weight}-t{temp}", "seed": args.seed, "split": split,
            "metric": metric, "value": value, "ci_low": ci and ci["low"],
            "ci_high": ci and ci["high"], "n": ci and ci["n"], "git_sha": code,
            "config_hash": read_run(folder)["config"]["config_hash"], "machine": where,
        } for split, metric, value, ci in figures]))  # fmt: skip
        table.append((weight, temp, curve[-1]["valid_ndcg@10"], test["mean"], last, every))
        print(f"λ {weight} τ {temp}: done", file=sys.stderr, flush=True)
    ref = table[0][3]
    lines = [f"{args.dataset}, seed {args.seed}, {args.epochs} epochs (λ 0: plain SASRec)", "",
             "| λ | τ | valid NDCG@10 | test NDCG@10 | vs λ 0 | CE last | CE all | last − all |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for weight, temp, valid, test_mean, last, every in table:
        lines.append(f"| {weight} | {temp} | {valid:.4f} | {test_mean:.4f} | {test_mean / ref:.3f} "
                     f"| {last:.3f} | {every:.3f} | {last - every:.3f} |")  # fmt: skip
    write_results(RESULTS, "cl_strength", frames, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
