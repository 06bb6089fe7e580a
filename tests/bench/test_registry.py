"""The experiments registry: a new bench mode is its module and one registry line, and the
bench's door (``recloop.bench``) exports what the CLI needs without loading the experiments."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from recloop.bench import load_bench, parse_grid
from recloop.bench.experiments import EXPERIMENTS
from recloop.errors import ConfigError

TOY_GRID = """
name = "toy"
datasets = ["ab", "abcd"]
seeds = [0, 1]
jobs = 2
[toy]
scale = 1.5
"""


@pytest.fixture()
def toy_mode(monkeypatch):
    """The mode ``toy`` (tests/bench/toy_experiment.py) registered as a plugin would register
    it: one entry; spawned workers find the module on the path they inherit."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setitem(EXPERIMENTS.modules, "toy", "toy_experiment")


def test_a_registered_mode_runs_through_recloop_bench(toy_mode, tmp_path) -> None:
    from recloop.cli import app

    grid, out = tmp_path / "grid.toml", tmp_path / "out"
    grid.write_text(TOY_GRID)
    result = CliRunner().invoke(app, ["bench", str(grid), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "grid toy: 4 cells, 4 run, 0 already done, 0 failed" in result.output
    rows = pd.read_csv(out / "results.csv")
    got = {(r.dataset, r.seed): r.value for r in rows.itertuples()}
    assert got == {("ab", 0): 3.0, ("ab", 1): 6.0, ("abcd", 0): 6.0, ("abcd", 1): 12.0}
    assert set(rows["metric"]) == {"length"} and rows["git_sha"].notna().all()
    assert (out / "cells" / "toy-ab-ruler-s1" / "toy.txt").read_text() == "6.0\n"
    # the cells are resumable and reportable like any other mode's
    again = CliRunner().invoke(app, ["bench", str(grid), "--out", str(out), "--quiet"])
    assert "4 cells, 0 run, 4 already done" in again.output
    report = CliRunner().invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert "4 cells: 4 done, 0 failed, 0 not run yet." in (out / "report.md").read_text()
    assert "- toy abcd ruler seed 1\n" in (out / "report.md").read_text()
    assert len(load_bench(out).rows) == 4


def test_a_registered_mode_checks_its_own_table(toy_mode) -> None:
    with pytest.raises(ConfigError, match=re.escape("unknown key(s) ['size'] in grid [toy]; "
                                                    "known keys: ['cpus', 'datasets', 'scale']")):  # fmt: skip
        parse_grid(TOY_GRID.replace("scale", "size"))
    with pytest.raises(ConfigError, match="scale must be a number"):
        parse_grid(TOY_GRID.replace("1.5", '"big"'))
    grid = parse_grid(TOY_GRID + "[ope]\nlog_sizes = [100]\n")
    assert [c.mode for c in grid.cells][-4:] == ["toy"] * 4  # registration order: toy last


def test_an_unregistered_mode_is_an_unknown_table() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['toy'\] in grid; known keys"):
        parse_grid(TOY_GRID)
    with pytest.raises(ConfigError, match="unknown cell mode 'toy'; known modes: "):
        EXPERIMENTS.module("toy")


def test_the_modes_run_in_registry_order_and_each_module_has_the_protocol() -> None:
    assert list(EXPERIMENTS) == ["offline", "simulator", "ope", "obd", "diagnose", "fidelity"]
    for mode in EXPERIMENTS:
        module = EXPERIMENTS[mode]
        assert callable(module.cells) and callable(module.compute)
        assert isinstance(module.SECTION, str) and isinstance(module.KEYS, frozenset)


def test_the_bench_door_is_light_and_complete() -> None:
    """``import recloop.bench`` loads no experiment and no torch; each exported name loads."""
    code = ("import sys, recloop.bench as b\n"
            "print(sorted(m for m in sys.modules if m.startswith('recloop.bench.experiments.')"
            " or m == 'torch'))\n"
            "[getattr(b, n) for n in b.__all__]\n"
            "print(all(getattr(b, n) is not None for n in b.__all__))\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True"]
