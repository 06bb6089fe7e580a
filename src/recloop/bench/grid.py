"""Grid files: datasets × methods × seeds × evaluation modes, declared in TOML.

A grid file has a few top-level keys and one table per evaluation mode::

    name = "quick"
    datasets = ["ml-100k"]
    seeds = [0, 1, 2]

    [offline]                      # offline ranking: one cell per dataset × method × seed
    split = "loo"
    baseline = "pop"
    [[offline.methods]]
    model = "pop"
    [[offline.methods]]
    model = "sasrec"
    variant = "sqn"                # a label, when one model appears with several configs
    params = { head = "sqn", epochs = 30 }
    cpus = 1                       # what the cell needs (Ray schedules by it)

    [simulator]                    # simulator rollouts: one cell per dataset × seed
    agents = ["greedy", "popularity", "reinforce_topk"]
    steps = 300

    [ope]                          # off-policy estimates checked in the simulator
    log_sizes = [1000, 3000]
    reps = 10
    obd = ["all"]                  # and on the Open Bandit Dataset campaigns

    [diagnose]                     # does this data need RL? (recloop.bench.diagnose)
    users = 200

Every key is checked: an unknown key is an error that lists the known ones. Each cell resolves
to the config dataclass the CLI uses (:class:`recloop.runs.RunSpec`,
:class:`recloop.rl.arena.ArenaConfig`, :class:`recloop.ope.simcheck.SimCheckConfig`), so a
grid cell and the matching ``recloop`` command run the same thing.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recloop.config import config_hash
from recloop.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Cell", "Grid", "grid_from_json", "grid_json", "load_grid", "parse_grid"]

MODES = ("offline", "simulator", "ope", "diagnose")
_TOP = {"name", "datasets", "seeds", "jobs", *MODES}
_OFFLINE = {"split", "baseline", "ks", "min_user", "min_item", "cold_frac", "columns", "methods"}
_METHOD = {"model", "variant", "params", "cpus"}
_OPE = {"obd", "obd_runs", "cpus"}
_SIM = {"cpus"}


@dataclass(frozen=True)
class Cell:
    """One unit of work: a mode, a dataset, a method (or agent set), a seed, its config."""

    mode: str  # offline | simulator | ope | obd | diagnose
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
        label = f"{self.method}-{self.variant}" if self.variant else self.method
        return re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.mode}-{data}-{label}-s{self.seed}")


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


def _check_keys(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known keys: {sorted(known)}")


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table of options, got {value!r}")
    return value


def _build(cls: type, opts: dict[str, Any], where: str) -> Any:
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


def _check_nested(opts: dict[str, Any], where: str) -> None:
    import importlib

    for key, (module, name) in _NESTED.items():
        if key not in opts:
            continue
        target = getattr(importlib.import_module(module), name)
        cls = getattr(target, "Config", target)
        _build(cls, _table(opts[key], f"{where} {key}"), f"{where} {key}")


def _cpus(table: dict[str, Any], where: str) -> int:
    cpus = table.get("cpus", 1)
    if not isinstance(cpus, int) or cpus < 1:
        raise ConfigError(f"{where}: cpus must be a positive integer, got {cpus!r}")
    return cpus


def _list(value: Any, where: str, kind: type) -> list[Any]:
    if not isinstance(value, list) or not value or not all(isinstance(v, kind) for v in value):
        raise ConfigError(f"{where} must be a non-empty list of {kind.__name__}s, got {value!r}")
    return value


def parse_grid(text: str, source: str = "grid") -> Grid:
    """Parse and resolve a grid from TOML text (see the module docstring)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source} is not valid TOML ({e})") from e
    _check_keys(raw, _TOP, source)
    datasets = _list(raw.get("datasets"), f"{source}: datasets", str)
    seeds = _list(raw.get("seeds", [0]), f"{source}: seeds", int)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: seeds must be distinct, got {seeds}")
    for mode in MODES:
        if mode in raw:
            _table(raw[mode], f"{source} [{mode}]")
    if not any(m in raw for m in MODES):
        raise ConfigError(f"{source} declares no evaluation mode; add one of {list(MODES)}")
    jobs = raw.get("jobs", 1)
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"{source}: jobs must be a positive integer, got {jobs!r}")
    cells: list[Cell] = []
    baseline = None
    if "offline" in raw:
        off = raw["offline"]
        _check_keys(off, _OFFLINE, f"{source} [offline]")
        baseline = off.get("baseline")
        cells += _offline_cells(off, datasets, seeds, source)
    if "simulator" in raw:
        cells += _simulator_cells(raw["simulator"], datasets, seeds, source)
    if "ope" in raw:
        cells += _ope_cells(raw["ope"], datasets, seeds, source)
    if "diagnose" in raw:
        cells += _diagnose_cells(raw["diagnose"], datasets, seeds, source)
    if baseline is not None:
        labels = {f"{c.method}-{c.variant}" if c.variant else c.method
                  for c in cells if c.mode == "offline"}  # fmt: skip
        if baseline not in labels:
            raise ConfigError(
                f"{source} [offline]: baseline {baseline!r} is not one of the offline methods "
                f"{sorted(labels)} (a method with a variant is named model-variant)"
            )
    names = [c.name.lower() for c in cells]  # folders must differ on any file system
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            f"{source}: cells {dupes} appear twice; give repeated models distinct `variant` labels"
        )
    return Grid(str(raw.get("name", Path(source).stem)), tuple(cells), jobs, baseline)


def load_grid(path: str | Path) -> Grid:
    """Read a grid file."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"grid file {p} does not exist")
    return parse_grid(p.read_text(), str(p))


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


def _offline_cells(off: dict[str, Any], datasets: list[str], seeds: list[int],
                   source: str) -> list[Cell]:  # fmt: skip
    from recloop.models import get_model
    from recloop.runs import RunSpec, build_model

    methods = off.get("methods")
    if not isinstance(methods, list) or not methods:
        raise ConfigError(f"{source} [offline] needs a non-empty [[offline.methods]] list")
    shared = {k: v for k, v in off.items() if k not in ("methods", "baseline")}
    if "ks" in shared:
        shared["ks"] = tuple(shared["ks"])
    cells = []
    for j, m in enumerate(methods):
        where = f"{source} [[offline.methods]] #{j + 1}"
        if not isinstance(m, dict) or "model" not in m:
            raise ConfigError(f"{where} needs a `model` name")
        _check_keys(m, _METHOD, where)
        get_model(m["model"])  # an unknown name fails here, listing the known ones
        params = dict(_table(m.get("params", {}), f"{where} params"))
        cpus = _cpus(m, where)
        for data in datasets:
            for seed in seeds:
                try:
                    spec = RunSpec(model=m["model"], data=data, seed=seed, params=params, **shared)
                except TypeError as e:
                    raise ConfigError(f"{source} [offline]: {e}") from None
                try:
                    build_model(spec)  # unknown or bad model options fail at load time
                except ConfigError as e:
                    raise ConfigError(f"{where}: {e}") from None
                # unset (None) options are left out of the cell's config and so of its hash:
                # a RunSpec field added later (as `before` was) then leaves the hashes of
                # grids run before it alone, and their done cells are not rerun
                config = {k: v for k, v in dataclasses.asdict(spec).items() if v is not None}
                cells.append(Cell("offline", data, m["model"], str(m.get("variant", "")), seed,
                                  config, cpus))  # fmt: skip
    return cells


def _section(table: dict[str, Any], cls: type, extra: set[str], where: str,
             seed_key: str = "seed") -> dict[str, Any]:  # fmt: skip
    """A mode's table checked (known keys, no own seeds); its config options returned."""
    _check_keys(table, _fields(cls) | extra, where)
    if seed_key in table:
        raise ConfigError(f"{where}: seeds come from the grid's top-level `seeds`")
    return {k: v for k, v in table.items() if k not in extra}


def _simulator_cells(sim: dict[str, Any], datasets: list[str], seeds: list[int],
                     source: str) -> list[Cell]:  # fmt: skip
    from recloop.rl.arena import ArenaConfig

    opts = _section(sim, ArenaConfig, _SIM, f"{source} [simulator]", seed_key="seeds")
    for key in ("agents", "guardrail"):
        if key in opts:
            value = opts[key]
            opts[key] = tuple(value) if isinstance(value, list) else (value,)
    _check_nested(opts, f"{source} [simulator]")
    cells = []
    for data in datasets:
        for seed in seeds:
            cfg = _build(ArenaConfig, {**opts, "seeds": (seed,)}, f"{source} [simulator]")
            config = json_ready(dataclasses.asdict(cfg))
            cells.append(Cell("simulator", data, "agents", "", seed, config,
                              _cpus(sim, f"{source} [simulator]")))  # fmt: skip
    return cells


def _ope_cells(ope: dict[str, Any], datasets: list[str], seeds: list[int],
               source: str) -> list[Cell]:  # fmt: skip
    from recloop.ope.obd import CAMPAIGNS
    from recloop.ope.simcheck import SimCheckConfig

    opts = _section(ope, SimCheckConfig, _OPE, f"{source} [ope]")
    cpus = _cpus(ope, f"{source} [ope]")
    cells = []
    for data in datasets:
        for seed in seeds:
            cfg = _build(SimCheckConfig, {**opts, "seed": seed}, f"{source} [ope]")
            cells.append(Cell("ope", data, "estimators", f"k{cfg.slate_size}", seed,
                              json_ready(dataclasses.asdict(cfg)), cpus))  # fmt: skip
    campaigns = ope.get("obd", [])
    if not isinstance(campaigns, list) or any(c not in CAMPAIGNS for c in campaigns):
        raise ConfigError(f"{source} [ope]: obd must list campaigns from {list(CAMPAIGNS)}")
    runs = ope.get("obd_runs", 30)
    if not isinstance(runs, int) or runs < 1:
        raise ConfigError(f"{source} [ope]: obd_runs must be a positive integer, got {runs!r}")
    for campaign in campaigns:
        for seed in seeds:
            cells.append(Cell("obd", f"obd-{campaign}", "estimators", "", seed,
                              {"campaign": campaign, "n_runs": runs}, cpus))  # fmt: skip
    return cells


def _diagnose_cells(diag: dict[str, Any], datasets: list[str], seeds: list[int],
                    source: str) -> list[Cell]:  # fmt: skip
    from recloop.bench.diagnose import DiagnoseConfig

    opts = _section(diag, DiagnoseConfig, _SIM, f"{source} [diagnose]")
    _check_nested(opts, f"{source} [diagnose]")
    return [
        Cell(
            "diagnose",
            data,
            "lookahead",
            "",
            seed,
            json_ready(
                dataclasses.asdict(
                    _build(DiagnoseConfig, {**opts, "seed": seed}, f"{source} [diagnose]")
                )
            ),
            _cpus(diag, f"{source} [diagnose]"),
        )
        for data in datasets
        for seed in seeds
    ]


def json_ready(value: Any) -> Any:
    """Tuples to lists, recursively, so a config survives a JSON round trip unchanged."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value
