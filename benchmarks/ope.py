"""Off-policy estimators against ground truth: in the simulator, and on the Open Bandit Dataset.

Frozen record of a finished study: RESULTS.md "Off-policy estimators against ground truth
(`ope`)"; rerun only to reproduce those figures (its tables' layout and its plot). Its runs
are grids, whose report gives the same errors and coverages:
``benchmarks/grids/ope.toml`` (one item per round, and the Open Bandit Dataset) and
``benchmarks/grids/ope_slate5.toml`` (slates of 5).

1. **Simulator, one item** (``sim-ml-100k``): the ML-100K simulator; a softmax-over-popularity
   behaviour policy logs one item per round from each user's 50 candidates; four targets
   (uniform, popularity greedy, ItemKNN softmax, ItemKNN ε-greedy) are estimated by IPS,
   clipped IPS, SNIPS, DM, DR and Switch-DR at each log size, ``--reps`` times, against the
   exact value (with an on-policy Monte-Carlo check beside it).
2. **Simulator, slates of 5** (``sim-ml-100k-slate5``): uniform random logging of ordered
   slates; IIPS and PI against the targets' on-policy Monte-Carlo value.
3. **Open Bandit Dataset** (``obd-all``, ``obd-men``, ``obd-women``): Bernoulli TS's click
   rate estimated from the uniformly random policy's logs, against BTS's own logs.

Tidy rows go to ``benchmarks/results/ope.csv`` (``split`` holds the target policy, ``variant``
the log size), tables to ``ope.md``, and the plot of error against log size to
``ope_error_vs_n.png``.

    python benchmarks/ope.py --reps 20
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from recloop.bench import (
    SimCheckConfig,
    bts_from_random,
    obd_rows,
    sim_check,
    sim_rows,
    write_results,
)
from recloop.data import load_dataset
from recloop.ope.obd import CAMPAIGNS
from recloop.sim.world import World

RESULTS = Path(__file__).resolve().parent / "results"


def _sim_table(summary: pd.DataFrame, title: str) -> str:
    """Relative error (CI coverage) per target and estimator, log sizes as columns."""
    sizes = sorted(summary["log_size"].unique())
    lines = [title, "", "| target | truth | estimator | " + " | ".join(f"n={n:,}" for n in sizes) + " |",
             "|---|---|---|" + "---|" * len(sizes)]  # fmt: skip
    for target, group in summary.groupby("target", sort=False):
        truth = group["truth"].iloc[0]
        for method, g in group.groupby("method", sort=False):
            cells = []
            for n in sizes:
                row = g[g["log_size"] == n].iloc[0]
                cells.append(f"{row['rel_error']:.3f} ({row['ci_coverage']:.0%})")
            lines.append(f"| {target} | {truth:.4f} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _obd_table(frames: dict[str, pd.DataFrame], n_runs: int) -> str:
    lines = ["### Open Bandit Dataset: BTS estimated from the random policy's logs", "",
             "Relative error of the full-log estimate / mean over "
             f"{n_runs} bootstrap resamples; ✓ when the full-log 95% CI covers BTS's on-policy "
             "click rate.", "",
             "| estimator | " + " | ".join(frames) + " |", "|---|" + "---|" * len(frames)]  # fmt: skip
    methods = next(iter(frames.values()))["method"].unique()
    for m in methods:
        cells = []
        for f in frames.values():
            full = f[(f["method"] == m) & (f["variant"] == "full")].iloc[0]
            boot = f[(f["method"] == m) & (f["variant"] == "bootstrap")].iloc[0]
            mark = "✓" if full["ci_coverage"] == 1.0 else "✗"
            cells.append(f"{full['rel_error']:.3f} / {boot['rel_error']:.3f} {mark}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    truth = " · ".join(
        f"{c}: {f['truth'].iloc[0]:.5f} [{f['truth_low'].iloc[0]:.5f}, {f['truth_high'].iloc[0]:.5f}]"
        for c, f in frames.items()
    )
    lines += ["", f"BTS on-policy click rate (95% CI): {truth}.", ""]
    return "\n".join(lines)


def _plot(panels: list[tuple[str, pd.DataFrame]], path: Path) -> None:
    targets = list(dict.fromkeys(t for _, s in panels for t in s["target"]))
    fig, axes = plt.subplots(len(panels), len(targets), figsize=(4 * len(targets), 3.4 * len(panels)),
                             squeeze=False, sharex=True)  # fmt: skip
    for i, (label, summary) in enumerate(panels):
        for j, target in enumerate(targets):
            ax = axes[i][j]
            g = summary[summary["target"] == target]
            for method, m in g.groupby("method", sort=False):
                ax.plot(m["log_size"], m["rel_error"], marker="o", label=method)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{label}: {target}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            if j == 0:
                ax.set_ylabel("mean relative error")
            if i == len(panels) - 1:
                ax.set_xlabel("logged rounds")
        axes[i][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="300,1000,3000,10000", help="log sizes (simulator)")
    ap.add_argument("--reps", type=int, default=20, help="repetitions per log size")
    ap.add_argument("--slate-size", type=int, default=5, help="K of the slate check (0: skip)")
    ap.add_argument("--truth-rounds", type=int, default=100_000)
    ap.add_argument("--obd-runs", type=int, default=30, help="bootstrap resamples per campaign")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="ope", help="results file name")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    t0 = time.perf_counter()
    frames, sections, panels = [], [], []
    dataset = load_dataset("ml-100k")
    world = World.fit(dataset, progress=not args.quiet)
    settings = [(1, "sim-ml-100k")]
    if args.slate_size > 1:
        settings.append((args.slate_size, f"sim-ml-100k-slate{args.slate_size}"))
    for k, name in settings:
        cfg = SimCheckConfig(log_sizes=sizes, reps=args.reps, slate_size=k,
                             truth_rounds=args.truth_rounds, seed=args.seed)  # fmt: skip
        t = time.perf_counter()
        summary, _ = sim_check(dataset, cfg, world, progress=not args.quiet)
        title = (f"### {name}: relative error (95% CI coverage) over {args.reps} logs per size "
                 f"({time.perf_counter() - t:.0f} s)")  # fmt: skip
        frames.append(sim_rows(summary, name, args.seed))
        sections.append(_sim_table(summary, title))
        panels.append((name, summary))
        print(sections[-1], flush=True)
    obd = {}
    for campaign in CAMPAIGNS:
        obd[f"obd-{campaign}"] = frame = bts_from_random(
            campaign, n_runs=args.obd_runs, seed=args.seed
        )
        frames.append(obd_rows(frame, campaign, args.obd_runs, args.seed))
    sections.append(_obd_table(obd, args.obd_runs))
    print(sections[-1], flush=True)
    sections.append(f"Total {time.perf_counter() - t0:.0f} s.\n")
    write_results(RESULTS, args.name, frames, sections)
    _plot(panels, RESULTS / f"{args.name}_error_vs_n.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
