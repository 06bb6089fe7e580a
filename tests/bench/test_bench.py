"""`recloop bench`: grid files, cells in local processes, failures, and resuming after a kill."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from recloop.bench import ArenaConfig, RunSpec, gather, parse_grid, run_grid, write_report
from recloop.errors import ConfigError
from recloop.runs import machine

#: git in a scratch repository, whatever the user's git config
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    rows = [(u, int(i), 100 * u + t, int(rng.integers(1, 6)))
            for u in range(40) for t, i in enumerate(rng.choice(30, size=8, replace=False))]  # fmt: skip
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"]).to_csv(path, index=False)
    return path


def offline_grid(data: list[str], seeds: str = "[0, 1]", jobs: int = 2) -> str:
    quoted = ", ".join(json.dumps(d) for d in data)
    return f"""
name = "tiny"
datasets = [{quoted}]
seeds = {seeds}
jobs = {jobs}

[offline]
baseline = "pop"
[[offline.methods]]
model = "pop"
[[offline.methods]]
model = "itemknn"
params = {{ neighbours = 10 }}
"""


def test_cells_resolve_to_the_cli_configs(tiny_csv) -> None:
    text = (
        offline_grid([str(tiny_csv)])
        + """
[simulator]
agents = ["greedy", "popularity"]
steps = 5
guardrail = false

[ope]
log_sizes = [100, 300]
reps = 2
obd = ["men"]
"""
    )
    grid = parse_grid(text)
    modes = [c.mode for c in grid.cells]
    assert modes.count("offline") == 2 * 2 and modes.count("simulator") == 2
    assert modes.count("ope") == 2 and modes.count("obd") == 2
    off = grid.cells[1]
    assert RunSpec(**{**off.config, "ks": tuple(off.config["ks"])}) == RunSpec(
        model="pop", data=str(tiny_csv), seed=1
    )
    sim = next(c for c in grid.cells if c.mode == "simulator")
    cfg = {
        k: tuple(v) if k in ("agents", "seeds", "guardrail") else v for k, v in sim.config.items()
    }
    assert ArenaConfig(**cfg) == dataclasses.replace(
        ArenaConfig(), agents=("greedy", "popularity"), steps=5, guardrail=(False,), seeds=(0,)
    )
    assert len({c.key for c in grid.cells}) == len(grid.cells)  # every cell hashes apart
    assert grid.baseline == "pop" and grid.jobs == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'datasets = ["x"]\ncolour = 1\n[offline]\n[[offline.methods]]\nmodel = "pop"',
            "unknown key(s) ['colour'] in grid; known keys",
        ),
        (
            'datasets = ["x"]\n[offline]\nsplits = "loo"\n[[offline.methods]]\nmodel = "pop"',
            "unknown key(s) ['splits'] in grid [offline]",
        ),
        (
            'datasets = ["x"]\n[offline]\n[[offline.methods]]\nmodel = "pop"\nparam = {}',
            "unknown key(s) ['param'] in grid [[offline.methods]] #1",
        ),
        (
            'datasets = ["x"]\n[offline]\n[[offline.methods]]\nmodel = "nope"',
            "unknown model 'nope'",
        ),
        (
            'datasets = ["x"]\n[offline]\n[[offline.methods]]\nmodel = "itemknn"\nparams = {k = 3}',
            "unknown option(s) ['k'] for ItemKNNConfig",
        ),
        (
            'datasets = ["x"]\n[simulator]\nagent = ["greedy"]',
            "unknown key(s) ['agent'] in grid [simulator]",
        ),
        ('datasets = ["x"]\n[ope]\nreps = 0', "reps must be at least 1"),
        (
            'datasets = ["x"]\n[offline]\n[[offline.methods]]\nmodel = "pop"\n[[offline.methods]]\nmodel = "pop"',
            "appear twice",
        ),
        ('datasets = ["x"]', "declares no evaluation mode"),
        (
            'datasets = ["x"]\n[diagnose]\nusers = "many"',
            "grid [diagnose]: option 'users' must be a int, not 'many'",
        ),
        (
            'datasets = ["x"]\n[simulator]\ngreedy = { layer = 2 }',
            "grid [simulator] greedy: unknown option(s) ['layer']",
        ),
        ('datasets = ["x"]\n[simulator]\nsteps = 0', "grid [simulator]: invalid ArenaConfig"),
        ('datasets = ["x"]\n[ope]\nseed = 3', "seeds come from the grid's top-level `seeds`"),
        ('datasets = ["x"]\n[ope]\nobd_runs = "x"', "obd_runs must be a positive integer"),
        ('datasets = ["x"]\noffline = 3', "grid [offline] must be a table"),
        ('datasets = ["x"]\nseeds = [0, 0]\n[ope]', "seeds must be distinct"),
        (
            'datasets = ["x"]\n[offline]\nbaseline = "sasrec"\n[[offline.methods]]\nmodel = "pop"',
            "baseline 'sasrec' is not one of the offline methods ['pop']",
        ),
        (
            'datasets = ["x"]\n[offline]\n[[offline.methods]]\nmodel = "pop"\ncpus = "x"',
            "cpus must be a positive integer",
        ),
        ('datasets = "x"\n[ope]', "datasets must be a non-empty list"),
        ("datasets = [", "is not valid TOML"),
    ],
)
def test_bad_grids_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_grid(text)


def test_local_processes_failures_and_rerun(tiny_csv, tmp_path) -> None:
    grid = parse_grid(offline_grid([str(tiny_csv), str(tmp_path / "missing.csv")]))
    res = run_grid(grid, tmp_path / "out", progress=False)
    assert len(res.ran) == 8 and not res.skipped
    assert sorted(res.failed) == sorted(c.name for c in grid.cells if "missing" in c.name)
    assert all("DataError" in e for e in res.failed.values())
    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    # every good cell's test NDCG@10 is in the tidy rows, once per (method, seed)
    ndcg = rows[(rows["split"] == "test") & (rows["metric"] == "ndcg@10")]
    assert sorted(zip(ndcg["method"], ndcg["seed"], strict=True)) == [
        ("itemknn", 0), ("itemknn", 1), ("pop", 0), ("pop", 1)]  # fmt: skip
    assert set(rows["benchmark"]) == {"bench"}
    per_user = pd.read_csv(tmp_path / "out" / "per_user.csv")
    assert set(per_user["method"]) == {"pop", "itemknn"}
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert len(failures) == 4
    text = write_report(tmp_path / "out")[0].read_text()
    assert "8 cells: 4 done, 4 failed, 0 not run yet." in text
    assert "missing.csv pop seed 0 (failed)\n" in text
    # a rerun skips the done cells and retries only the failed ones
    again = run_grid(grid, tmp_path / "out", progress=False)
    assert sorted(again.ran) == sorted(res.failed) and len(again.skipped) == 4
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "results.csv"), rows)


def test_killed_bench_resumes_with_only_the_missing_cells(tiny_csv, tmp_path) -> None:
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(offline_grid([str(tiny_csv)], seeds="[0, 1, 2, 3, 4, 5]", jobs=1))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "recloop", "bench", str(grid_file), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline:
        done = list(out.glob("cells/*/status.json"))
        if len(done) >= 2 or proc.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker, mid-grid
    proc.wait()
    before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("cells/*/status.json")}
    assert 2 <= len(before) < 12, "kill the bench part-way"
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{12 - len(before)} run, {len(before)} already done, 0 failed" in rerun.stdout
    after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("cells/*/status.json")}
    assert len(after) == 12
    assert all(after[name] == t for name, t in before.items())  # done cells were not redone
    if sys.version_info >= (3, 11):  # each cell ran in a fresh process of its own (jobs = 1)
        pids = [json.loads((out / "cells" / n / "status.json").read_text())["pid"]
                for n in after if n not in before]  # fmt: skip
        assert len(set(pids)) == len(pids) == 12 - len(before)
    rows = pd.read_csv(out / "results.csv")
    assert rows[rows["metric"] == "ndcg@10"]["seed"].nunique() == 6


def sasrec_grid(tiny_csv: Path, epochs: int) -> str:
    """One SASRec cell that trains for ``epochs`` epochs (no early stop, fixed lr)."""
    return f"""
name = "train"
datasets = [{json.dumps(str(tiny_csv))}]
seeds = [0]
jobs = 1
[offline]
[[offline.methods]]
model = "sasrec"
params = {{ dim = 8, max_len = 5, batch_size = 16, epochs = {epochs}, patience = {epochs}, lr_decay = 1.0 }}
"""


def start_training(text: str, tmp_path: Path) -> tuple[subprocess.Popen, list[str], Path]:
    """``recloop bench`` on ``text`` in its own session, once its cell has a checkpoint: the
    process, its command line, and the cell's ``last.json``."""
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(text)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "recloop", "bench", str(grid_file), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    last = out / "cells" / "offline-tiny-sasrec-s0" / "run" / "train" / "last.json"
    deadline = time.time() + 240
    while time.time() < deadline and not last.exists() and proc.poll() is None:
        time.sleep(0.005)
    return proc, cmd, last


def wait_dead(pid: int, limit: float = 60.0) -> None:
    """Wait until ``pid`` has exited (gone, or a zombie no one reaps). SIGKILL is delivered at
    once, but a large process (torch) takes a moment to tear down, and ``wait()`` on the bench
    driver does not wait for its pool worker."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except OSError:
            return
        time.sleep(0.01)


def test_a_cell_killed_mid_training_continues_its_checkpoint_exactly(tiny_csv, tmp_path) -> None:
    text = sasrec_grid(tiny_csv, 150)
    proc, cmd, last = start_training(text, tmp_path)
    out = tmp_path / "out"
    os.killpg(proc.pid, signal.SIGKILL)  # mid-training: a few epochs are checkpointed
    proc.wait()
    killed_at = json.loads(last.read_text())["state"]["epoch"]
    cell = last.parent.parent.parent
    assert 1 <= killed_at < 150 and not (cell / "status.json").exists()
    # the report tells a cell that started (and ran or stopped) from one that never did
    running = json.loads((cell / "running.json").read_text())
    assert running["key"] == parse_grid(text).cells[0].key and running["machine"] == machine()
    wait_dead(running["pid"])  # the cell's worker may still be exiting after its driver was reaped
    gather(parse_grid(text), out)
    report = write_report(out)[0].read_text()
    assert ("1 cells: 0 done, 0 failed, 1 started but not finished, 0 not run yet. 1 of the "
            "started stopped part-way (their process on this host is gone); a rerun resumes "
            "them.") in report  # fmt: skip
    since = running["since"][:16].replace("T", " ")
    assert f"seed 0 (started {since} on {machine()}, stopped part-way)\n" in report
    # a cell whose process lives (here: this one), or ran on another host, may still be running
    for alive in ({"pid": os.getpid()}, {"host": "elsewhere"}):
        (cell / "running.json").write_text(json.dumps({**running, **alive}))
        report = write_report(out)[0].read_text()
        assert f"seed 0 (started {since} on {machine()}, not finished)\n" in report
        assert "stopped part-way" not in report
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    metrics = json.loads((last.parent.parent / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] >= killed_at and metrics["training"]["epoch"] == 150
    assert not (cell / "running.json").exists()
    # the same cell never interrupted: the same curve and the same per-user test results
    whole = run_grid(parse_grid(text), tmp_path / "whole", progress=False)
    assert not whole.failed
    ref = json.loads((tmp_path / "whole/cells/offline-tiny-sasrec-s0/run/metrics.json").read_text())
    assert "resumed_from_epoch" not in ref
    assert [r["loss"] for r in metrics["training"]["curve"]] == [
        r["loss"] for r in ref["training"]["curve"]
    ]
    pd.testing.assert_frame_equal(pd.read_csv(out / "per_user.csv"),
                                  pd.read_csv(tmp_path / "whole" / "per_user.csv"))  # fmt: skip


def test_report_gathers_the_cells_done_so_far(tiny_csv, tmp_path) -> None:
    out = tmp_path / "out"
    run_grid(parse_grid(offline_grid([str(tiny_csv)])), out, progress=False)
    whole = pd.read_csv(out / "results.csv")
    # results.csv as a bench still running (or killed) leaves it: behind its cells
    whole[whole["method"] == "pop"].to_csv(out / "results.csv", index=False)
    (out / "per_user.csv").unlink()
    done = run_cli("report", str(out)).stdout
    assert f"gathered {out / 'results.csv'} from the cells: {len(whole)} rows" in done
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), whole)
    assert "| itemknn |" in (out / "report.md").read_text()
    # rows copied out of a bench (no cell folders) are reported as they are
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("results.csv", "per_user.csv", "grid.json"):
        (copy / name).write_bytes((out / name).read_bytes())
    assert "gathered" not in run_cli("report", str(copy)).stdout
    # the same report but for the cell states, which only cell folders tell
    assert "\n4 cells; 0 failed.\n" in (copy / "report.md").read_text()
    tables = [(f / "report.md").read_text().split("## Summary")[1] for f in (copy, out)]
    assert tables[0] == tables[1]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_committed_bench_folder_resumes_and_reports_on_a_fresh_checkout(tiny_csv,
                                                                          tmp_path) -> None:  # fmt: skip
    small = "{ dim = 8, max_len = 5, epochs = 2 }"
    grid = parse_grid(offline_grid([str(tiny_csv)], seeds="[0]") + f"""
[[offline.methods]]
model = "sasrec"
params = {small}
[simulator]
agents = ["greedy"]
guardrail = false
eval_users = 10
steps = 20
greedy = {small}
""")  # fmt: skip
    out = tmp_path / "out"
    run_grid(grid, out, progress=False)
    write_report(out)
    cell = out / "cells" / "offline-tiny-sasrec-s0"
    assert (cell / "run").is_dir() and (cell / "per_user.csv.gz").exists()
    assert not (cell / "per_user.csv").exists()
    # what `git add` keeps of the folder, by the .gitignore the bench wrote
    subprocess.run([*GIT, "init", "-q", str(out)], check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=out, check=True)
    kept = subprocess.run([*GIT, "ls-files"], cwd=out, check=True, capture_output=True,
                          text=True).stdout.split()  # fmt: skip
    assert not [k for k in kept if "/run/" in k or k.startswith("cache/")]
    assert "per_user.csv" not in kept and "report.md" in kept and "results.csv" in kept
    assert "cells/offline-tiny-sasrec-s0/curves.csv.gz" in kept
    assert [k for k in kept if k.endswith("sessions.csv.gz")] and (out / "cache").is_dir()
    assert not [k for k in kept if "/arena/" in k or k.endswith(".tmp")]
    fresh = tmp_path / "fresh"
    for name in kept:
        (fresh / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / name, fresh / name)
    # another machine: nothing reruns, the gathered tables come back, the report is the same
    again = run_grid(grid, fresh, progress=False)
    assert not again.ran and len(again.skipped) == len(grid.cells)
    for name in ("results.csv", "per_user.csv", "curves.csv", "sessions.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(fresh / name), pd.read_csv(out / name))
    assert write_report(fresh)[0].read_text() == (out / "report.md").read_text()
    # a cell folder saved before the tables were compressed is still gathered
    old = pd.read_csv(cell / "per_user.csv.gz")
    old.to_csv(cell / "per_user.csv", index=False)
    (cell / "per_user.csv.gz").unlink()
    pd.testing.assert_frame_equal(gather(grid, out).extras["per_user"],
                                  pd.read_csv(fresh / "per_user.csv"))  # fmt: skip


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_machine_label_names_the_cpu_kernels_that_set_the_numbers() -> None:
    """AVX2 and AVX-512 kernels train the same seed to slightly different models, so rows made
    with each must not share one ``machine`` label."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}

    def label(**kernels: str) -> str:
        code = "from recloop.runs import machine; print(machine())"
        return subprocess.run([sys.executable, "-c", code], env={**env, **kernels}, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip

    arch, cpus = platform.machine(), os.cpu_count()
    assert label(ATEN_CPU_CAPABILITY="default") == f"{arch}-default-{cpus}cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if arch == "x86_64" and cpuinfo.exists() and " avx2" in cpuinfo.read_text():
        assert label(ATEN_CPU_CAPABILITY="avx2") == f"{arch}-avx2-{cpus}cpu"
        assert label() in {f"{arch}-avx2-{cpus}cpu", f"{arch}-avx512-{cpus}cpu"}
        assert label() == machine()


def test_results_written_into_the_checkout_do_not_make_it_dirty(tmp_path) -> None:
    """A bench folder kept in git changes as the bench runs; the rows' ``git_sha`` must still
    name the code's commit cleanly: only a changed code file (Python, TOML) makes it dirty,
    and only a commit of code moves it."""
    from recloop.runs import git_sha

    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    files = {"src/m.py": "x = 1\n", "grid.toml": "a = 1\n", "out/results.csv": "a\n1\n",
             "README.md": "hi\n"}  # fmt: skip
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    subprocess.run([*GIT, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "c"], cwd=repo, check=True)
    sha = git_sha(repo / "src")
    assert re.fullmatch(r"[0-9a-f]{12}", sha)
    (repo / "out" / "results.csv").write_text("a\n2\n")
    (repo / "README.md").write_text("changed\n")
    (repo / "new.py").write_text("y = 2\n")  # untracked
    assert git_sha(repo / "src") == sha
    for code in ("src/m.py", "grid.toml"):
        (repo / code).write_text("changed = 1\n")
        assert git_sha(repo / "src") == f"{sha}+dirty"
        subprocess.run([*GIT, "checkout", "--", code], cwd=repo, check=True)
    # committing results and prose moves HEAD, not the code's commit
    subprocess.run([*GIT, "commit", "-qam", "results"], cwd=repo, check=True)
    head = subprocess.run([*GIT, "rev-parse", "--short=12", "HEAD"], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    assert head != sha and git_sha(repo / "src") == sha
    # committing code moves it to that commit
    (repo / "src" / "m.py").write_text("x = 2\n")
    subprocess.run([*GIT, "commit", "-qam", "code"], cwd=repo, check=True)
    head = subprocess.run([*GIT, "rev-parse", "--short=12", "HEAD"], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    assert git_sha(repo / "src") == head != sha


def test_only_runs_the_matching_cells_and_keeps_the_rest(tiny_csv, tmp_path) -> None:
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(offline_grid([str(tiny_csv)]))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "recloop", "bench", str(grid_file), "--out", str(out), "--quiet"]
    first = subprocess.run([*cmd, "--only", "offline-*-pop-s?", "--only", "*knn-s1"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "4 cells, 3 run, 0 already done, 0 failed, 1 not selected by --only" in first.stdout
    done = sorted(p.parent.name for p in out.glob("cells/*/status.json"))
    assert done == ["offline-tiny-itemknn-s1", "offline-tiny-pop-s0", "offline-tiny-pop-s1"]
    rows = pd.read_csv(out / "results.csv")
    assert sorted(set(zip(rows["method"], rows["seed"], strict=True))) == [
        ("itemknn", 1), ("pop", 0), ("pop", 1)]  # fmt: skip
    # a report of the part-run grid says what is missing, and marks it in the cell list
    text = write_report(out)[0].read_text()
    assert "4 cells: 3 done, 0 failed, 1 not run yet. The tables and plots cover" in text
    assert "tiny.csv itemknn seed 0 (not run)\n" in text
    assert "tiny.csv pop seed 0\n" in text
    # the whole grid afterwards runs only the cell left out, and gathers all four
    grid = parse_grid(grid_file.read_text())
    rest = run_grid(grid, out, progress=False)
    assert rest.ran == ["offline-tiny-itemknn-s0"] and len(rest.skipped) == 3
    assert rest.rows[["method", "seed"]].drop_duplicates().shape[0] == 4
    assert "4 cells: 4 done, 0 failed, 0 not run yet.\n" in write_report(out)[0].read_text()
    # a pattern that matches nothing names the problem and shows what names look like
    with pytest.raises(
        ConfigError, match=r"matches none of the grid's 4 cells.*offline-tiny-pop-s0"
    ):
        run_grid(grid, out, progress=False, only=["sim-*"])
    bad = subprocess.run([*cmd, "--only", "sim-*"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "matches none" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr


def test_cell_hashes_stay_those_of_earlier_versions() -> None:
    """A done cell is skipped by its config hash: a new RunSpec field at its default must not
    change the hash, or every finished offline cell of an existing bench reruns. These are
    the hashes the first `recloop bench` versions gave (a dataset name: no file stamp)."""
    grid = parse_grid("""
name = "keys"
datasets = ["ml-100k"]
seeds = [0]
[offline]
[[offline.methods]]
model = "pop"
[[offline.methods]]
model = "sasrec"
params = { epochs = 3 }
""")
    assert [(c.name, c.key) for c in grid.cells] == [
        ("offline-ml-100k-pop-s0", "da07caec4c71"), ("offline-ml-100k-sasrec-s0", "c0bd4ac81ea0")]  # fmt: skip


@pytest.mark.parametrize("name", ["quick", "full"])
def test_shipped_grids_resolve(name: str) -> None:
    from recloop.bench import load_grid

    grid = load_grid(Path(__file__).resolve().parents[2] / "benchmarks" / "grids" / f"{name}.toml")
    assert {c.mode for c in grid.cells} == {"offline", "simulator", "ope", "obd", "diagnose"}
    assert grid.baseline == "sasrec"


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "grids").glob("*.toml")),
    ids=lambda p: p.stem,
)
def test_every_shipped_grid_loads(path: Path) -> None:
    from recloop.bench import load_grid

    grid = load_grid(path)
    assert grid.cells, f"{path.name} has no cells"


def test_local_ray_gives_the_same_rows_as_local_processes(tiny_csv, tmp_path) -> None:
    pytest.importorskip("ray", reason="Ray is the `distributed` extra; CI installs it")
    grid = parse_grid(offline_grid([str(tiny_csv)], seeds="[0]"))
    local = run_grid(grid, tmp_path / "local", progress=False)
    on_ray = run_grid(grid, tmp_path / "ray", ray_address="local", progress=False)
    assert not local.failed and not on_ray.failed and len(on_ray.ran) == 2
    cols = ["method", "seed", "split", "metric"]
    a = local.rows[local.rows["split"] != "train"].set_index(cols)["value"].sort_index()
    b = on_ray.rows[on_ray.rows["split"] != "train"].set_index(cols)["value"].sort_index()
    pd.testing.assert_series_equal(a[~a.index.get_level_values("metric").str.endswith("_s")],
                                   b[~b.index.get_level_values("metric").str.endswith("_s")])  # fmt: skip


def test_missing_ray_is_a_clear_error(tiny_csv, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    grid = parse_grid(offline_grid([str(tiny_csv)], seeds="[0]"))
    with pytest.raises(ConfigError, match=r"needs Ray, which is not installed.*\[distributed\]"):
        run_grid(grid, tmp_path / "out", ray_address="local", progress=False)


def test_gathered_tables_never_outlive_their_cells(tiny_csv, tmp_path) -> None:
    grid = parse_grid(offline_grid([str(tiny_csv)], seeds="[0]"))
    out = tmp_path / "out"
    run_grid(grid, out, progress=False)
    assert len(pd.read_csv(out / "per_user.csv")) > 0
    # gathered for a grid none of whose cells is done here (another config): no rows, and no
    # per-user table left over from the old rows (a report would mix the two)
    other = parse_grid(offline_grid([str(tiny_csv)], seeds="[7]"))
    res = gather(other, out)
    assert res.rows.empty and pd.read_csv(out / "results.csv").empty
    assert not (out / "per_user.csv").exists()


def test_folder_names_are_safe_and_a_config_change_starts_clean(tiny_csv, tmp_path) -> None:
    odd = 'model = "pop"\nvariant = "../Odd name"'
    text = offline_grid([str(tiny_csv)], seeds="[0]").replace('baseline = "pop"', "")
    grid = parse_grid(text.replace('model = "pop"', odd))
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", c.name) for c in grid.cells)
    out = tmp_path / "out"
    run_grid(grid, out, progress=False)
    knn = next(c for c in grid.cells if c.method == "itemknn")
    marker = out / "cells" / knn.name / "run" / "stale.txt"
    marker.write_text("left by the old config")
    changed = parse_grid(
        text.replace("neighbours = 10", "neighbours = 5").replace('model = "pop"', odd)
    )
    res = run_grid(changed, out, progress=False)
    assert res.ran == [knn.name] and not marker.exists()  # rerun from a clean folder


def test_fits_report_cpu_seconds_beside_wall_seconds(tiny_csv, monkeypatch) -> None:
    """``fit_cpu_s`` counts the CPU a fit used, not time it spent waiting (a paused or busy
    machine), so grid costs stay comparable when cells share a machine."""
    from recloop.bench import run_rows, train_run
    from recloop.models import get_model

    cls = get_model("pop")
    fit = cls.fit

    def slow_fit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.4)  # waiting, as for a core another process holds
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(cls, "fit", slow_fit)
    res = train_run(RunSpec(model="pop", data=str(tiny_csv)), None, progress=False)
    wall, cpu = res["metrics"]["fit_s"], res["metrics"]["fit_cpu_s"]
    assert wall >= 0.4 and 0.0 <= cpu < 0.2
    rows = pd.DataFrame(run_rows(res, {"method": "pop"}))
    by_metric = rows.set_index("metric")["value"]
    assert by_metric["fit_cpu_s"] == cpu and by_metric["fit_s"] == wall


def test_simulator_and_diagnostic_cells_share_the_greedy_fit(tiny_csv, tmp_path,
                                                             monkeypatch) -> None:  # fmt: skip
    greedy = "{ dim = 8, max_len = 5, epochs = 2 }"
    text = f"""
name = "share"
datasets = [{json.dumps(str(tiny_csv))}]
seeds = [0]
jobs = 1
[simulator]
agents = ["greedy"]
guardrail = false
eval_users = 10
greedy = {greedy}
[diagnose]
users = 5
horizon = 1
rollouts = 1
candidates = 2
greedy = {greedy}
"""
    # each cell's own process labels its rows with the code it imported, whatever the mode:
    # not the driver's commit (the workers are spawned, so the patch is the driver's alone)
    from recloop.runs import git_sha

    own = git_sha() if sys.version_info >= (3, 11) else "feedc0ffee00"
    monkeypatch.setattr("recloop.runs.git_sha", lambda: "feedc0ffee00")
    res = run_grid(parse_grid(text), tmp_path / "out", progress=False)
    assert not res.failed and len(res.ran) == 2
    # one fit of the seed's greedy SASRec, in the bench's cache, serves both cells (as one fit
    # of the world's EASE does)
    entries = list((tmp_path / "out" / "cache").iterdir())
    assert sorted(p.name.split("-")[0] for p in entries) == ["ease", "sasrec"]
    (entry,) = [p for p in entries if p.name.startswith("sasrec-")]
    assert (entry / "model" / "model.json").exists()
    assert not list((tmp_path / "out" / "cells").glob("*/arena/models"))
    assert len(res.rows) > 5
    assert set(res.rows["git_sha"]) == {own}
    assert set(res.rows["machine"]) == {machine()}
    assert not list((tmp_path / "out" / "cells").glob("*/running.json"))


def test_workers_stop_when_the_bench_is_killed(tiny_csv, tmp_path) -> None:
    proc, _, last = start_training(sasrec_grid(tiny_csv, 100_000), tmp_path)
    try:
        assert last.exists(), "the cell is training"
        proc.terminate()  # SIGTERM to the driver alone, as `kill PID` sends
        proc.wait(timeout=60)
        # its worker notices and exits too (the cell would train for many minutes more)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_time_to_levels_by_hand() -> None:
    from recloop.bench.experiments.offline import time_to

    curve = [{"valid_ndcg@10": 0.10, "train_s": 10.0}, {"valid_ndcg@10": 0.171, "train_s": 21.0},
             {"valid_ndcg@10": 0.165, "train_s": 30.0}, {"valid_ndcg@10": 0.18, "train_s": 42.5}]  # fmt: skip
    assert time_to(curve) == {"time_to_0.17_s": 21.0, "time_to_0.18_s": 42.5}
    assert time_to(curve[:3]) == {"time_to_0.17_s": 21.0}  # 0.18 never reached: no entry
    assert time_to([{"valid_ndcg@10": float("nan"), "train_s": 1.0}]) == {}


def test_a_table_may_run_on_its_own_datasets(tiny_csv: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text(tiny_csv.read_text())
    text = (
        offline_grid([str(tiny_csv)], seeds="[0]").replace(
            'baseline = "pop"',
            f'baseline = "pop"\ndatasets = {json.dumps([str(tiny_csv), str(other)])}',
        )
        + '\n[simulator]\nagents = ["popularity"]\nsteps = 5\nguardrail = false\n'
    )
    grid = parse_grid(text)
    offline = sorted({c.config["data"] for c in grid.cells if c.mode == "offline"})
    assert offline == sorted([str(tiny_csv), str(other)])  # the table's own list
    assert [c.mode for c in grid.cells].count("simulator") == 1  # the top-level list
    with pytest.raises(ConfigError, match=r"\[offline\] datasets must be a non-empty list"):
        parse_grid(text.replace(f"datasets = {json.dumps([str(tiny_csv), str(other)])}",
                                "datasets = []"))  # fmt: skip
