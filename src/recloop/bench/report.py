"""The report of a bench folder: Markdown and a self-contained HTML page, tables and plots.

Everything here is rendered from what :mod:`recloop.bench.results` reads and computes out of
the tidy rows (and the per-user / per-session rows) that :func:`recloop.bench.run_grid`
gathered: ``results.csv``, ``per_user.csv``, ``sessions.csv``.

- **Offline ranking**: per dataset, one row per method (``method-variant``): test metrics as
  the mean over seeds of the user means, a 95% interval over users of each user's
  seed-averaged metric, fit seconds and parameters, and a paired Wilcoxon test of NDCG@10
  against the baseline over users (seed-averaged), Holm-corrected across methods
  (:func:`recloop.bench.results.summary_table`).
- **Simulator**: per dataset, every agent's return per session with a 95% interval, and a
  paired test against the greedy large model on the same start users and seeds
  (:func:`recloop.bench.results.arena_table`).
- **Off-policy estimates**: relative error and interval coverage per estimator, target and
  log size in the simulator, and on the Open Bandit Dataset.

The report is one HTML file with its images embedded (matplotlib, no LaTeX, no network).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from recloop.bench.plots import plots
from recloop.bench.results import (
    BenchData,
    arena_table,
    arena_tests_of,
    datasets_of,
    load_bench,
    markdown,
    offline_summary,
)
from recloop.bench.summary import ranking_fidelity, summary_lines, verdict_lines

__all__ = ["diagnose_markdown", "ope_markdown", "provenance", "render", "write_report"]

PROTOCOL = """\
The protocol as the defaults set it (a grid can change the split, the cut-offs and the rewards;
each cell's resolved config is in its folder):

- **Split**: chronological leave-one-out per user: the last interaction is the test target,
  the second-to-last the validation target, the rest trains. Ties in time keep the source
  order.
- **Ranking**: full ranking over every item (no sampled negatives); items the user already
  has are excluded, except the target itself.
- **Metrics**: HR, NDCG at 5/10/20 per user, averaged; 95% intervals over users; paired
  Wilcoxon tests over users against the baseline, Holm-corrected across methods.
- **Reward convention** (RL heads and the simulator): a liked item (rating ≥ 4) is worth
  1.0, any other clicked item 0.2, no click 0.
- **Simulator**: users start from their logged history; clicks follow a calibrated
  response model fitted on the logs; its fidelity (held-out AUC, calibration error) is
  reported beside every simulated result, because a simulated gain is only as good as the
  simulator.
"""


def _offline_markdown(table: pd.DataFrame, baseline: str | None) -> str:
    text = markdown(table.drop(columns=["params", "fit_cpu_s"], errors="ignore"), baseline)
    if "params" in table:
        text += "\n\nParameters: " + ", ".join(
            f"{m} {int(p):,}" for m, p in zip(table["method"], table["params"], strict=True)
            if pd.notna(p)
        )  # fmt: skip
    return text


def ope_markdown(rows: pd.DataFrame) -> str:
    """Relative error (interval coverage) per target, estimator and log size, from tidy rows."""
    parts = []
    sim = rows[rows["dataset"].astype(str).str.startswith("sim-")]
    for dataset, g in sim.groupby("dataset", sort=False):
        g = g.assign(size=g["variant"].astype(int))
        keys = ["split", "method", "size"]
        err = g[g["metric"] == "rel_error"].groupby(keys, sort=False)["value"].mean()  # over seeds
        cov = g[g["metric"] == "ci_coverage"].groupby(keys)["value"].mean()
        truth = g[g["metric"] == "truth"].groupby("split")["value"].mean()
        sizes = sorted(g["size"].unique())
        head = "| target | truth | estimator | " + " | ".join(f"n={n:,}" for n in sizes) + " |"
        lines = [f"**{dataset}** (mean relative error over repetitions and seeds, and 95% CI "
                 "coverage)", "", head, "|---|---|---|" + "---|" * len(sizes)]  # fmt: skip
        pairs = list(dict.fromkeys((t, m) for t, m, _ in err.index))
        for target, method in pairs:
            cells = [f"{err[(target, method, n)]:.3f} ({cov[(target, method, n)]:.0%})"
                     for n in sizes]  # fmt: skip
            lines.append(
                f"| {target} | {truth[target]:.4f} | {method} | " + " | ".join(cells) + " |"
            )
        parts.append("\n".join(lines))
    obd = rows[rows["dataset"].astype(str).str.startswith("obd-")]
    full = obd[~obd["variant"].astype(str).str.contains("boot")]
    if len(full):
        obd_err = full[full["metric"] == "rel_error"].pivot_table(
            "value", "method", "dataset", sort=False
        )
        obd_cov = full[full["metric"] == "ci_coverage"].pivot_table("value", "method", "dataset")
        cols = list(obd_err.columns)
        lines = ["**Open Bandit Dataset**: Thompson sampling's click rate estimated from the "
                 "random policy's logs (relative error; ✓ when the 95% CI covers its on-policy "
                 "rate)", "", "| estimator | " + " | ".join(cols) + " |",
                 "|---|" + "---|" * len(cols)]  # fmt: skip
        covered = obd_cov.to_dict()  # campaign → estimator → coverage
        for method, r in obd_err.iterrows():
            marks = ["✓" if covered[c].get(method) == 1.0 else "✗" for c in cols]
            lines.append(f"| {method} | " + " | ".join(
                f"{r[c]:.3f} {m}" for c, m in zip(cols, marks, strict=True)) + " |")  # fmt: skip
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def diagnose_markdown(rows: pd.DataFrame) -> str:
    """The look-ahead diagnostic per dataset (means over seeds), from its tidy rows."""
    d = rows[(rows["method"] == "lookahead") & (rows["split"] == "sim")]
    if not len(d):
        return ""
    lines = ["| dataset | greedy return | myopic oracle | look-ahead | look-ahead / oracle | "
             "look-ahead / greedy |", "|---|---|---|---|---|---|"]  # fmt: skip
    for dataset, g in d.groupby("dataset", sort=False):
        m = g.groupby("metric")["value"].mean()  # mean returns over seeds; ratios of those means
        la, my, gr = m["lookahead_return"], m["myopic_return"], m["greedy_return"]
        lines.append(f"| {dataset} | {gr:.3f} | {my:.3f} | {la:.3f} | {la / my:.3f} | "
                     f"{la / gr:.3f} |")  # fmt: skip
    return "\n".join(lines) + (
        "\n\nA look-ahead search with the simulator's own users, against the best one-step "
        "policy that knows them (the myopic oracle): a ratio near 1 leaves little room for any "
        "long-horizon policy on this data; the ratio to the greedy large model bounds, loosely, "
        "what RL on top of it could gain in this simulator."
    )


# --------------------------------------------------------------------------- rendering


def _inline(text: str) -> str:
    """Escaped HTML of one line of Markdown, with its bold (``**…**``) and code (backtick) spans."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _md_table_to_html(text: str) -> str:
    """Pipe tables, lists, headings and paragraphs of our own Markdown to HTML, with bold
    and code spans (nothing else is needed)."""
    out: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= {"-", ":"}]
            cells = [[_inline(c.strip()) for c in r.strip().strip("|").split("|")] for r in rows]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:]
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            table.clear()

    items: list[str] = []

    def flush_items() -> None:
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            flush_items()
            table.append(line)
            continue
        flush()
        if line.lstrip().startswith("- "):
            items.append(line.strip()[2:])
            continue
        if line.startswith("  ") and items and line.strip():  # a wrapped list item
            items[-1] += " " + line.strip()
            continue
        flush_items()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 3)
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{_inline(line.strip())}</p>")
    flush()
    flush_items()
    return "\n".join(out)


def provenance(rows: pd.DataFrame) -> str:
    """One line: which code versions (``git_sha``) and machines made the rows, most rows
    first; empty when the rows carry neither column."""
    parts = []
    for column, what in (("git_sha", "code version"), ("machine", "machine kind")):
        if column not in rows or rows[column].isna().all():
            continue
        counts = rows[column].fillna("unknown").astype(str).value_counts()
        order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        listed = ", ".join(f"`{name}` {n:,} rows" for name, n in order)
        parts.append(f"{len(order)} {what}{'s' if len(order) > 1 else ''} ({listed})")
    if not parts:
        return ""
    return (
        "**Provenance**: the rows come from " + " and ".join(parts) + ". A sha ending "
        "`+dirty` ran with uncommitted code changes. A value repeats exactly only with the "
        "same code on the same kind of CPU."
    )


def _state_note(state: str) -> str:
    if state.startswith("started") and not state.endswith("stopped part-way"):
        return f"{state}, not finished"
    return state


def render(data: BenchData) -> tuple[str, str]:
    """The report as ``(markdown, html)``."""
    md: list[str] = [f"# recloop bench: {data.name}", ""]
    cells = data.cells
    if data.states:
        done, left = data.states.count("done"), data.states.count("not run")
        started = sum(st.startswith("started") for st in data.states)
        stopped = sum(st.endswith("stopped part-way") for st in data.states)
        md.append(f"{len(cells)} cells: {done} done, {data.states.count('failed')} failed, "
                  + (f"{started} started but not finished, " if started else "")
                  + f"{left} not run yet.")  # fmt: skip
        if stopped:
            md[-1] += (f" {stopped} of the started stopped part-way (their process on this host "
                       "is gone); a rerun resumes them.")  # fmt: skip
        if left or started:
            md[-1] += (" The tables and plots cover the done cells only; rerun "
                       "`recloop bench GRID --out FOLDER` to finish the grid.")  # fmt: skip
    else:
        md.append(f"{len(cells)} cells; {len(data.failures)} failed.")
    summary = summary_lines(data)
    verdict = verdict_lines(data)
    if verdict:
        md += ["", "## Large model or RL?", "", *(f"- {v}" for v in verdict)]
    need = diagnose_markdown(data.rows)
    if need:
        md += ["", "## Does this data need RL?", "", need]
    md += ["", "## Summary", ""] + [f"- {s}" for s in summary or ["No paired comparison."]]
    md += ["", "## Protocol", "", PROTOCOL]
    if line := provenance(data.rows):
        md += [line, ""]
    for dataset in datasets_of(data, "offline"):
        table = offline_summary(data, dataset, data.baseline)
        md += [f"## Offline ranking: {dataset}", "", _offline_markdown(table, data.baseline), ""]
    for dataset in datasets_of(data, "simulator"):
        tidy = data.rows[data.rows["dataset"] == dataset]
        sess = data.sessions[data.sessions["dataset"] == dataset]
        tests = arena_tests_of(data, dataset)
        md += [f"## Simulator: {dataset}", "", arena_table(tidy, sess, tests=tests),
               "", "Δ and p: paired over start users (each user's return averaged over seeds), "
               "Wilcoxon, Holm-corrected over the agents.", ""]  # fmt: skip
        fidelity = tidy[tidy["metric"].astype(str).str.startswith("world_")]
        if len(fidelity):
            world = fidelity.groupby("metric")["value"].mean()
            md += ["Simulator fidelity (held-out last interactions the simulator never saw): "
                   + ", ".join(f"{str(k)[6:]} {v:.3f}" for k, v in world.items()), ""]  # fmt: skip
        ranking = ranking_fidelity(data.rows, dataset)
        md += [f"Simulator fidelity, {ranking}." if ranking else "Simulator fidelity against "
               "real data (policy ranking) not measured in this bench: add a [fidelity] table.",
               ""]  # fmt: skip
    ope = ope_markdown(data.rows)
    if ope:
        md += ["## Off-policy estimates", "", ope, ""]
    if len(data.failures):
        md += ["## Failed cells", ""] + [
            f"- {r.cell}: {r.error}" for r in data.failures.itertuples()
        ]
    body = _md_table_to_html("\n".join(md))  # everything but the cell list
    states = data.states or [""] * len(cells)
    cell_list = [f"- {c['mode']} {c['dataset']} {c['method']}"
                 f"{'-' + c['variant'] if c.get('variant') else ''} seed {c['seed']}"
                 f"{'' if st in ('', 'done') else f' ({_state_note(st)})'}"
                 for c, st in zip(cells, states, strict=True)]  # fmt: skip
    md += ["", "## Cells", "", *cell_list]
    markdown_text = "\n".join(md) + "\n"
    images = plots(data)
    figures = "\n".join(f'<figure><img alt="{html.escape(c)}" src="data:image/png;base64,{b}"/>'
                     f"<figcaption>{html.escape(c)}</figcaption></figure>" for c, b in images)  # fmt: skip
    cell_html = "<ul>" + "".join(f"<li>{html.escape(c[2:])}</li>" for c in cell_list) + "</ul>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>recloop bench: {html.escape(data.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;font-size:0.85em;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 6px}}
th{{background:#f3f3f3}}figure{{margin:1em 0}}img{{max-width:100%}}</style></head><body>
{body}
<h2>Plots</h2>
{figures}
<h2>Cells</h2>
{cell_html}
</body></html>
"""
    return markdown_text, page


def write_report(folder: str | Path, data: BenchData | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into a bench folder; return their paths.

    ``data``: the folder's :func:`load_bench`, if the caller has it already."""
    root = Path(folder)
    markdown_text, page = render(data if data is not None else load_bench(root))
    md_path, html_path = root / "report.md", root / "report.html"
    md_path.write_text(markdown_text)
    html_path.write_text(page)
    return md_path, html_path
