"""Pretrained text item features and contrastive self-supervision, on warm and cold items.

Frozen record of a finished study: RESULTS.md "Text item features and contrastive
self-supervision (`text_and_cl`)"; rerun only to reproduce those figures. No grid: a grid
tests every method against one baseline on all targets, while this study tests each model's
variants against its own ``id`` variant on warm and on cold targets separately, with a
cold-item share per dataset, and times the text encoder.

The cold-start split (``recloop.data.cold_start_split``): chronological leave-one-out with
the newest ``COLD_FRAC`` of the catalogue kept out of training and validation entirely.
SASRec and GRU4Rec run in six variants: item representation ``id``, ``id+text`` or
``text`` (all-MiniLM-L6-v2 features of "title (year). Genres: ..."), each without and with
the CL4SRec contrastive loss (``+cl``, λ = ``CL_WEIGHT``). Test NDCG@10 / HR@10 / MRR@10 are
reported for warm and cold targets, mean ± 95% CI over users (each user's value averaged
over seeds), with a paired test (Wilcoxon, Holm over the five variants) against ``id``.

Each (dataset, method, variant) runs in its own process, one after another. Writes tidy rows
to ``benchmarks/results/text_and_cl.csv`` and tables to ``benchmarks/results/text_and_cl.md``.

    python benchmarks/text_and_cl.py --datasets ml-100k --seeds 0,1,2 --quiet
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cells import add_options, child_options, run_cells
from recloop.bench import RunSpec, prepare_data, train_run, write_results
from recloop.bench.experiments.offline import _cost
from recloop.config import config_hash
from recloop.eval.stats import mean_ci, paired_tests_holm
from recloop.runs import git_sha, machine

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ["sasrec", "gru4rec"]
VARIANTS = ["id", "id+text", "text", "id+cl", "id+text+cl", "text+cl"]
GROUPS = ("warm", "cold")
METRICS = ("ndcg@10", "hr@10", "mrr@10")
CL_WEIGHT = 0.1  # CL4SRec's λ
# ML-100K's newest 10% of items leave only 36 cold test targets; 20% leaves 106.
COLD_FRAC = {"ml-100k": 0.2, "ml-1m": 0.1}
# ML-1M at max_len 50 (not seq_models' 200): 36 runs at 200 would take ~4 h on this CPU; the
# comparison here is between item representations under one budget, not the best SASRec.
_ML1M = {"max_len": 50, "batch_size": 64, "lr": 3e-3, "bf16": True, "lr_decay": 0.5,
         "lr_patience": 2, "patience": 5, "epochs": 10}  # fmt: skip
PARAMS: dict[str, dict[str, dict[str, object]]] = {
    "ml-100k": {
        "sasrec": {"max_len": 50, "batch_size": 32, "dropout": 0.5},
        "gru4rec": {"max_len": 50},
    },
    "ml-1m": {"sasrec": _ML1M, "gru4rec": _ML1M},
}


def variant_params(dataset: str, method: str, variant: str) -> dict[str, object]:
    """The model options of one variant: the method's options plus text and CL switches."""
    params = dict(PARAMS.get(dataset, {}).get(method, {}))
    params["item_repr"] = variant.removesuffix("+cl")
    params["cl_weight"] = CL_WEIGHT if variant.endswith("+cl") else 0.0
    return params


def run_cell(dataset: str, method: str, variant: str, seeds: list[int], out: Path, quiet: bool,
             max_epochs: int | None) -> None:  # fmt: skip
    """Child process: one variant of one method on one dataset over the seeds."""
    params = variant_params(dataset, method, variant)
    if max_epochs is not None:
        params["epochs"] = max_epochs
    base = RunSpec(model=method, data=dataset, split="cold", cold_frac=COLD_FRAC.get(dataset, 0.1))
    data = prepare_data(base)
    sha, host = git_sha(), machine()
    rows, per_user = [], []
    for seed in seeds:
        spec = RunSpec(model=method, data=dataset, seed=seed, split="cold", params=params,
                       cold_frac=base.cold_frac)  # fmt: skip
        res = train_run(spec, None, progress=not quiet, data=data)
        labels = {"benchmark": "text_and_cl", "dataset": dataset, "method": method,
                  "variant": variant, "seed": seed, "git_sha": sha,
                  "config_hash": config_hash(res["config"]), "machine": host}  # fmt: skip
        summary = res["test"].summary
        for group in GROUPS:
            for m in METRICS:
                c = summary[group][m]
                rows.append({**labels, "split": group, "metric": m, "value": c.mean,
                             "ci_low": c.low, "ci_high": c.high, "n": c.n})  # fmt: skip
        costs = {"fit_s": res["metrics"]["fit_s"], **_cost(res["metrics"])}
        rows += [{**labels, "split": "train", "metric": k, "value": v} for k, v in costs.items()]
        pu = res["test"].per_user
        per_user.append(pu[pu["group"].isin(GROUPS)].assign(method=method, variant=variant,
                                                            seed=seed))  # fmt: skip
    pd.DataFrame(rows).to_csv(out / "tidy.csv", index=False)
    pd.concat(per_user).to_csv(out / "per_user.csv", index=False)


def embed_cell(dataset: str, out: Path) -> None:
    """Child process: time embedding every item of ``dataset`` (cache bypassed), then cache."""
    from recloop.data import load_dataset
    from recloop.models.text import item_text_embeddings

    ds = load_dataset(dataset)
    t0 = time.perf_counter()
    emb = item_text_embeddings(ds, cache=False)
    seconds = time.perf_counter() - t0
    item_text_embeddings(ds)  # fill the cache for the runs
    row = {"benchmark": "text_and_cl", "dataset": dataset, "method": "minilm", "variant": "",
           "seed": 0, "split": "embed", "metric": "embed_s", "value": seconds,
           "n": emb.shape[0], "git_sha": git_sha(), "machine": machine()}  # fmt: skip
    pd.DataFrame([row]).to_csv(out / "tidy.csv", index=False)


def table(tidy: pd.DataFrame, per_user: pd.DataFrame, method: str) -> str:
    """One row per variant: warm and cold NDCG@10 / HR@10 with CIs and tests against id."""
    pu = per_user[per_user["method"] == method]
    tr = tidy[(tidy["method"] == method) & (tidy["split"] == "train")]
    head = ["variant"]
    for g in GROUPS:
        head += [f"{g} ndcg@10", f"{g} hr@10", f"{g} Δndcg vs id (p)"]
    head += ["fit s", "time to best s"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    tests: dict[str, dict[str, tuple[float, float]]] = {}
    for g in GROUPS:
        wide = pu[pu["group"] == g].groupby(["variant", "user"])["ndcg@10"].mean().unstack(0)
        others = [v for v in VARIANTS if v != "id" and v in wide and "id" in wide]
        found = paired_tests_holm({v: (wide[v].to_numpy(), wide["id"].to_numpy())
                                   for v in others})  # fmt: skip
        tests[g] = {v: (t.mean_diff, p) for v, (t, p) in found.items()}
    for v in [v for v in VARIANTS if v in set(pu["variant"])]:
        cells = [v]
        for g in GROUPS:
            sub = pu[(pu["variant"] == v) & (pu["group"] == g)]
            for m in ("ndcg@10", "hr@10"):
                ci = mean_ci(sub.groupby("user")[m].mean().to_numpy())
                cells.append(f"{ci.mean:.4f} [{ci.low:.4f}, {ci.high:.4f}] (n={ci.n})"
                             if m == "ndcg@10" else f"{ci.mean:.4f}")  # fmt: skip
            if v in tests[g]:
                d, p = tests[g][v]
                cells.append(f"{d:+.4f} ({p:.1e}{' *' if p < 0.05 else ''})")
            else:
                cells.append("—")
        t = tr[tr["variant"] == v].groupby("metric")["value"].mean()
        cells += [f"{t.get('fit_s', np.nan):.0f}", f"{t.get('time_to_best_s', np.nan):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--cell", nargs=4, metavar=("DATASET", "METHOD", "VARIANT", "OUT"),
                    help=argparse.SUPPRESS)  # fmt: skip
    ap.add_argument("--embed-cell", nargs=2, metavar=("DATASET", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.cell:
        dataset, method, variant, out = args.cell
        run_cell(dataset, method, variant, seeds, Path(out), args.quiet, args.max_epochs)
        return 0
    if args.embed_cell:
        embed_cell(args.embed_cell[0], Path(args.embed_cell[1]))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="text_and_cl-"))
    frames, sections = [], []
    for dataset in args.datasets.split(","):
        child = child_options(args)
        cells = [(f"{dataset}-embed", ["--embed-cell", dataset])]
        cells += [(f"{dataset}-{m}-{v}", [*child, "--cell", dataset, m, v])
                  for m in args.methods.split(",") for v in args.variants.split(",")]  # fmt: skip
        tidy_parts, per_parts = run_cells(__file__, work, cells)
        tidy = pd.concat(tidy_parts, ignore_index=True)
        per_user = pd.concat(per_parts, ignore_index=True)
        frames.append(tidy)
        embed = tidy[tidy["metric"] == "embed_s"].iloc[0]
        text = [f"### {dataset}: cold-start split (newest {COLD_FRAC.get(dataset, 0.1):.0%} of "
                f"items held out), test, {len(seeds)} seeds\n",
                f"Embedding all {int(embed['n']):,} items with all-MiniLM-L6-v2 on this CPU: "
                f"{embed['value']:.1f} s (cached afterwards).\n"]  # fmt: skip
        for method in args.methods.split(","):
            text += [f"**{method}**\n", table(tidy, per_user, method), ""]
        opts = {m: PARAMS.get(dataset, {}).get(m, {}) for m in args.methods.split(",")}
        text.append(f"Options: `{opts}`, λ = {CL_WEIGHT} for `+cl`.\n")
        sections.append("\n".join(text))
        print(sections[-1], flush=True)
    write_results(RESULTS, "text_and_cl", frames, sections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
