"""Offline RL heads (SQN, SAC, SA2C, CSA) and the auxiliary-loss control on GRU4Rec and SASRec.

Frozen record of a finished study: RESULTS.md "Offline RL heads (`offline_rl`)"; rerun only to
reproduce those figures. No grid: a grid tests every method against one baseline on all next
items, while this study tests each head against its own base and against the aux control, on
all and on liked next items, for two bases (GRU4Rec and SASRec). The SASRec heads against
plain SASRec are in the full grid (``benchmarks/grids/full.toml``, the report's "Large model or
RL?").

Every variant trains the same base encoder with the same options; ``base`` is the plain
supervised model, the others add one head from :mod:`recloop.rl.heads` with the papers'
settings (γ = 0.5, rewards 1.0 for a liked next item (rating ≥ 4) and 0.2 otherwise, 10
negatives for SA2C, a 2-epoch warm-up before SAC/SA2C weight the actor loss, CSA's item
mask on 10% of a sequence). Every variant, base included, gets the patience in ``PARAMS``. Test metrics at 5/10/20 over every next item and over liked
next items only (``likes_``), mean ± 95% CI over users (each user's value averaged over
seeds), with a paired test (Wilcoxon, Holm over the variants) of each variant against its
base and of each RL head against the aux control.

Each (dataset, base, variant, seed) runs in its own process, one after another (seed 0 of
every variant first), in the
folder ``WORK/DATASET-BASE-VARIANT-sSEED``; finished cells are reused, so a long run (ML-1M)
can be continued seed by seed in later sessions. Writes tidy rows
to ``benchmarks/results/offline_rl.csv`` and tables to ``benchmarks/results/offline_rl.md``.

    python benchmarks/offline_rl.py --datasets ml-100k,ml-1m --seeds 0,1,2 --quiet
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from cells import add_options, child_options, run_cells
from recloop.bench import RunSpec, compare, write_results
from recloop.eval.stats import mean_ci, paired_tests_holm

RESULTS = Path(__file__).resolve().parent / "results"
BASES = ["gru4rec", "sasrec"]
VARIANTS = ["base", "sqn", "sac", "sa2c", "csa", "aux"]
RL = ["sqn", "sac", "sa2c", "csa"]
GROUPS = {"all": "", "pos": "likes_"}  # evaluation group → tidy metric prefix
# The supervised bases' options (benchmarks/seq_models.py) with two changes, for base and
# heads alike. Patience is 20 epochs (ML-1M: 10, with lr decay after 4): a head trains each
# of its two networks on half the steps, so the ranking network crosses the early plateau
# (validation NDCG@10 ~0.035 on ML-100K, where the models learn popularity) at half the
# base's pace, and the bases' patience of 5-10 epochs stopped heads inside it. ML-1M runs
# at max_len 50: 36 runs at 200 would take most of a day on this CPU.
_ML1M = {"max_len": 50, "batch_size": 64, "lr": 3e-3, "bf16": True, "lr_decay": 0.5,
         "lr_patience": 4, "patience": 10, "epochs": 60}  # fmt: skip
PARAMS: dict[str, dict[str, dict[str, object]]] = {
    "ml-100k": {
        "sasrec": {"max_len": 50, "batch_size": 32, "dropout": 0.5, "patience": 20},
        "gru4rec": {"max_len": 50, "patience": 20},
    },
    "ml-1m": {"sasrec": _ML1M, "gru4rec": _ML1M},
}


def variant_params(dataset: str, base: str, variant: str) -> dict[str, object]:
    """The options of one variant: the base's options plus the head."""
    params = dict(PARAMS.get(dataset, {}).get(base, {}))
    if variant != "base":
        params["head"] = variant
    return params


def run_cell(dataset: str, base: str, variant: str, seeds: list[int], out: Path, quiet: bool,
             max_epochs: int | None) -> None:  # fmt: skip
    """Child process: one variant of one base on one dataset over the seeds."""
    params = variant_params(dataset, base, variant)
    if max_epochs is not None:
        params["epochs"] = max_epochs
    tidy, per_user = compare(RunSpec(model=base, data=dataset), [base], seeds,
                             benchmark="offline_rl", progress=not quiet, params={base: params})  # fmt: skip
    tidy["variant"] = variant
    # The protocol's positive-target group (``_pos``) is what this benchmark calls likes.
    pos = tidy["metric"].str.endswith("_pos")
    tidy.loc[pos, "metric"] = "likes_" + tidy.loc[pos, "metric"].str.removesuffix("_pos")
    tidy.to_csv(out / "tidy.csv", index=False)
    per_user[per_user["group"].isin(GROUPS)].assign(variant=variant).to_csv(
        out / "per_user.csv", index=False
    )


def _tests(pu: pd.DataFrame, group: str, reference: str, others: list[str]) -> dict:
    """Paired Wilcoxon tests of NDCG@10 of ``others`` against ``reference`` (Holm)."""
    wide = pu[pu["group"] == group].groupby(["variant", "user"])["ndcg@10"].mean().unstack(0)
    names = [v for v in others if v in wide and reference in wide]
    found = paired_tests_holm({v: (wide[v].to_numpy(), wide[reference].to_numpy())
                               for v in names})  # fmt: skip
    return {v: (t.mean_diff, p) for v, (t, p) in found.items()}


def _mark(test: tuple[float, float] | None) -> str:
    if test is None:
        return "—"
    d, p = test
    return f"{d:+.4f} ({p:.1e}{' *' if p < 0.05 else ''})"


def table(tidy: pd.DataFrame, per_user: pd.DataFrame, base: str) -> str:
    """One row per variant: NDCG@10 / HR@10 on all and liked next items, tests, cost."""
    pu = per_user[per_user["method"] == base]
    tr = tidy[(tidy["method"] == base) & (tidy["split"] == "train")]
    variants = [v for v in VARIANTS if v in set(pu["variant"])]
    vs_base = {g: _tests(pu, g, "base", [v for v in variants if v != "base"]) for g in GROUPS}
    vs_aux = {g: _tests(pu, g, "aux", [v for v in variants if v in RL]) for g in GROUPS}
    head = ["variant"]
    for prefix in GROUPS.values():
        name = prefix.rstrip("_") or "all"
        head += [f"{name} ndcg@10", f"{name} hr@10", f"{name} Δ vs base (p)",
                 f"{name} Δ vs aux (p)"]  # fmt: skip
    head += ["fit s", "epochs to best", "s/epoch"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for v in variants:
        cells = [v]
        for g in GROUPS:
            sub = pu[(pu["variant"] == v) & (pu["group"] == g)]
            ndcg = mean_ci(sub.groupby("user")["ndcg@10"].mean().to_numpy())
            hr = sub.groupby("user")["hr@10"].mean().mean()
            cells += [f"{ndcg.mean:.4f} [{ndcg.low:.4f}, {ndcg.high:.4f}]", f"{hr:.4f}",
                      _mark(vs_base[g].get(v)), _mark(vs_aux[g].get(v))]  # fmt: skip
        t = tr[tr["variant"] == v].groupby("metric")["value"].mean()
        cells += [f"{t.get('fit_s', np.nan):.0f}", f"{t.get('epochs_to_best', np.nan):.1f}",
                  f"{t.get('s_per_epoch', np.nan):.1f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap)
    ap.add_argument("--bases", default=",".join(BASES))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--cell", nargs=4, metavar=("DATASET", "BASE", "VARIANT", "OUT"),
                    help=argparse.SUPPRESS)  # fmt: skip
    ap.add_argument("--dataset-seeds", action="append", default=[], metavar="DATASET=SEEDS",
                    help="other seeds for one dataset, e.g. ml-1m=0 (repeatable)")  # fmt: skip
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.cell:
        dataset, base, variant, out = args.cell
        run_cell(dataset, base, variant, seeds, Path(out), args.quiet, args.max_epochs)
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="offline_rl-"))
    if any("=" not in o for o in args.dataset_seeds):
        ap.error("--dataset-seeds takes DATASET=SEEDS, e.g. ml-1m=0,1")
    per_dataset = dict(o.split("=", 1) for o in args.dataset_seeds)
    frames, sections = [], []
    for dataset in args.datasets.split(","):
        seeds = [int(s) for s in per_dataset.get(dataset, args.seeds).split(",")]
        cells = [(f"{dataset}-{b}-{v}-s{seed}",
                  [*child_options(args, str(seed)), "--cell", dataset, b, v])
                 for seed in seeds for b in args.bases.split(",")
                 for v in args.variants.split(",")]  # fmt: skip
        tidy_parts, per_parts = run_cells(__file__, work, cells)
        tidy = pd.concat(tidy_parts, ignore_index=True)
        per_user = pd.concat(per_parts, ignore_index=True)
        frames.append(tidy)
        text = [f"### {dataset}: leave-one-out, full ranking, test, {len(seeds)} seeds\n"]
        for base in args.bases.split(","):
            text += [f"**{base}**\n", table(tidy, per_user, base), ""]
        opts = {b: PARAMS.get(dataset, {}).get(b, {}) for b in args.bases.split(",")}
        text.append(f"Base options: `{opts}`; heads with the defaults of `recloop models "
                    f"sasrec` (gamma 0.5, rl_negatives 10, rl_warmup 2, csa_mask 0.1).\n")  # fmt: skip
        sections.append("\n".join(text))
        print(sections[-1], flush=True)
    write_results(RESULTS, "offline_rl", frames, sections)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
