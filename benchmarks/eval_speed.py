"""Speed of the vectorised full-ranking evaluation against a naive per-user loop.

A speed benchmark, not a study: it times the evaluation, which a grid does not measure, so it
stays a benchmark command. Its figures: RESULTS.md "Evaluation speed (`eval_speed`)".

Builds a random problem with the shape of MovieLens-1M (6,040 users x 3,706 items, dense float32
scores with many ties, ~165 excluded history items per user as CSR, one held-out target per user)
and times:

* ``vectorised``: :func:`rank_targets` + :func:`ranking_metrics` + :func:`top_k` over all users
  in batches of 1,024 users;
* ``naive_loop``: a per-user Python loop (``np.argsort`` of each user's row), timed on a random
  subsample of users and **extrapolated** linearly to all users.

The naive loop's ranks are checked against the vectorised ones on the subsample. Results are
printed and written as tidy rows to ``benchmarks/results/eval_speed.csv``; earlier rows of this
benchmark in that file are replaced, rows of other benchmarks are kept.

Usage::

    PYTHONPATH=src python benchmarks/eval_speed.py --seed 0 --users 6040 --items 3706 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

try:
    from recloop.eval.metrics import rank_targets, ranking_metrics, top_k
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from recloop.eval.metrics import rank_targets, ranking_metrics, top_k

BENCHMARK = "eval_speed"
DATASET = "synthetic-ml-1m-shape"
COLUMNS = [
    "benchmark",
    "dataset",
    "method",
    "variant",
    "seed",
    "split",
    "metric",
    "value",
    "git_sha",
    "config_hash",
    "machine",
]
RESULTS = Path(__file__).resolve().parent / "results" / "eval_speed.csv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=6040)
    parser.add_argument("--items", type=int, default=3706)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--excluded", type=int, default=165, help="mean excluded items per user")
    parser.add_argument("--naive-users", type=int, default=300, help="subsample for naive loop")
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def make_problem(
    seed: int, n_users: int, n_items: int, n_excluded: float
) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
    """Random scores (float32, 1,000 levels -> many ties), exclusions and one target per user."""
    rng = np.random.default_rng(seed)
    scores = (rng.integers(0, 1000, size=(n_users, n_items)) / 1000.0).astype(np.float32)
    excluded = rng.random((n_users, n_items)) < min(n_excluded / n_items, 0.9)
    # one target per user among its non-excluded items: argmax of random keys, -1 on excluded
    keys = rng.random((n_users, n_items))
    keys[excluded] = -1.0
    targets = keys.argmax(axis=1).astype(np.int64)
    return scores, sp.csr_matrix(excluded), targets


def evaluate_vectorised(
    scores: np.ndarray, exclude: sp.csr_matrix, targets: np.ndarray, ks: list[int], batch: int
) -> tuple[np.ndarray, dict[str, float]]:
    """Ranks, metrics and top-k lists for all users in batches; returns ranks and mean metrics."""
    n_users = scores.shape[0]
    all_ranks = np.empty(n_users, dtype=np.int64)
    sums: dict[str, float] = {}
    for start in range(0, n_users, batch):
        stop = min(start + batch, n_users)
        indptr = np.arange(stop - start + 1)
        excl = exclude[start:stop]
        ranks = rank_targets(scores[start:stop], indptr, targets[start:stop], exclude=excl)
        for name, values in ranking_metrics(ranks, indptr, ks=ks).items():
            sums[name] = sums.get(name, 0.0) + float(values.sum())
        top_k(scores[start:stop], max(ks), exclude=excl)
        all_ranks[start:stop] = ranks
    return all_ranks, {name: total / n_users for name, total in sums.items()}


def evaluate_naive(
    scores: np.ndarray,
    exclude: sp.csr_matrix,
    targets: np.ndarray,
    users: np.ndarray,
    ks: list[int],
) -> np.ndarray:
    """Per-user loop: argsort each row, read off the target's rank, compute metrics in Python."""
    ranks = np.empty(users.size, dtype=np.int64)
    kmax = max(ks)
    for pos, u in enumerate(users):
        row = scores[u].astype(np.float64)
        keep = np.ones(row.size, dtype=bool)
        keep[exclude.indices[exclude.indptr[u] : exclude.indptr[u + 1]]] = False
        cand = np.flatnonzero(keep)
        is_target = (cand == targets[u]).astype(np.int64)
        # sort by score descending, then non-targets before the target (pessimistic ties)
        order = np.lexsort((is_target, -row[cand]))
        rank = int(np.flatnonzero(cand[order] == targets[u])[0])
        ranks[pos] = rank
        _ = {
            f"{name}@{k}": value
            for k in ks
            for name, value in (
                ("hr", float(rank < k)),
                ("ndcg", 1.0 / np.log2(rank + 2) if rank < k else 0.0),
                ("mrr", 1.0 / (rank + 1) if rank < k else 0.0),
                ("recall", float(rank < k)),
                ("precision", float(rank < k) / k),
            )
        }
        top_order = np.lexsort((cand, -row[cand]))[:kmax]  # score desc, lower index first
        _ = cand[top_order]
    return ranks


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def config_hash(args: argparse.Namespace) -> str:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config.pop("output", None)  # where results go does not change what is measured
    blob = json.dumps(config, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def write_rows(path: Path, rows: list[dict[str, object]]) -> None:
    """Rewrites ``path``: keeps rows of other benchmarks, replaces this benchmark's rows."""
    kept: list[dict[str, str]] = []
    if path.exists():
        with path.open(newline="") as fh:
            kept = [row for row in csv.DictReader(fh) if row.get("benchmark") != BENCHMARK]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        writer.writerows(rows)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scores, exclude, targets = make_problem(args.seed, args.users, args.items, args.excluded)
    ks = sorted(set(args.k))
    print(
        f"problem: {args.users} users x {args.items} items, float32 scores, "
        f"{exclude.nnz / args.users:.1f} excluded items/user, 1 target/user, seed {args.seed}"
    )

    evaluate_vectorised(scores, exclude, targets, ks, args.batch_size)  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ranks, means = evaluate_vectorised(scores, exclude, targets, ks, args.batch_size)
        times.append(time.perf_counter() - t0)
    vec_s = float(np.median(times))

    rng = np.random.default_rng(args.seed + 1)
    n_sub = min(args.naive_users, args.users)
    sub = np.sort(rng.choice(args.users, size=n_sub, replace=False))
    naive_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        naive_ranks = evaluate_naive(scores, exclude, targets, sub, ks)
        naive_times.append(time.perf_counter() - t0)
    if not np.array_equal(naive_ranks, ranks[sub]):
        raise SystemExit("naive and vectorised ranks disagree; the benchmark is invalid")
    naive_sub_s = float(np.median(naive_times))
    naive_s = naive_sub_s * args.users / n_sub
    speedup = naive_s / vec_s

    print(
        f"vectorised (rank_targets + ranking_metrics + top_k@{max(ks)}, batches of "
        f"{args.batch_size}): {vec_s:.3f} s for {args.users} users "
        f"({args.users / vec_s:,.0f} users/s; median of {args.repeats})"
    )
    print(
        f"naive per-user loop: {naive_sub_s:.3f} s measured on {n_sub} users -> "
        f"{naive_s:.2f} s EXTRAPOLATED to {args.users} users ({args.users / naive_s:,.0f} users/s)"
    )
    print(f"speed-up: {speedup:.1f}x (ranks agree on the {n_sub}-user subsample)")
    print(
        "sanity (random scorer): "
        + ", ".join(f"{m}={means[m]:.4f}" for m in (f"hr@{max(ks)}", f"ndcg@{max(ks)}"))
    )

    common = {
        "benchmark": BENCHMARK,
        "dataset": DATASET,
        "seed": args.seed,
        "split": "none",
        "git_sha": git_sha(),
        "config_hash": config_hash(args),
        "machine": f"{platform.node()}-{os.cpu_count()}cpu",
    }

    def row(method: str, variant: str, metric: str, value: float) -> dict[str, object]:
        return {
            **common,
            "method": method,
            "variant": variant,
            "metric": metric,
            "value": f"{value:.6g}",
        }

    vec_variant = f"batch{args.batch_size}"
    naive_variant = f"extrapolated_from_{n_sub}_users"
    rows = [
        row("vectorised", vec_variant, "eval_s", vec_s),
        row("vectorised", vec_variant, "users_per_s", args.users / vec_s),
        row("vectorised", vec_variant, "speedup_vs_naive", speedup),
        row("naive_loop", naive_variant, "eval_s", naive_s),
        row("naive_loop", naive_variant, "users_per_s", args.users / naive_s),
        row("naive_loop", naive_variant, "measured_s", naive_sub_s),
    ]
    write_rows(args.output, rows)
    print(f"wrote {len(rows)} rows to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
