"""Side-by-side comparison of several models on one dataset, split and set of seeds.

Every model sees the same split and is evaluated by the same protocol. The table shows the
mean over users (averaged over seeds) with a 95% interval, and a paired test against a
baseline on the same users, Holm-corrected over the compared models.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recloop.config import config_hash
from recloop.eval.stats import holm_bonferroni, mean_ci, paired_test
from recloop.progress import track
from recloop.runs import RunSpec, git_sha, machine, prepare_data, train_run

TIDY_COLUMNS = ["benchmark", "dataset", "method", "variant", "seed", "split", "metric", "value",
                "ci_low", "ci_high", "n", "git_sha", "config_hash", "machine"]  # fmt: skip
TABLE_METRICS = ("hr@10", "ndcg@10", "mrr@10", "ndcg@10_pos", "coverage@10")
#: Extra columns when the split has cold and warm target groups (``--split cold``).
COLD_METRICS = ("ndcg@10_warm", "hr@10_warm", "ndcg@10_cold", "hr@10_cold")
_GROUP_SUFFIXES = ("pos", "cold", "warm")


def compare(
    base: RunSpec,
    models: list[str],
    seeds: list[int],
    out: str | Path | None = None,
    benchmark: str = "compare",
    progress: bool = True,
    params: dict[str, dict[str, Any]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and evaluate ``models × seeds`` on ``base.data`` with one split.

    Args:
        base: data, split, ks and k-core options shared by every run.
        models: registered model names.
        seeds: seeds; each (model, seed) is one run.
        out: if given, every run's directory is kept under ``out/<model>-s<seed>``.
        benchmark: the ``benchmark`` column of the tidy rows.
        progress: progress bars.
        params: per-model options.

    Returns:
        ``(rows, per_user)``: tidy rows (one figure a row, test and valid, plus ``fit_s``
        and ``eval_s``) and the per-user test metrics of every run.
    """
    data = prepare_data(base)
    sha, host = git_sha(), machine()
    rows: list[dict[str, Any]] = []
    per_user: list[pd.DataFrame] = []
    cells = [(m, s) for m in models for s in seeds]
    for name, seed in track(cells, len(cells), "compare", progress):
        spec = replace(base, model=name, seed=seed, params=dict((params or {}).get(name, {})))
        run_dir = Path(out) / f"{name}-s{seed}" if out is not None else None
        res = train_run(spec, run_dir, progress=False, data=data)
        labels = {"benchmark": benchmark, "dataset": base.data, "method": name, "variant": "",
                  "seed": seed, "git_sha": sha, "machine": host}  # fmt: skip
        rows.extend(run_rows(res, labels))
        per_user.append(res["test"].per_user.assign(method=name, seed=seed))
    tidy = pd.DataFrame(rows).reindex(columns=TIDY_COLUMNS)
    return tidy, pd.concat(per_user, ignore_index=True)


def run_rows(res: dict[str, Any], labels: dict[str, Any]) -> list[dict[str, Any]]:
    """Tidy rows of one :func:`~recloop.runs.train_run` result: valid and test metrics, fit and
    evaluation seconds, parameters, memory and epochs (``labels`` fill the other columns)."""
    labels = {**labels, "config_hash": config_hash(res["config"])}
    rows: list[dict[str, Any]] = []
    for stage in ("valid", "test"):
        rows.extend(res[stage].tidy(**labels))
    rows.append({**labels, "split": "train", "metric": "fit_s", "value": res["metrics"]["fit_s"]})
    if "fit_cpu_s" in res["metrics"]:  # CPU seconds of every thread: a busy machine's wall
        rows.append({**labels, "split": "train", "metric": "fit_cpu_s",  # time overstates cost
                     "value": res["metrics"]["fit_cpu_s"]})  # fmt: skip
    rows.append({**labels, "split": "test", "metric": "eval_s", "value": res["test"].eval_s})
    rows.extend({**labels, "split": "train", "metric": m, "value": v}
                for m, v in _cost(res["metrics"]).items())  # fmt: skip
    return rows


def _cost(metrics: dict[str, Any]) -> dict[str, float]:
    """What a run cost: parameters, peak memory so far, and for torch models the epochs."""
    import resource

    # ru_maxrss is KiB on Linux, bytes on macOS; it is the process's peak so far.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"params": float(metrics.get("params", 0)),
           "peak_rss_mb": rss / (1 << 20 if sys.platform == "darwin" else 1 << 10)}  # fmt: skip
    tr = metrics.get("training")
    if tr:
        out.update(epochs_to_best=tr["best_epoch"], epochs=tr["epoch"],
                   time_to_best_s=tr["time_to_best_s"], s_per_epoch=tr["s_per_epoch"])  # fmt: skip
    else:
        out["time_to_best_s"] = metrics["fit_s"]  # closed form: done when fitted
    return out


def summary_table(
    tidy: pd.DataFrame,
    per_user: pd.DataFrame,
    baseline: str | None = None,
    metrics: tuple[str, ...] = TABLE_METRICS,
    test_metric: str = "ndcg@10",
) -> pd.DataFrame:
    """One row per method: test metrics (mean over seeds of the user means) with 95% CIs,
    fit/eval seconds, and a paired test of ``test_metric`` against ``baseline``.

    The paired test averages each user's metric over seeds, pairs users across the two
    methods, and reports the Wilcoxon and t-test p-values, Holm-corrected across methods.
    """
    test = tidy[tidy["split"].isin(["test", "train"])]
    if set(COLD_METRICS) & set(test["metric"]):
        metrics = (*metrics, *(m for m in COLD_METRICS if m not in metrics))
    out = []
    for method, g in test.groupby("method", sort=False):
        row: dict[str, Any] = {"method": method, "seeds": g["seed"].nunique()}
        users = per_user[per_user["method"] == method]
        for m in (*metrics, "fit_s", "eval_s"):
            vals = g[g["metric"] == m]
            if len(vals) == 0:
                continue
            row[m] = vals["value"].mean()
            # Intervals are over users, on each user's metric averaged over seeds: the same
            # quantity the paired test compares, whatever the number of seeds.
            col, _, group = m.rpartition("_")
            if group not in _GROUP_SUFFIXES:
                group, col = "all", m
            if col in users:
                per = users[users["group"] == group].groupby("user")[col].mean()
                ci = mean_ci(per.to_numpy())
                row[f"{m}_ci"] = (ci.low, ci.high)
        out.append(row)
    table = pd.DataFrame(out)
    if baseline is not None and baseline in set(per_user["method"]):
        allu = per_user[per_user["group"] == "all"]
        means = allu.groupby(["method", "user"])[test_metric].mean().unstack(0)
        pvals, diffs = {}, {}
        for method in table["method"]:
            if method == baseline:
                continue
            pt = paired_test(means[method].to_numpy(), means[baseline].to_numpy())
            pvals[method] = (pt.wilcoxon_pvalue, pt.t_pvalue)
            diffs[method] = pt.mean_diff
        if pvals:
            names = list(pvals)
            adj_w = holm_bonferroni([pvals[n][0] for n in names])
            adj_t = holm_bonferroni([pvals[n][1] for n in names])
            table[f"diff_vs_{baseline}"] = table["method"].map(diffs)
            table["p_wilcoxon_holm"] = table["method"].map(dict(zip(names, adj_w, strict=True)))
            table["p_ttest_holm"] = table["method"].map(dict(zip(names, adj_t, strict=True)))
    return table


def markdown(table: pd.DataFrame, baseline: str | None = None) -> str:
    """Render :func:`summary_table` as a Markdown table (mean [95% CI])."""
    known = (*TABLE_METRICS, *COLD_METRICS, "fit_s", "eval_s")
    metric_cols = [c for c in table.columns if c in known]
    head = ["method", *metric_cols]
    has_p = "p_wilcoxon_holm" in table
    if has_p:
        head += [f"Δndcg@10 vs {baseline}", "p (Wilcoxon, Holm)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = [str(r["method"])]
        for m in metric_cols:
            v = r[m]
            if m in ("fit_s", "eval_s"):
                cells.append(f"{v:.2f}")
                continue
            ci = r.get(f"{m}_ci")
            if isinstance(ci, tuple) and np.isfinite(ci[0]):
                cells.append(f"{v:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]")
            else:
                cells.append(f"{v:.4f}")
        if has_p:
            d, p = r.get(f"diff_vs_{baseline}"), r.get("p_wilcoxon_holm")
            cells.append("—" if pd.isna(d) else f"{d:+.4f}")
            cells.append("—" if pd.isna(p) else (f"{p:.1e}" + (" *" if p < 0.05 else "")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(
    folder: Path, name: str, frames: list[pd.DataFrame], sections: list[str]
) -> pd.DataFrame:
    """Write a benchmark's tidy rows to ``folder/name.csv`` and its tables to ``name.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = pd.concat(frames, ignore_index=True).reindex(columns=TIDY_COLUMNS)
    rows.to_csv(folder / f"{name}.csv", index=False, float_format="%.6g")
    (folder / f"{name}.md").write_text("\n".join(sections))
    print(f"wrote {folder / f'{name}.csv'} ({len(rows)} rows)")
    return rows
