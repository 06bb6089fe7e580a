"""Run a benchmark's cells one after another, each in its own process, reusing finished ones.

Helper of the frozen study scripts (``seq_models``, ``offline_rl``, ``text_and_cl``), no study of
its own. New studies are grids (``benchmarks/grids/*.toml``) run by ``recloop bench``, whose
runner also runs every cell apart and reuses finished ones.

A cell is one (dataset, method, variant, ...) of a benchmark: the script is rerun with
``--cell ARGS... OUT`` and writes ``OUT/tidy.csv`` (and usually ``OUT/per_user.csv``). One
process per cell keeps each cell's peak memory its own and never lets two trainings share
the CPU; a cell whose ``tidy.csv`` exists in the work folder is read instead of rerun, so a
killed benchmark (or a rerun that adds a dataset) continues where it stopped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd


def run_cells(
    script: str, work: Path, cells: list[tuple[str, list[str]]]
) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Run (or reuse) every ``(folder name, child arguments)`` cell under ``work``.

    The child runs ``python script *arguments OUT``. Returns the cells' tidy frames and
    per-user frames, in order.
    """
    tidy, per_user = [], []
    for name, args in cells:
        cell = work / name
        if not (cell / "tidy.csv").exists():
            cell.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, script, *args, str(cell)], check=True)
            print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
        tidy.append(pd.read_csv(cell / "tidy.csv"))
        if (cell / "per_user.csv").exists():
            per_user.append(pd.read_csv(cell / "per_user.csv"))
    return tidy, per_user


def add_options(ap: argparse.ArgumentParser) -> None:
    """The options every cell-based benchmark takes."""
    ap.add_argument("--datasets", default="ml-100k,ml-1m")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--max-epochs", type=int, help="cap the epochs (smoke runs)")
    ap.add_argument("--work", type=Path, help="keep cells here; finished cells are reused")


def child_options(args: argparse.Namespace, seeds: str | None = None) -> list[str]:
    """The options a cell's process gets from the parent's (``seeds`` overrides)."""
    return ["--seeds", seeds or args.seeds, *(["--quiet"] if args.quiet else []),
            *(["--max-epochs", str(args.max_epochs)] if args.max_epochs else [])]  # fmt: skip
