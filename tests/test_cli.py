"""CLI smoke tests on tiny budgets, run as a user runs them (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import typer
from typer.main import get_command as click_command
from typer.testing import CliRunner

from conftest import run_cli
from recloop.cli.options import PREP_DEFAULTS, Data, Prep, Quiet, prep_options

run = run_cli


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        for t, i in enumerate(rng.choice(30, size=8, replace=False)):
            rows.append((f"user{u}", int(i), 100 * u + t, int(rng.integers(1, 6))))
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    pd.DataFrame(rows, columns=["uid", "movie", "ts", "stars"]).to_csv(path, index=False)
    return path


COLS = "user=uid,item=movie,timestamp=ts,rating=stars"


def test_help_does_not_import_torch() -> None:
    code = ("import sys; sys.argv = ['recloop', '--help']\nfrom recloop.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nprint('TORCH', 'torch' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "TORCH False" in out.stdout and "train" in out.stdout


def test_data_info_ml100k() -> None:
    out = run("data", "info", "ml-100k", "--json")
    stats = json.loads(out.stdout)
    assert (stats["n_users"], stats["n_items"], stats["n_interactions"]) == (943, 1682, 100000)


def test_train_evaluate_recommend_round_trip(tiny_csv, tmp_path) -> None:
    out = tmp_path / "run"
    run("train", "itemknn", "--data", str(tiny_csv), "--columns", COLS, "--seed", "3",
        "--out", str(out), "--quiet", "-p", "neighbours=20")  # fmt: skip
    for name in (
        "config.json",
        "metrics.json",
        "per_user_test.csv",
        "vocab.json",
        "model/model.json",
        "model/model.safetensors",
    ):
        assert (out / name).exists(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["params"]["neighbours"] == 20 and cfg["seed"] == 3 and cfg["git_sha"]
    saved = json.loads((out / "metrics.json").read_text())
    ev = run("evaluate", str(out), "--quiet")
    assert f"{saved['test']['all']['ndcg@10']['mean']:.4f}" in ev.stdout  # same numbers again
    rec = run("recommend", str(out), "--user", "user5", "-k", "3")
    lines = [line for line in rec.stdout.splitlines() if line.strip()[:2] in ("1.", "2.", "3.")]
    assert len(lines) == 3
    seen = {str(m) for m in pd.read_csv(tiny_csv).query("uid == 'user5'")["movie"]}
    assert not any(f"[item {s}," in rec.stdout for s in seen)


def test_compare_prints_table_with_paired_test(tiny_csv, tmp_path) -> None:
    out = run("compare", "--data", str(tiny_csv), "--columns", COLS, "--models", "pop,ease",
              "--seeds", "0,1", "--out", str(tmp_path / "cmp"), "--quiet")  # fmt: skip
    assert (
        "| pop |" in out.stdout and "| ease |" in out.stdout and "p (Wilcoxon, Holm)" in out.stdout
    )
    tidy = pd.read_csv(tmp_path / "cmp" / "results.csv")
    assert {"benchmark", "dataset", "method", "variant", "seed", "split", "metric", "value",
            "git_sha", "config_hash", "machine"} <= set(tidy.columns)  # fmt: skip
    assert set(tidy["seed"]) == {0, 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "nosuchmodel", "--out", "x"), "unknown model 'nosuchmodel'; available:"),
        (("train", "ease", "--out", "x", "-p", "l2=abc"), "option 'l2' must be a float"),
        (("train", "ease", "--out", "x", "-p", "alpha=1"), "unknown option(s) ['alpha']"),
        (("data", "info", "/no/such/file.csv"), "no dataset '/no/such/file.csv'"),
        (("recommend", "/no/such/run", "--user", "1"), "is not a recloop run directory"),
        (("compare", "--seeds", "a,b"), "--seeds takes comma-separated integers"),
    ],
)
def test_bad_input_gets_one_line_error(args, message) -> None:
    proc = run(*args, ok=False)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_user_is_a_clear_error(tiny_csv, tmp_path) -> None:
    out = tmp_path / "run"
    run("train", "pop", "--data", str(tiny_csv), "--columns", COLS, "--out", str(out), "--quiet")
    proc = run("recommend", str(out), "--user", "nobody", ok=False)
    assert proc.returncode == 2 and "unknown user id(s) ['nobody']" in proc.stderr


def test_wrong_flag_is_a_usage_error() -> None:
    proc = run("evaluate", "x", "--no-such-flag", ok=False)
    assert proc.returncode == 2 and "No such option" in proc.stderr
    proc = run("train", "ease", "--out", "x", "--no-such-flag", ok=False)
    assert proc.returncode == 2 and "unknown option --no-such-flag for ease; its options: --l2" in (
        proc.stderr
    )


def test_train_a_torch_model_with_config_flags_then_resume(tiny_csv, tmp_path) -> None:
    out = tmp_path / "run"
    args = ("train", "sasrec", "--data", str(tiny_csv), "--columns", COLS, "--out", str(out),
            "--quiet", "--max-len", "5", "--dim=8", "--no-bf16", "--dropout", "0.1")  # fmt: skip
    run(*args, "--epochs", "2")
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["params"]["max_len"], cfg["params"]["dim"], cfg["params"]["epochs"]) == (5, 8, 2)
    first = json.loads((out / "metrics.json").read_text())
    assert first["training"]["epoch"] == 2 and first["params"] > 0
    assert (out / "train" / "last.json").exists()
    # Same command with more epochs: picks up at epoch 2 instead of starting over. Its cost
    # counts the checkpoint's seconds too (made large here, as for a long first part).
    last = json.loads((out / "train" / "last.json").read_text())
    assert last["state"]["cpu_s"] > 0
    last["state"].update(train_s=1000.0, cpu_s=900.0)
    (out / "train" / "last.json").write_text(json.dumps(last))
    run(*args, "--epochs", "3")
    metrics = json.loads((out / "metrics.json").read_text())
    second = metrics["training"]
    assert second["epoch"] == 3 and metrics["resumed_from_epoch"] == 2
    assert second["curve"][:2] == first["training"]["curve"]
    assert metrics["fit_s"] > 1000.0 and 900.0 < metrics["fit_cpu_s"] < metrics["fit_s"]
    listing = run("models", "sasrec").stdout
    assert "--max-len 200" in listing and "--heads 1" in listing and "ease" not in listing


def test_cold_split_with_text_items_and_contrastive_loss(tiny_csv, tmp_path) -> None:
    out = tmp_path / "cold"
    proc = run("train", "gru4rec", "--data", str(tiny_csv), "--columns", COLS, "--out", str(out),
               "--quiet", "--split", "cold", "--cold-frac", "0.2", "--item-repr", "text",
               "--cl-weight", "0.1", "--epochs", "2", "--max-len", "5", "--dim", "8")  # fmt: skip
    assert "ndcg@10 cold" in proc.stdout and "ndcg@10 warm" in proc.stdout
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["split"], cfg["cold_frac"], cfg["params"]["item_repr"]) == ("cold", 0.2, "text")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["cold"]["ndcg@10"]["n"] > 0 and metrics["test"]["warm"]["hr@10"]["n"] > 0
    assert "loss_cl" in metrics["training"]["curve"][0]
    again = run("evaluate", str(out), "--quiet")
    assert "ndcg@10 cold" in again.stdout
    bad = run("train", "sasrec", "--out", str(tmp_path / "x"), "--item-repr", "image", ok=False)
    assert bad.returncode == 2 and "item_repr must be one of" in bad.stderr
    bad = run("train", "pop", "--out", str(tmp_path / "y"), "--split", "cold", "--cold-frac",
              "2", ok=False)  # fmt: skip
    assert bad.returncode == 2 and "cold_frac must be in (0, 1)" in bad.stderr


def test_data_embed_lists_neighbours_by_text() -> None:
    out = run("data", "embed", "ml-100k", "--like", "50", "-k", "2", "--quiet").stdout
    assert "1682 items × 384 dims from minilm" in out
    neighbours = out.split("nearest to 'Star Wars (1977)")[1]
    assert "Return of the Jedi (1983)" in neighbours and "Empire Strikes Back" in neighbours
    bad = run("data", "embed", "ml-100k", "--template", "{title} {director}", ok=False)
    assert bad.returncode == 2 and "unknown field(s) ['director']" in bad.stderr


def test_train_with_an_rl_head_reports_likes(tiny_csv, tmp_path) -> None:
    out = tmp_path / "rl"
    proc = run("train", "gru4rec", "--data", str(tiny_csv), "--columns", COLS, "--out", str(out),
               "--quiet", "--head", "sa2c", "--rl-warmup", "1", "--epochs", "2", "--dim", "8")  # fmt: skip
    assert "ndcg@10 likes" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["pos"]["ndcg@10"]["n"] > 0
    assert {"loss_ce", "loss_td"} <= set(metrics["training"]["curve"][0])
    assert "ndcg@10 likes" in run("evaluate", str(out), "--quiet").stdout
    bad = run("train", "sasrec", "--out", str(tmp_path / "x"), "--head", "dqn", ok=False)
    assert bad.returncode == 2 and "head must be one of" in bad.stderr
    bad = run("train", "sasrec", "--out", str(tmp_path / "x"), "--gamma", "0.9", ok=False)
    assert bad.returncode == 2 and "['gamma'] need an RL head" in bad.stderr
    assert "--head 'sqn'" in run("models", "sasrec+rl").stdout


def test_sim_fidelity_writes_its_report(tiny_csv, tmp_path) -> None:
    out = tmp_path / "fid"
    proc = run("sim", "fidelity", "--fit-only", "--data", str(tiny_csv), "--columns", COLS,
               "--sessions", "50", "--param", "slate_size=3", "--out", str(out),
               "--quiet")  # fmt: skip
    assert "world_auc" in proc.stdout and "world_ctr" in proc.stdout
    payload = json.loads((out / "fidelity.json").read_text())
    assert payload["sim"]["slate_size"] == 3
    figures = payload["figures"]
    assert 0.0 <= figures["world_auc"] <= 1.0 and figures["real_sessions"] >= 40
    assert figures["world_ctr"] > figures["random_ctr"]
    assert (out / "fidelity.png").stat().st_size > 10_000
    bad = run("sim", "fidelity", "--fit-only", "--data", str(tiny_csv), "--columns", COLS,
              "--param", "slate=3", ok=False)  # fmt: skip
    assert bad.returncode == 2 and "unknown option(s) ['slate']" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_sim_fidelity_prints_the_panel(tmp_path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):  # users rate the film after their last one, over one shared span
        pos = int(rng.integers(0, 80))
        for j in range(12):
            rows.append((f"user{u}", pos % 80, 10_000 + 60 * j + u, int(rng.integers(3, 6))))
            pos += 1 if rng.random() < 0.8 else 3
    path = tmp_path / "chain.csv"
    pd.DataFrame(rows, columns=["uid", "movie", "ts", "stars"]).to_csv(path, index=False)
    out = tmp_path / "panel"
    proc = run("sim", "fidelity", "--data", str(path), "--columns", COLS, "--members",
               "random,popularity,markov,ease", "--worlds", "ease,bpr", "--repeats", "1",
               "--cut-frac", "0.2", "--param", "session_cap=5", "--out", str(out),
               "--quiet")  # fmt: skip
    assert "vs replay" in proc.stdout and "default world" in proc.stdout
    rows_out = pd.read_csv(out / "sim_fidelity.csv")
    # each world, and its choice model on the replay's states (the open loop)
    assert set(rows_out["method"]) == {"ease", "bpr", "ease#open", "bpr#open"}
    tau = rows_out.query("metric == 'kendall_tau' and variant == 'replay'")["value"]
    assert len(tau) == 4 and tau.between(-1, 1).all()
    assert (rows_out["metric"] == "default_world").sum() == 1
    panel = pd.read_csv(out / "sim_fidelity_panel.csv")
    replay = panel.query("variant == 'replay'").set_index("method")["value"]
    assert replay["markov"] > replay["random"]  # the rule's policy wins on the real logs
    bad = run("sim", "fidelity", "--data", str(path), "--columns", COLS, "--worlds", "nope",
              ok=False)  # fmt: skip
    assert bad.returncode == 2 and "unknown world" in bad.stderr and "Traceback" not in bad.stderr


def test_sim_agents_compares_with_the_greedy_model(tiny_csv, tmp_path) -> None:
    out = tmp_path / "agents"
    args = ["sim", "agents", "--data", str(tiny_csv), "--columns", COLS, "--agents",
            "random,popularity,greedy,thompson,reinforce_topk", "--steps", "5", "--n-envs", "4",
            "--eval-users", "10", "--param", "slate_size=3", "--param", "session_cap=5",
            "--guardrail", "--out", str(out), "--save-runs", str(tmp_path / "runs"),
            "--cache", str(tmp_path / "fits"), "--quiet"]  # fmt: skip
    proc = run(*args)
    assert "Δ vs greedy" in proc.stdout
    # the diagnostic on the same data and seed loads the arena's greedy fit from the cache
    # (beside it, the world's response model: the cache holds every fit of the run)
    (fit,) = [p for p in (tmp_path / "fits").iterdir() if p.name.startswith("sasrec-")]
    assert any(p.name.startswith("ease-") for p in (tmp_path / "fits").iterdir())
    diag = run("diagnose", "--data", str(tiny_csv), "--columns", COLS, "--users", "5",
               "--horizon", "1", "--rollouts", "1", "--candidates", "2", "--cache",
               str(tmp_path / "fits")).stdout  # fmt: skip
    assert f"sasrec: loaded the cached fit {fit}" in diag and "look-ahead / greedy" in diag
    # the trained REINFORCE agent (no guardrail) is a run that `recloop recommend` reads
    (saved,) = [p for p in (tmp_path / "runs").iterdir() if p.name.endswith("-reinforce_topk-s0")]
    assert f"runs in {tmp_path / 'runs'}: {saved.name}" in proc.stdout
    rec = run("recommend", str(saved), "--user", "user5", "-k", "3").stdout
    assert len([line for line in rec.splitlines() if line.strip()[:2] in ("1.", "2.", "3.")]) == 3
    # it records the CSV's path and columns, so `recloop evaluate` reloads the same data
    cfg = json.loads((saved / "config.json").read_text())
    assert (cfg["data"], cfg["columns"]) == (
        str(tiny_csv),
        dict(kv.split("=") for kv in COLS.split(",")),
    )
    ev = run("evaluate", str(saved), "--quiet").stdout
    metrics = json.loads((saved / "metrics.json").read_text())
    assert f"{metrics['test']['all']['ndcg@10']['mean']:.4f}" in ev
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["method"]) == {"random", "popularity", "greedy", "thompson", "reinforce_topk"}
    assert set(rows["variant"]) == {"plain", "guardrail"}
    cov = rows[rows["metric"] == "coverage"]["value"]
    assert ((cov > 0) & (cov <= 1)).all()
    sessions = pd.read_csv(out / "sessions.csv")
    assert len(sessions) == 10 * 5 * 2  # 10 users × 5 agents × guardrail off/on
    # a rerun reuses the finished cells: the same numbers
    again = run(*args)
    assert again.stdout.split("seeds")[1] == proc.stdout.split("seeds")[1]
    bad = run("sim", "agents", "--data", str(tiny_csv), "--columns", COLS, "--agents", "sarsa",
              ok=False)  # fmt: skip
    assert bad.returncode == 2 and "unknown agent(s) ['sarsa']" in bad.stderr
    # logged-data mode: the same agents on the real sessions after a time cut (PPO skipped);
    # the users' ratings interleave in time, so every user has some on each side of the cut
    frame = pd.read_csv(tiny_csv)
    frame["ts"] = 1000 * (frame["ts"] % 100) + frame.groupby("uid").ngroup()
    frame.to_csv(tmp_path / "interleaved.csv", index=False)
    logged = tmp_path / "logged"
    proc = run("sim", "agents", "--data", str(tmp_path / "interleaved.csv"), "--columns", COLS, "--agents",
               "popularity,greedy,reinforce_topk,ppo_sb3", "--steps", "5", "--n-envs", "4",
               "--param", "slate_size=3", "--replay", "--cut-frac", "0.3", "--out", str(logged),
               "--save-runs", str(tmp_path / "logged-runs"), "--quiet")  # fmt: skip
    assert "logged-data mode" in proc.stdout and "Δ vs greedy" in proc.stdout
    # a saved agent run records the time cut, so `recloop evaluate` splits the same past
    (saved,) = (tmp_path / "logged-runs").glob("*-replay-reinforce_topk-s0")
    cfg = json.loads((saved / "config.json").read_text())
    ts = frame["ts"].to_numpy()
    assert cfg["before"] == int(np.quantile(ts, 0.7, method="higher"))
    ev = run("evaluate", str(saved), "--quiet").stdout
    metrics = json.loads((saved / "metrics.json").read_text())
    assert f"{metrics['test']['all']['ndcg@10']['mean']:.4f}" in ev
    rows = pd.read_csv(logged / "results.csv")
    assert set(rows["method"]) == {"popularity", "greedy", "reinforce_topk"}
    assert (rows["split"] == "replay").all()
    ret = rows[rows["metric"] == "return"]["value"]
    assert ((ret >= 0) & (ret <= 50)).all()
    assert "Traceback" not in bad.stderr


def test_prep_flags_reach_the_command_as_one_prep() -> None:
    got: dict = {}

    @prep_options
    def cmd(data: Data = "ml-100k", prep: Prep = PREP_DEFAULTS, quiet: Quiet = False) -> None:
        got.update(data=data, prep=prep, quiet=quiet)

    app = typer.Typer(add_completion=False)
    app.command()(cmd)
    res = CliRunner().invoke(app, ["--split", "cold", "--min-item", "3", "--columns", "user=uid",
                                   "--short-users", "train", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert got == {"data": "ml-100k", "quiet": True,
                   "prep": Prep(split="cold", min_item=3, columns="user=uid",
                                short_users="train")}  # fmt: skip
    assert got["prep"].spec_fields() == {"split": "cold", "cold_frac": 0.1, "min_user": 0,
                                         "min_item": 3, "columns": {"user": "uid"},
                                         "short_users": "train"}  # fmt: skip
    # the flags stand where `prep` stood, between --data and --quiet
    names = [p.name for p in click_command(app).params]
    assert names == ["data", "split", "cold_frac", "min_user", "min_item", "columns",
                     "short_users", "quiet"]  # fmt: skip
