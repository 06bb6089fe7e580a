"""A bench mode that exists only for the tests: registered at run time, it shows that adding a
mode is its module and one registry line (``test_registry.py``).

Each cell of the grid's ``[toy]`` table is a dataset × seed; it "measures" ``scale`` times
the seed plus one times the length of the dataset's name, so every row can be checked by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from recloop.bench.cells import Cell, cpus_of
from recloop.errors import ConfigError

SECTION = "toy"
KEYS = frozenset({"scale", "cpus"})


def cells(table: dict[str, Any], datasets: list[str], seeds: list[int],
          source: str) -> list[Cell]:  # fmt: skip
    scale = table.get("scale", 1.0)
    if not isinstance(scale, int | float):
        raise ConfigError(f"{source} [toy]: scale must be a number, got {scale!r}")
    cpus = cpus_of(table, f"{source} [toy]")
    return [Cell("toy", data, "ruler", "", seed, {"scale": float(scale)}, cpus)
            for data in datasets for seed in seeds]  # fmt: skip


def compute(cell: Cell, folder: Path,
            cache: Path | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:  # fmt: skip
    value = cell.config["scale"] * (cell.seed + 1) * len(cell.dataset)
    (folder / "toy.txt").write_text(f"{value}\n")  # the cell's folder is the worker's to use
    return pd.DataFrame([{**cell.labels, "split": "toy", "metric": "length", "value": value}]), {}
