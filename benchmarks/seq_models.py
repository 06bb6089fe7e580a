"""The deep models (MLP tower, GRU4Rec, SASRec) against the foundation's baselines.

Frozen record of a finished study: RESULTS.md "Deep models (`seq_models`)"; its ML-1M SASRec
rows and the Ciao rows are issue 32's (RESULTS.md "ML-1M SASRec toward published quality",
"CiaoDVD"), run as the grids ``seq_models_ml1m.toml`` and ``seq_models_ciao.toml`` and merged
into the same CSV; the first round's ML-1M SASRec rows are variant ``round1``. Its main tables
are the grids ``benchmarks/grids/seq_models_ml100k.toml`` and ``seq_models_ml1m.toml`` (one
per dataset, as the options differ; the report's offline table is the same
:func:`recloop.bench.summary_table` with the same paired tests against Markov). The
training-cost table and "SASRec against each baseline" are no grid output and live only here.

Each (dataset, method) runs in its own process, one after another, so ``peak_rss_mb`` is that
method's own peak (data, training and evaluation) and no two trainings share the CPU.
Writes tidy rows to ``benchmarks/results/seq_models.csv`` and the tables to
``benchmarks/results/seq_models.md`` (pasted into RESULTS.md).

    python benchmarks/seq_models.py --datasets ml-100k,ml-1m --seeds 0,1,2 --quiet
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

from cells import add_options, child_options, run_cells
from recloop.bench import RunSpec, compare, markdown, summary_table, write_results
from recloop.eval.stats import paired_tests_holm

RESULTS = Path(__file__).resolve().parent / "results"
BASELINES = ["pop", "itemknn", "ease", "markov"]  # deterministic: one run each
DEEP = ["mlp", "gru4rec", "sasrec", "gsasrec"]
REFERENCE = "markov"  # the strongest foundation baseline on both datasets
# Options per dataset (everything else is the model's default; `recloop models NAME`).
_ML1M = {"max_len": 200, "batch_size": 64, "lr": 3e-3, "bf16": True, "lr_decay": 0.5,
         "lr_patience": 2, "patience": 5}  # fmt: skip
_CIAO = {"max_len": 50, "batch_size": 64, "lr": 3e-3, "dropout": 0.5, "patience": 10, "epochs": 60}
PARAMS: dict[str, dict[str, dict[str, object]]] = {
    "ml-100k": {
        "sasrec": {"max_len": 50, "batch_size": 32, "dropout": 0.5},
        "gru4rec": {"max_len": 50},
        "mlp": {},
    },
    "ml-1m": {
        # issue 32: every 201-item window, 300 warm-up steps then a half cosine over 40 epochs
        # (round 1: _ML1M with a 30-epoch cap; its rows are variant "round1").
        "sasrec": {
            "max_len": 200,
            "batch_size": 64,
            "lr": 3e-3,
            "dropout": 0.2,
            "bf16": True,
            "windows": True,
            "schedule": "cosine",
            "warmup": 300,
            "epochs": 40,
            "patience": 40,
        },
        "gru4rec": {**_ML1M, "epochs": 20},
        "mlp": {"epochs": 8},
    },
    # Users with fewer than 3 ratings stay in training (SHORT_USERS); seq_models_ciao.toml.
    "ciao": {
        "sasrec": _CIAO,
        "gsasrec": _CIAO,
        "gru4rec": {"max_len": 50, "patience": 10, "epochs": 60},
        "mlp": {},
    },
}
SHORT_USERS = {"ciao": "train"}  # leave-one-out needs 3 ratings; the rest train only
# Cells run with one seed only (none now). Everything else: --seeds.
ONE_SEED: set[tuple[str, str]] = set()


def run_cell(dataset: str, method: str, seeds: list[int], out: Path, quiet: bool,
             max_epochs: int | None) -> None:  # fmt: skip
    """Child process: one method on one dataset over the seeds; writes two CSVs."""
    params = {method: dict(PARAMS.get(dataset, {}).get(method, {}))}
    if max_epochs is not None and method in DEEP:
        params[method]["epochs"] = max_epochs
    spec = RunSpec(model=method, data=dataset, short_users=SHORT_USERS.get(dataset, "error"))
    tidy, per_user = compare(spec, [method], seeds,
                             benchmark="seq_models", progress=not quiet, params=params)  # fmt: skip
    tidy.to_csv(out / "tidy.csv", index=False)
    per_user.to_csv(out / "per_user.csv", index=False)


def versus_each_baseline(per_user: pd.DataFrame, method: str, baselines: list[str]) -> str:
    """Paired test of ``method`` against every baseline (Holm-corrected over baselines)."""
    allu = per_user[per_user["group"] == "all"]
    means = allu.groupby(["method", "user"])["ndcg@10"].mean().unstack(0)
    found = paired_tests_holm({b: (means[method].to_numpy(), means[b].to_numpy())
                               for b in baselines})  # fmt: skip
    lines = [f"| {method} vs | Δndcg@10 | p (Wilcoxon, Holm) |", "|---|---|---|"]
    for b, (t, p) in found.items():
        lines.append(f"| {b} | {t.mean_diff:+.4f} | {p:.1e}{' *' if p < 0.05 else ''} |")
    return "\n".join(lines)


def cost_table(tidy: pd.DataFrame) -> str:
    """Training cost per method: means over seeds."""
    cols = ["epochs_to_best", "time_to_best_s", "s_per_epoch", "peak_rss_mb", "params",
            "time_to_0.17_s", "time_to_0.18_s"]  # fmt: skip
    train = tidy[tidy["split"] == "train"]
    wide = train.pivot_table(index="method", columns="metric", values="value", aggfunc="mean")
    lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    order = list(dict.fromkeys(tidy["method"]))  # the run order, not alphabetical
    for method in [m for m in order if m in wide.index]:
        cells = []
        for c in cols:
            v = wide.loc[method].get(c)
            cells.append(
                "—" if v is None or pd.isna(v) else f"{v:,.1f}" if c != "params" else f"{v:,.0f}"
            )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap)
    ap.add_argument("--methods", default=",".join(BASELINES + DEEP))
    ap.add_argument("--cell", nargs=3, metavar=("DATASET", "METHOD", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.cell:
        dataset, method, out = args.cell
        run_cell(dataset, method, seeds if method in DEEP else [0], Path(out), args.quiet,
                 args.max_epochs)  # fmt: skip
        return 0
    methods = args.methods.split(",")
    frames, sections = [], []
    work = args.work or Path(tempfile.mkdtemp(prefix="seq_models-"))
    for dataset in args.datasets.split(","):
        cells = []
        for method in methods:
            cell_seeds = str(seeds[0]) if (dataset, method) in ONE_SEED else args.seeds
            cells.append((f"{dataset}-{method}",
                          [*child_options(args, cell_seeds), "--cell", dataset, method]))  # fmt: skip
        tidy_parts, per_parts = run_cells(__file__, work, cells)
        tidy = pd.concat(tidy_parts, ignore_index=True)
        per_user = pd.concat(per_parts, ignore_index=True)
        frames.append(tidy)
        table = summary_table(tidy, per_user, baseline=REFERENCE)
        text = [f"### {dataset} (test, leave-one-out, full ranking; deep models: {len(seeds)} "
                f"seeds)\n", markdown(table, REFERENCE), "", "Training cost (means over seeds):\n",
                cost_table(tidy), ""]  # fmt: skip
        if "sasrec" in methods:
            text += ["SASRec against each baseline:\n",
                     versus_each_baseline(per_user, "sasrec", [m for m in methods if m in BASELINES]),
                     ""]  # fmt: skip
        text.append(f"Options: `{json.dumps(PARAMS.get(dataset, {}))}`\n")
        sections.append("\n".join(text))
        print(sections[-1], flush=True)
    write_results(RESULTS, "seq_models", frames, sections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
