"""Classic baselines on ML-100K and ML-1M under recloop's protocol.

Frozen record of a finished study: RESULTS.md "Classic baselines (`baselines`)"; rerun only
to reproduce those figures. Its two main tables are the grid ``benchmarks/grids/baselines.toml``
(``recloop bench``; the report's offline table is the same :func:`recloop.bench.summary_table`
with the same paired tests against Popularity). The tie-rule table is no grid cell and lives
only here.

Writes tidy rows to ``benchmarks/results/baselines.csv`` and the Markdown tables to
``benchmarks/results/baselines.md`` (pasted into RESULTS.md). Deterministic models run once;
stochastic ones (random, bpr) run with three seeds.

    python benchmarks/baselines.py --datasets ml-100k,ml-1m --quiet
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recloop.bench import RunSpec, compare, markdown, summary_table, write_results
from recloop.data import leave_one_out, load_dataset
from recloop.eval.protocol import evaluate
from recloop.models import get_model
from recloop.runs import git_sha, machine

RESULTS = Path(__file__).resolve().parent / "results"
DETERMINISTIC = ["pop", "markov", "itemknn", "ease"]
STOCHASTIC = ["random", "bpr"]


def tie_rule_effect(seed_rows: list[dict]) -> str:
    """Popularity on ML-100K under four orders of interactions that share a timestamp.

    recloop's rule is the source's row order; the others show how much the choice matters.
    """
    ds = load_dataset("ml-100k")
    inter = ds.interactions
    item_id = ds.items.ids(inter["item"].to_numpy())
    variants = {
        "source row order (recloop's rule)": inter,
        "reversed source order": inter.iloc[::-1],
        "item id ascending": inter.iloc[np.argsort(item_id, kind="stable")],
        "item id descending": inter.iloc[np.argsort(-item_id, kind="stable")],
    }
    out = []
    for variant, frame in variants.items():
        d = ds.with_interactions(frame.reset_index(drop=True))
        split = leave_one_out(d)
        res = evaluate(get_model("pop")().fit(split.train), split, "test", ks=(10,))
        hr = res.metric("hr@10")
        out.append(f"| {variant} | {hr:.4f} | {res.metric('ndcg@10'):.4f} |")
        for m in ("hr@10", "ndcg@10"):
            seed_rows.append({"benchmark": "baselines", "dataset": "ml-100k", "method": "pop",
                              "variant": f"ties:{variant}", "seed": 0, "split": "test",
                              "metric": m, "value": res.metric(m), "git_sha": git_sha(),
                              "config_hash": "", "machine": machine()})  # fmt: skip
    head = "| tie order among equal timestamps | HR@10 | NDCG@10 |\n|---|---|---|"
    return head + "\n" + "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="ml-100k,ml-1m")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the stochastic models")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    frames, sections = [], []
    for name in args.datasets.split(","):
        t0 = time.perf_counter()
        base = RunSpec(model="pop", data=name)
        tidy_d, per_d = compare(
            base, DETERMINISTIC, [0], benchmark="baselines", progress=not args.quiet
        )
        tidy_s, per_s = compare(
            base, STOCHASTIC, seeds, benchmark="baselines", progress=not args.quiet
        )
        tidy = pd.concat([tidy_d, tidy_s], ignore_index=True)
        per_user = pd.concat([per_d, per_s], ignore_index=True)
        frames.append(tidy)
        table = summary_table(tidy, per_user, baseline="pop")
        order = ["random", "pop", "markov", "itemknn", "ease", "bpr"]
        table = table.set_index("method").loc[order].reset_index()
        text = markdown(table, "pop")
        sections.append(
            f"### {name} (test, leave-one-out, {time.perf_counter() - t0:.0f} s in all)\n\n{text}\n"
        )
        print(sections[-1], flush=True)
    extra: list[dict] = []
    if "ml-100k" in args.datasets:
        sections.append("### Tie rule (ML-100K, Popularity)\n\n" + tie_rule_effect(extra) + "\n")
        print(sections[-1])
    write_results(RESULTS, "baselines", [*frames, pd.DataFrame(extra)], sections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
