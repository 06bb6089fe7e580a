"""`recloop report`: tables and the summary computed exactly from fixture rows; the HTML."""

from __future__ import annotations

import base64
import io
import json
import re

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from conftest import run_cli
from recloop.bench.report import ope_markdown, write_report
from recloop.bench.results import load_bench, offline_summary
from recloop.bench.summary import summary_lines, verdict_lines
from recloop.eval.stats import mean_ci

USERS = 30


@pytest.fixture()
def bench_folder(tmp_path):
    """Two offline methods × two seeds, two agents × two seeds, one OPE cell: made-up rows."""
    rng = np.random.default_rng(0)
    per_user, rows, sessions, cells = [], [], [], []
    base_ndcg = rng.uniform(0.0, 0.5, size=USERS)
    for method, shift in (("a", 0.0), ("b", 0.1)):
        for seed in (0, 1):
            ndcg = np.clip(base_ndcg + shift + rng.normal(0, 0.01, USERS), 0, 1)
            per_user.append(pd.DataFrame({"group": "all", "user": np.arange(USERS), "ndcg@10": ndcg,
                                          "hr@10": (ndcg > 0.2).astype(float), "method": method,
                                          "variant": "", "seed": seed, "dataset": "toy"}))  # fmt: skip
            for metric, value in (("ndcg@10", ndcg.mean()), ("hr@10", (ndcg > 0.2).mean())):
                rows.append({"benchmark": "bench", "dataset": "toy", "method": method, "variant": "",
                             "seed": seed, "split": "test", "metric": metric, "value": value})  # fmt: skip
            rows.append({"benchmark": "bench", "dataset": "toy", "method": method, "variant": "",
                         "seed": seed, "split": "train", "metric": "fit_s", "value": 1.5})  # fmt: skip
            rows.append({"benchmark": "bench", "dataset": "toy", "method": method, "variant": "",
                         "seed": seed, "split": "train", "metric": "params", "value": 100.0})  # fmt: skip
            cells.append({"mode": "offline", "dataset": "toy", "method": method, "variant": "",
                          "seed": seed})  # fmt: skip
    base_return = rng.uniform(0, 3, size=USERS)
    for method, shift in (("greedy", 0.0), ("reinforce_topk", 1.0)):
        for seed in (0, 1):
            ret = base_return + shift + rng.normal(0, 0.05, USERS)
            sessions.append(pd.DataFrame({"benchmark": "online_rl", "dataset": "toy", "method": method,
                                          "variant": "plain", "seed": seed, "split": "sim",
                                          "user": np.arange(USERS), "return": ret}))  # fmt: skip
            for metric in ("return", "ctr", "session_length", "coverage", "diversity", "train_s",
                           "env_steps_per_s"):  # fmt: skip
                value = ret.mean() if metric == "return" else 0.5
                if metric == "env_steps_per_s":  # and the agent's offline accuracy
                    rows.append({"benchmark": "bench", "dataset": "toy", "method": method,
                                 "variant": "plain", "seed": seed, "split": "sim",
                                 "metric": "offline_ndcg@10", "value": 0.1 - 0.05 * shift})  # fmt: skip
                rows.append({"benchmark": "bench", "dataset": "toy", "method": method,
                             "variant": "plain", "seed": seed, "split": "sim", "metric": metric,
                             "value": value})  # fmt: skip
        cells.append({"mode": "simulator", "dataset": "toy", "method": "agents", "variant": "",
                      "seed": 0})  # fmt: skip
    for size, err, cov in ((100, 0.4, 0.9), (1000, 0.1, 1.0)):
        for metric, value in (("rel_error", err), ("ci_coverage", cov), ("truth", 0.25)):
            rows.append({"benchmark": "bench", "dataset": "sim-toy", "method": "ips",
                         "variant": str(size), "seed": 0, "split": "uniform", "metric": metric,
                         "value": value})  # fmt: skip
    cells.append(
        {"mode": "ope", "dataset": "toy", "method": "estimators", "variant": "k1", "seed": 0}
    )
    for seed, (g, m, la) in enumerate(((1.0, 4.0, 4.2), (2.0, 4.0, 3.8))):
        for metric, value in (("greedy_return", g), ("myopic_return", m), ("lookahead_return", la),
                              ("lookahead_over_myopic", la / m), ("lookahead_over_greedy", la / g)):  # fmt: skip
            rows.append({"benchmark": "bench", "dataset": "toy", "method": "lookahead",
                         "variant": "", "seed": seed, "split": "sim", "metric": metric,
                         "value": value})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    pd.concat(per_user).to_csv(tmp_path / "per_user.csv", index=False)
    pd.concat(sessions).to_csv(tmp_path / "sessions.csv", index=False)
    curves = [{"epoch": e, "loss": 5.0 / e, "valid_ndcg@10": 0.02 * e, "train_s": e, "method": m,
               "variant": "", "seed": seed, "dataset": "toy"}
              for m in ("a", "b") for seed in (0, 1) for e in (1, 2, 3)]  # fmt: skip
    pd.DataFrame(curves).to_csv(tmp_path / "curves.csv", index=False)
    (tmp_path / "grid.json").write_text(
        json.dumps({"name": "toy", "baseline": "a", "cells": cells})
    )
    return tmp_path, pd.concat(per_user)


def test_offline_table_is_exact(bench_folder) -> None:
    folder, per_user = bench_folder
    table = offline_summary(load_bench(folder), "toy", "a").set_index("method")
    for method in ("a", "b"):
        user_means = per_user[per_user["method"] == method].groupby("user")["ndcg@10"].mean()
        assert table.loc[method, "ndcg@10"] == pytest.approx(user_means.mean())
        ci = mean_ci(user_means.to_numpy())
        assert table.loc[method, "ndcg@10_ci"] == pytest.approx((ci.low, ci.high))
    a = per_user[per_user["method"] == "a"].groupby("user")["ndcg@10"].mean()
    b = per_user[per_user["method"] == "b"].groupby("user")["ndcg@10"].mean()
    assert table.loc["b", "diff_vs_a"] == pytest.approx((b - a).mean())
    # one comparison: Holm leaves the Wilcoxon p-value as it is
    assert table.loc["b", "p_wilcoxon_holm"] == pytest.approx(sps.wilcoxon(b - a).pvalue)
    assert table.loc["b", "params"] == 100.0


def test_per_user_rows_without_tidy_rows_make_no_table(bench_folder) -> None:
    folder, per_user = bench_folder
    # per-user rows of a dataset whose tidy rows are missing (a folder gathered part-way)
    pd.concat([per_user, per_user.assign(dataset="other")]).to_csv(folder / "per_user.csv",
                                                                   index=False)  # fmt: skip
    data = load_bench(folder)
    assert offline_summary(data, "other", "a").empty
    assert len(offline_summary(data, "toy", "a")) == 2
    text = write_report(folder)[0].read_text()
    assert "## Offline ranking: toy" in text and "## Offline ranking: other" not in text


def test_summary_says_which_differences_are_significant(bench_folder) -> None:
    folder, _ = bench_folder
    lines = summary_lines(load_bench(folder))
    assert any(
        re.match(r"toy: b is significantly above a on NDCG@10 \(Δ \+0\.(09|10)", s) for s in lines
    )
    assert any("reinforce_topk's return per session is significantly above the greedy" in s
               for s in lines)  # fmt: skip


def test_the_verdict_is_computed_from_the_rows(bench_folder) -> None:
    folder, per_user = bench_folder
    grid = json.loads((folder / "grid.json").read_text())
    for cell in grid["cells"]:  # b trains an RL head on a's encoder
        if cell["method"] == "b":
            cell["config"] = {"model": "b", "params": {"head": "sqn"}}
    (folder / "grid.json").write_text(json.dumps(grid))
    # a popularity agent that beats the learner, and the simulator's fidelity
    sessions = pd.read_csv(folder / "sessions.csv")
    pop = sessions[sessions["method"] == "greedy"].assign(method="popularity")
    pop["return"] += 5.0
    pd.concat([sessions, pop]).to_csv(folder / "sessions.csv", index=False)
    rows = pd.read_csv(folder / "results.csv")
    fidelity = [{"dataset": "toy", "method": "world", "variant": "", "seed": s, "split": "sim",
                 "metric": m, "value": v + s / 100}
                for s in (0, 1) for m, v in (("world_auc", 0.8), ("world_ece", 0.01))]  # fmt: skip
    pop_rows = rows[(rows["method"] == "greedy") & (rows["split"] == "sim")].assign(
        method="popularity"
    )
    pd.concat([rows, pop_rows, pd.DataFrame(fidelity)]).to_csv(folder / "results.csv",
                                                               index=False)  # fmt: skip

    (line,) = verdict_lines(load_bench(folder))
    users = per_user.groupby(["method", "user"])["ndcg@10"].mean()
    a, b = users["a"], users["b"]
    p = sps.wilcoxon(b - a).pvalue  # one comparison: Holm leaves it as it is
    assert line.startswith(
        f"**toy**: Offline (test NDCG@10), the best of 1 RL heads, b, scores {b.mean():.4f} "
        f"against a's {a.mean():.4f} (Δ {(b - a).mean():+.4f}, significantly above, Holm p = "
        f"{p:.2g}); 1 of 1 are significantly above a. "
    )
    ret = sessions.groupby(["method", "user"])["return"].mean()
    g, r = ret["greedy"], ret["reinforce_topk"]
    p = min(1.0, 2 * sps.wilcoxon(r - g).pvalue)  # Holm over the two agents' tests
    assert (
        f"In the simulator (fidelity: AUC 0.805, ECE 0.015), the best agent that learns from "
        f"feedback, reinforce_topk, returns {r.mean():.2f} a session against the greedy large "
        f"model's {g.mean():.2f} (×{r.mean() / g.mean():.2f}, Δ {(r - g).mean():+.2f}, "
        f"significantly above, Holm p = {p:.2g}). popularity ({g.mean() + 5:.2f}), which does "
        "not learn, returns more than every learner" in line
    )
    # look-ahead over greedy: (4.2 / 1 + 3.8 / 2) / 2 over the two seeds
    assert line.endswith("A short look-ahead search returns ×3.05 the greedy large model's "
                         "return from the same start states.")  # fmt: skip
    assert "## Large model or RL?\n\n- **toy**: Offline" in write_report(folder)[0].read_text()
    # `recloop report` prints the answer too, where a newcomer running the README looks
    out = run_cli("report", str(folder)).stdout
    assert out.startswith("Large model or RL?\n- toy: Offline (test NDCG@10), the best of 1")
    assert out.endswith(f"wrote {folder / 'report.md'} and {folder / 'report.html'}\n")


def test_a_method_with_fewer_seeds_than_the_baseline_says_so(bench_folder) -> None:
    folder, _ = bench_folder
    grid = json.loads((folder / "grid.json").read_text())
    for cell in grid["cells"]:
        if cell["method"] == "b":
            cell["config"] = {"model": "b", "params": {"head": "sqn"}}
    (folder / "grid.json").write_text(json.dumps(grid))
    assert " (1 seed" not in verdict_lines(load_bench(folder))[0]
    # a part-run bench: b's seed 1 is not done yet
    for name in ("results.csv", "per_user.csv"):
        frame = pd.read_csv(folder / name)
        frame[(frame["method"] != "b") | (frame["seed"] == 0)].to_csv(folder / name, index=False)
    data = load_bench(folder)
    assert "the best of 1 RL heads, b (1 seed against a's 2), scores" in verdict_lines(data)[0]
    assert any(s.startswith("toy: b (1 seed against a's 2) is significantly above a")
               for s in summary_lines(data))  # fmt: skip


def test_the_verdict_without_a_test_or_a_greedy_return(bench_folder) -> None:
    folder, _ = bench_folder
    sessions = pd.read_csv(folder / "sessions.csv")
    # the learner met one user of the greedy model's, and greedy SASRec returned nothing
    sessions = sessions[(sessions["method"] == "greedy") | (sessions["user"] == 0)]
    sessions.loc[sessions["method"] == "greedy", "return"] = 0.0
    sessions.to_csv(folder / "sessions.csv", index=False)
    r = sessions.loc[sessions["method"] == "reinforce_topk", "return"].mean()
    (line,) = verdict_lines(load_bench(folder))
    assert (f"reinforce_topk, returns {r:.2f} a session against the greedy large model's 0.00 "
            "(too few users in common to test).") in line  # fmt: skip


def test_ope_table_from_rows(bench_folder) -> None:
    folder, _ = bench_folder
    text = ope_markdown(load_bench(folder).rows)
    assert "| uniform | 0.2500 | ips | 0.400 (90%) | 0.100 (100%) |" in text


def test_html_report_has_every_cell_and_decodable_images(bench_folder) -> None:
    folder, _ = bench_folder
    md_path, html_path = write_report(folder)
    page = html_path.read_text()
    for name in ("offline toy a seed 0", "offline toy b seed 1", "simulator toy agents seed 0",
                 "ope toy estimators-k1 seed 0"):  # fmt: skip
        assert name in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    # NDCG bars, cost, training curves, simulated return, accuracy vs return, coverage vs
    # return, OPE error
    assert len(images) == 7
    assert "accuracy against long-term return" in page
    assert "training curves against epoch and wall time" in page
    for b64 in images:
        img = mpimg.imread(io.BytesIO(base64.b64decode(b64)), format="png")
        assert img.shape[0] > 100 and img.shape[1] > 100
    text = md_path.read_text()
    assert "## Protocol" in text and "full ranking over every item" in text
    assert "## Summary" in text.split("## Protocol")[0]  # the summary comes first
    # the diagnostic heads the report: returns averaged over seeds, then their ratios:
    # 4.0 / 4.0 = 1.0 and 4.0 / 1.5 = 2.667
    assert text.index("Does this data need RL?") < text.index("## Summary")
    assert "| toy | 1.500 | 4.000 | 4.000 | 1.000 | 2.667 |" in text


def test_a_report_runs_each_paired_test_once(bench_folder, monkeypatch) -> None:
    """The offline table's tests over users feed the summary, the answer, the tables and the
    plots, and the arena's feed the summary, the answer and the table: each is computed once per
    report."""
    import recloop.bench.report as report
    import recloop.bench.results as results

    calls: list[str] = []
    offline, tests = results._offline_summary, results.arena_tests
    monkeypatch.setattr(results, "_offline_summary",
                        lambda *a: calls.append("offline") or offline(*a))  # fmt: skip
    monkeypatch.setattr(
        results, "arena_tests", lambda *a, **k: calls.append("arena") or tests(*a, **k)
    )
    folder, _ = bench_folder
    data = load_bench(folder)
    first = report.render(data)
    assert sorted(calls) == ["arena", "offline"]  # one dataset: one of each
    assert verdict_lines(data) and summary_lines(data)
    assert sorted(calls) == ["arena", "offline"]
    assert report.render(load_bench(folder)) == first  # the shared results change nothing


def test_the_report_says_which_code_and_machines_made_the_rows(bench_folder) -> None:
    folder, _ = bench_folder
    rows = pd.read_csv(folder / "results.csv")
    assert "Provenance" not in write_report(folder)[0].read_text()  # rows without the columns
    n = len(rows)
    rows["git_sha"] = ["aaa"] * 3 + ["ccc+dirty"] * 3 + ["bbb"] * (n - 6)
    rows["machine"] = "x86_64-avx2-2cpu"
    rows.to_csv(folder / "results.csv", index=False)
    md_path, html_path = write_report(folder)
    line = (
        f"**Provenance**: the rows come from 3 code versions (`bbb` {n - 6:,} rows, `aaa` 3 "
        f"rows, `ccc+dirty` 3 rows) and 1 machine kind (`x86_64-avx2-2cpu` {n:,} rows)."
    )
    text = md_path.read_text()
    assert line in text and text.index("## Protocol") < text.index(line)
    page = html_path.read_text()  # the HTML renders the bold and code spans
    assert (
        "<p><strong>Provenance</strong>: the rows come from 3 code versions (<code>bbb</code>"
        in page
    )
    assert "<li><strong>Split</strong>: chronological leave-one-out per user" in page
