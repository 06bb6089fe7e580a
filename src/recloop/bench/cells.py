"""Cells and grids: the unit of work of a bench, its identity, and its folder on disk.

A :class:`Cell` is one mode (an experiment of :mod:`recloop.bench.experiments`), a dataset, a
method, a seed and the resolved config: its :attr:`Cell.key` hashes everything that defines
its result, so a done cell is skipped by it. A :class:`Grid` is the cells of a grid file in run
order (:mod:`recloop.bench.grid` parses one); ``grid.json`` keeps it in the bench folder.

This module also holds what the experiments' ``cells()`` builders share to check a grid
table (known keys, option types, nested option tables, CPUs), and the cell-folder files:
``status.json``, ``running.json`` and the tables, written atomically.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recloop.config import config_hash
from recloop.errors import ConfigError

__all__ = ["Cell", "Grid", "cell_states", "grid_from_json", "grid_json", "json_ready"]

#: Extra tables a mode writes besides its tidy rows (in a cell folder, as ``NAME.csv.gz``).
EXTRAS = ("per_user", "sessions", "curves")


@dataclass(frozen=True)
class Cell:
    """One unit of work: a mode, a dataset, a method (or agent set), a seed, its config."""

    mode: str  # a key of recloop.bench.experiments.EXPERIMENTS: offline | simulator | ope | ...
    dataset: str
    method: str
    variant: str
    seed: int
    config: dict[str, Any] = field(hash=False)  # resolved options, JSON-ready
    cpus: int = 1

    @property
    def key(self) -> str:
        """A stable hash of everything that defines the cell's result, the data file included."""
        return config_hash(
            {
                "mode": self.mode,
                "dataset": self.dataset,
                "data_file": _stamp(self.dataset),
                "method": self.method,
                "variant": self.variant,
                "seed": self.seed,
                "config": self.config,
            }
        )

    @property
    def name(self) -> str:
        """A readable folder name of ``[A-Za-z0-9._-]`` (dataset paths shortened to their stem)."""
        data = Path(self.dataset).stem if "/" in self.dataset else self.dataset
        return re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.mode}-{data}-{self.label}-s{self.seed}")

    @property
    def label(self) -> str:
        """``method-variant``, or ``method`` without a variant (the report's method names)."""
        return f"{self.method}-{self.variant}" if self.variant else self.method

    @property
    def labels(self) -> dict[str, Any]:
        """The tidy columns that name the cell: benchmark, dataset, method, variant, seed."""
        return {"benchmark": "bench", "dataset": self.dataset, "method": self.method,
                "variant": self.variant, "seed": self.seed}  # fmt: skip


def _stamp(dataset: str) -> list[int] | None:
    """Size and modification time of a dataset given as a file, so an edited file reruns."""
    p = Path(dataset)
    if not p.is_file():
        return None
    st = p.stat()
    return [st.st_size, st.st_mtime_ns]


@dataclass(frozen=True)
class Grid:
    """A parsed grid: its name, defaults, and cells in run order."""

    name: str
    cells: tuple[Cell, ...]
    jobs: int = 1
    baseline: str | None = None


def grid_json(grid: Grid) -> str:
    """The ``grid.json`` a bench folder keeps: name, baseline and every cell."""
    return json.dumps({"name": grid.name, "baseline": grid.baseline,
                       "cells": [asdict(c) for c in grid.cells]}, indent=1)  # fmt: skip


def grid_from_json(meta: dict[str, Any], name: str) -> Grid | None:
    """The grid a bench folder's ``grid.json`` (read as ``meta``) describes; ``name`` where it
    has none. ``None`` for a ``grid.json`` written by another recloop version (its cells do not
    fit :class:`Cell`)."""
    try:
        cells = tuple(Cell(**spec) for spec in meta.get("cells", []))
    except TypeError:
        return None
    return Grid(name=str(meta.get("name", name)), cells=cells, baseline=meta.get("baseline"))


def json_ready(value: Any) -> Any:
    """Tuples to lists, recursively, so a config survives a JSON round trip unchanged."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


# --------------------------------------------------------------------------- grid tables


def check_keys(table: dict[str, Any], known: set[str], where: str) -> None:
    """Raise on a key of ``table`` outside ``known``, listing the known ones."""
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known keys: {sorted(known)}")


def fields_of(cls: type) -> set[str]:
    """The field names of a config dataclass (a grid table's known keys)."""
    return {f.name for f in dataclasses.fields(cls)}


def config_keys(cls: type) -> frozenset[str]:
    """The keys of a mode's table that resolves to the config ``cls``: its options and ``cpus``."""
    return frozenset(fields_of(cls) | {"cpus"})


def as_table(value: Any, where: str) -> dict[str, Any]:
    """``value``, checked to be a table of options."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table of options, got {value!r}")
    return value


def build(cls: type, opts: dict[str, Any], where: str) -> Any:
    """``cls`` from ``opts`` with recloop's checks (unknown keys, types), errors naming ``where``."""
    from recloop.config import make_config

    try:
        return make_config(cls, opts)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


_NESTED = {  # nested option tables and the config each must build
    "greedy": ("recloop.models.sequential", "SASRec"),
    "world": ("recloop.sim.world", "WorldConfig"),
    "sim": ("recloop.sim.core", "SimConfig"),
    "deep": ("recloop.rl.deep", "DeepConfig"),
}


def check_nested(opts: dict[str, Any], where: str) -> None:
    """Build each nested option table of ``opts`` (greedy, world, sim, deep) to check it."""
    for key, (module, name) in _NESTED.items():
        if key not in opts:
            continue
        target = getattr(importlib.import_module(module), name)
        cls = getattr(target, "Config", target)
        build(cls, as_table(opts[key], f"{where} {key}"), f"{where} {key}")


def cpus_of(table: dict[str, Any], where: str) -> int:
    """The table's ``cpus`` (default 1), checked."""
    cpus = table.get("cpus", 1)
    if not isinstance(cpus, int) or cpus < 1:
        raise ConfigError(f"{where}: cpus must be a positive integer, got {cpus!r}")
    return cpus


def options(table: dict[str, Any], cls: type, where: str, seed_key: str = "seed") -> dict[str, Any]:
    """The entries of a mode's table that are options of its config ``cls``; the table may not
    set the seeds (``seed_key``), which come from the grid."""
    if seed_key in table:
        raise ConfigError(f"{where}: seeds come from the grid's top-level `seeds`")
    known = fields_of(cls)
    return {k: v for k, v in table.items() if k in known}


# --------------------------------------------------------------------------- cell folders


def write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (gzip-compressed for a ``.gz`` name)."""
    import gzip

    # a temporary name of this process's own: `recloop report` may gather beside the bench
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # gzip with no timestamp: the same table gives the same bytes (a clean `git status`)
    tmp.write_bytes(gzip.compress(text.encode(), mtime=0) if path.suffix == ".gz"
                    else text.encode())  # fmt: skip
    os.replace(tmp, path)  # a half-written file never sits at `path`


def read_json(path: Path) -> dict[str, Any] | None:
    """A cell's ``status.json`` or ``started.json``; ``None`` if absent or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def save_cell(cell: Cell, folder: Path, result: dict[str, Any]) -> None:
    """Write a worker's result (:func:`recloop.bench.runner.run_cell`) into the cell's folder."""
    folder.mkdir(parents=True, exist_ok=True)
    # no status while the rows change: a kill in between leaves a cell that reruns, never old
    # status next to new rows
    (folder / "status.json").unlink(missing_ok=True)
    (folder / "running.json").unlink(missing_ok=True)
    write(folder / "log.txt", result["log"])
    if result["state"] == "done":
        write(folder / "rows.csv", result["rows"])
        for name, text in result["extra"].items():  # a quarter of the CSV's size
            write(folder / f"{name}.csv.gz", text)
    status = {"state": result["state"], "key": cell.key, "error": result["error"],
              "wall_s": result["wall_s"], "pid": result.get("pid")}  # fmt: skip
    write(folder / "status.json", json.dumps(status, indent=1))


def process_gone(running: dict[str, Any]) -> bool:
    """Whether the process a cell's ``running.json`` names is known to be gone: it ran on this
    host and its pid is dead (or a zombie). ``False`` where that cannot be known (another host,
    an older ``running.json``)."""
    pid = running.get("pid")
    if running.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, but not ours to signal
        return False
    try:  # a killed worker whose parent died too may linger as a zombie
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def cell_states(root: Path, cells: list[dict[str, Any]]) -> list[str]:
    """Each cell's state by its folder's ``status.json``, else ``running.json`` (a cell of
    another config: not run); empty where ``root`` has no cell folders or ``cells`` (from
    ``grid.json``) were written by another recloop version."""
    grid = grid_from_json({"cells": cells}, root.name)
    if grid is None or not (root / "cells").is_dir():  # grid.json of another recloop version
        return []
    states = []
    for cell in grid.cells:
        st = read_json(root / "cells" / cell.name / "status.json")
        ok = st is not None and st.get("key") == cell.key and st.get("state") in ("done", "failed")
        run = read_json(root / "cells" / cell.name / "running.json")
        if ok and st is not None:
            states.append(str(st["state"]))
        elif run is not None and run.get("key") == cell.key:
            since = str(run.get("since", "?"))[:16].replace("T", " ")
            states.append(f"started {since} on {run.get('machine', '?')}"
                          + (", stopped part-way" if process_gone(run) else ""))  # fmt: skip
        else:
            states.append("not run")
    return states
