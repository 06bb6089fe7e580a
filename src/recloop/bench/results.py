"""Bench results: the tidy rows, what a bench folder holds, and the tables computed from them.

Everything a report says is computed here or from here, out of the tidy rows (and the
per-user / per-session rows) that :func:`recloop.bench.run_grid` gathered (``results.csv``,
``per_user.csv``, ``sessions.csv``, ``curves.csv``), never from the experiments' code:

- :data:`TIDY_COLUMNS`, one figure a row, as every experiment writes them;
- offline ranking (:func:`summary_table`, :func:`markdown`): one row per method, test metrics
  as the mean over seeds of the user means with 95% intervals over users, and a paired
  Wilcoxon test against a baseline over users (seed-averaged), Holm-corrected across methods;
- the simulator (:func:`arena_tests`, :func:`arena_table`): every agent's return per session,
  paired with the greedy large model over the same start users;
- :class:`BenchData` and :func:`load_bench`: a bench folder read, with the offline and arena
  tests computed once per folder (:func:`offline_summary`, :func:`arena_tests_of`) and shared
  by the report's tables, sentences and plots (:mod:`~recloop.bench.report`,
  :mod:`~recloop.bench.summary`, :mod:`~recloop.bench.plots`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recloop.bench.cells import cell_states
from recloop.errors import DataError
from recloop.eval.stats import holm_bonferroni, mean_ci, paired_test

__all__ = [
    "TIDY_COLUMNS",
    "BenchData",
    "arena_table",
    "arena_tests",
    "arena_tests_of",
    "load_bench",
    "markdown",
    "offline_summary",
    "summary_table",
    "write_results",
]

TIDY_COLUMNS = ["benchmark", "dataset", "method", "variant", "seed", "split", "metric", "value",
                "ci_low", "ci_high", "n", "git_sha", "config_hash", "machine"]  # fmt: skip
TABLE_METRICS = ("hr@10", "ndcg@10", "mrr@10", "ndcg@10_pos", "coverage@10")
#: Extra columns when the split has cold and warm target groups (``--split cold``).
COLD_METRICS = ("ndcg@10_warm", "hr@10_warm", "ndcg@10_cold", "hr@10_cold")
_GROUP_SUFFIXES = ("pos", "cold", "warm")


# --------------------------------------------------------------------------- offline tables


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


# --------------------------------------------------------------------------- simulator tables


def arena_tests(sessions: pd.DataFrame, reference: str = "greedy", by_user: bool = True
                ) -> dict[tuple[str, str], tuple[Any, float]]:  # fmt: skip
    """Paired tests of every (agent, guardrail) against ``reference`` without the guardrail.

    Pairs are users, each user's return averaged over seeds first (the evaluation users are
    the same in every seed, so these are the independent units); ``by_user=False`` pairs
    (seed, start user) instead, which counts a user once per seed. Returns ``{key: (PairedTest, Holm-corrected Wilcoxon p)}``,
    corrected over all keys together.
    """
    ref = sessions[(sessions["method"] == reference) & (sessions["variant"] == "plain")]
    index = ["user"] if by_user else ["seed", "user"]

    def returns(frame: pd.DataFrame) -> pd.Series:
        return frame.groupby(index)["return"].mean()

    tests: dict[tuple[str, str], Any] = {}
    if len(ref):
        ref_v = returns(ref)
        for key in sessions[["method", "variant"]].drop_duplicates().itertuples(index=False,
                                                                                 name=None):  # fmt: skip
            if key == (reference, "plain"):
                continue
            sub = sessions[(sessions["method"] == key[0]) & (sessions["variant"] == key[1])]
            a = returns(sub)
            both = a.index.intersection(ref_v.index)
            if len(both) > 1:
                tests[key] = paired_test(a[both].to_numpy(), ref_v[both].to_numpy())
    adjusted: Any = holm_bonferroni([t.wilcoxon_pvalue for t in tests.values()]) if tests else []
    return {k: (t, float(p)) for (k, t), p in zip(tests.items(), adjusted, strict=True)}


def arena_table(tidy: pd.DataFrame, sessions: pd.DataFrame, reference: str = "greedy",
                by_user: bool = True,
                tests: dict[tuple[str, str], tuple[Any, float]] | None = None) -> str:  # fmt: skip
    """Markdown: one row per agent and guardrail setting, return compared with ``reference``.

    Return is the mean per session with a 95% CI over sessions (all seeds); Δ is the mean
    paired difference against ``reference`` without the guardrail (:func:`arena_tests`:
    users, or pairs of seed and user with ``by_user=False``), with Holm-corrected Wilcoxon
    p-values. Other columns are means over seeds. ``tests``: those tests, where the caller has
    them already.
    """
    from recloop.rl.agents import AGENTS

    # the agent registry's order; an agent outside it (ppo_sb3, of the rl extra) comes last
    order = {m: i for i, m in enumerate(AGENTS)}
    pairs = sessions[["method", "variant"]].drop_duplicates().itertuples(index=False, name=None)
    keys: list[tuple[str, str]] = sorted(
        pairs, key=lambda k: (order.get(k[0], 99), k[1] != "plain")
    )
    found = arena_tests(sessions, reference, by_user) if tests is None else tests
    paired = {k: t for k, (t, _) in found.items()}
    adjusted = {k: p for k, (_, p) in found.items()}
    head = ["agent", "guardrail", "return [95% CI]", f"Δ vs {reference} (p)", "ctr",
            "session length", "coverage", "diversity", "train s", "env steps/s"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for method, variant in keys:
        sub = sessions[(sessions["method"] == method) & (sessions["variant"] == variant)]
        ci = mean_ci(sub["return"].to_numpy())
        t = tidy[(tidy["method"] == method) & (tidy["variant"] == variant)]
        m = t.groupby("metric")["value"].mean()
        test = paired.get((method, variant))
        delta = "—" if test is None else (
            f"{test.mean_diff:+.3f} ({adjusted[(method, variant)]:.1e}"
            f"{' *' if adjusted[(method, variant)] < 0.05 else ''})"
        )  # fmt: skip
        lines.append("| " + " | ".join([
            method, "on" if variant == "guardrail" else "off",
            f"{ci.mean:.3f} [{ci.low:.3f}, {ci.high:.3f}]", delta, f"{m['ctr']:.3f}",
            f"{m['session_length']:.2f}", f"{m['coverage']:.3f}", f"{m['diversity']:.3f}",
            f"{m['train_s']:.0f}", f"{m['env_steps_per_s']:,.0f}",
        ]) + " |")  # fmt: skip
    return "\n".join(lines)


# --------------------------------------------------------------------------- bench folders


@dataclass
class BenchData:
    """What a bench folder holds."""

    name: str
    baseline: str | None
    rows: pd.DataFrame
    per_user: pd.DataFrame = field(default_factory=pd.DataFrame)
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    cells: list[dict[str, Any]] = field(default_factory=list)
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: per cell of ``cells``: ``done``, ``failed``, ``started <time> on <machine>`` (running,
    #: or stopped where that cannot be told), the same ending ``, stopped part-way`` (its
    #: process on this host is gone) or ``not run`` (empty: the folder has no ``cells/``, e.g.
    #: rows copied out of a bench, so states are unknown)
    states: list[str] = field(default_factory=list)
    #: results computed once per report (:func:`offline_summary`, the arena tests), by key
    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict, init=False, repr=False,
                                             compare=False)  # fmt: skip


def _read(path: Path) -> pd.DataFrame:
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:  # whole-file type inference: a long table's `variant` is not split into mixed types
        return pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def load_bench(folder: str | Path) -> BenchData:
    """Read a folder written by ``recloop bench``."""
    root = Path(folder)
    if not (root / "results.csv").exists():
        raise DataError(f"{root} holds no results.csv; run `recloop bench GRID --out {root}` first")
    meta = json.loads((root / "grid.json").read_text()) if (root / "grid.json").exists() else {}
    cells = list(meta.get("cells", []))
    return BenchData(
        name=str(meta.get("name", root.name)),
        baseline=meta.get("baseline"),
        rows=_read(root / "results.csv"),
        per_user=_read(root / "per_user.csv"),
        sessions=_read(root / "sessions.csv"),
        curves=_read(root / "curves.csv"),
        cells=cells,
        failures=_read(root / "failures.csv"),
        states=cell_states(root, cells),
    )


def label_of(frame: pd.DataFrame) -> np.ndarray:
    """``method-variant`` (just ``method`` without a variant) per row."""
    variant = frame["variant"].astype(object).where(frame["variant"].notna(), "").astype(str)
    return np.where(variant != "", frame["method"].astype(str) + "-" + variant, frame["method"])


def offline_summary(data: BenchData, dataset: str, baseline: str | None) -> pd.DataFrame:
    """One row per offline method on ``dataset`` (see the module docstring).

    Computed once per ``data``, dataset and baseline (its paired tests over users are the
    report's slowest part); the frame is shared, so callers must not modify it."""
    key = ("offline", dataset, baseline)
    if key not in data.memo:
        data.memo[key] = _offline_summary(data, dataset, baseline)
    table: pd.DataFrame = data.memo[key]
    return table


def _offline_summary(data: BenchData, dataset: str, baseline: str | None) -> pd.DataFrame:
    rows = data.rows[(data.rows["dataset"] == dataset) & data.rows["split"].isin(["test", "train"])]
    rows = rows[rows["method"].isin(_offline_methods(data))]
    per_user = data.per_user[data.per_user["dataset"] == dataset]
    if rows.empty or per_user.empty:  # nothing to pair (a folder gathered part-way)
        return pd.DataFrame(columns=["method"])
    tidy = rows.assign(method=label_of(rows))
    users = per_user.assign(method=label_of(per_user))
    table = summary_table(tidy, users, baseline=baseline)
    params = tidy[tidy["metric"] == "params"].groupby("method")["value"].mean()
    cpu = tidy[tidy["metric"] == "fit_cpu_s"].groupby("method")["value"].mean()
    return table.assign(params=table["method"].map(params), fit_cpu_s=table["method"].map(cpu))


def _offline_methods(data: BenchData) -> set[str]:
    return {c["method"] for c in data.cells if c.get("mode") == "offline"} or set(
        data.per_user["method"].unique() if len(data.per_user) else []
    )


def datasets_of(data: BenchData, mode: str) -> list[str]:
    """The datasets with ``offline`` (per-user) or ``simulator`` (per-session) rows, in order."""
    rows = data.per_user if mode == "offline" else data.sessions
    found = list(dict.fromkeys(rows["dataset"])) if len(rows) else []
    tidy = set(data.rows["dataset"]) if "dataset" in data.rows else set()
    return [d for d in found if d in tidy]  # per-user rows without tidy rows: no table


def arena_tests_of(data: BenchData, dataset: str) -> dict[tuple[str, str], tuple[Any, float]]:
    """Every simulator agent of ``dataset`` against greedy, paired over users
    (:func:`arena_tests`); computed once per ``data`` and dataset."""
    key = ("arena", dataset)
    if key not in data.memo:
        sessions = data.sessions[data.sessions["dataset"] == dataset]
        data.memo[key] = arena_tests(sessions, "greedy", by_user=True)
    found: dict[tuple[str, str], tuple[Any, float]] = data.memo[key]
    return found
