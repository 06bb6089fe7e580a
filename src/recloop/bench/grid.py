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

    [diagnose]                     # does this data need RL? (recloop.bench.experiments.diagnose)
    users = 200

A table may set its own ``datasets`` (for example ``[offline] datasets = [..., "ciao"]`` while
the simulator runs on MovieLens only); without one it runs on the top-level list.

Every key is checked: an unknown key is an error that lists the known ones. The tables are
those of the experiments in :data:`recloop.bench.experiments.EXPERIMENTS`; each resolves its
cells to the config dataclass the CLI uses (:class:`~recloop.bench.experiments.offline.RunSpec`,
:class:`~recloop.bench.experiments.arena.ArenaConfig`,
:class:`~recloop.bench.experiments.ope_sim.SimCheckConfig`, ...), so a grid cell and the
matching ``recloop`` command run the same thing. A table's ``baseline`` names the method the
report tests the others against.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from recloop.bench.cells import Cell, Grid, as_table, check_keys
from recloop.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["load_grid", "parse_grid"]

_TOP = {"name", "datasets", "seeds", "jobs"}


def _list(value: Any, where: str, kind: type) -> list[Any]:
    if not isinstance(value, list) or not value or not all(isinstance(v, kind) for v in value):
        raise ConfigError(f"{where} must be a non-empty list of {kind.__name__}s, got {value!r}")
    return value


def parse_grid(text: str, source: str = "grid") -> Grid:
    """Parse and resolve a grid from TOML text (see the module docstring)."""
    from recloop.bench.experiments import EXPERIMENTS

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source} is not valid TOML ({e})") from e
    modes = {mode: EXPERIMENTS[mode] for mode in EXPERIMENTS}
    sections = list(dict.fromkeys(m.SECTION for m in modes.values()))
    check_keys(raw, _TOP | set(sections), source)
    datasets = _list(raw.get("datasets"), f"{source}: datasets", str)
    seeds = _list(raw.get("seeds", [0]), f"{source}: seeds", int)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: seeds must be distinct, got {seeds}")
    for name in sections:
        if name in raw:
            as_table(raw[name], f"{source} [{name}]")
    if not any(name in raw for name in sections):
        raise ConfigError(f"{source} declares no evaluation mode; add one of {sections}")
    jobs = raw.get("jobs", 1)
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"{source}: jobs must be a positive integer, got {jobs!r}")
    for name in sections:  # every key of a table is read by one of its modes
        if name in raw:
            readers = [m for m in modes.values() if name == m.SECTION]
            known = set().union(*(m.KEYS for m in readers)) | {"datasets"}
            check_keys(raw[name], known, f"{source} [{name}]")
    cells: list[Cell] = []
    baseline = None
    for experiment in modes.values():
        table = raw.get(experiment.SECTION)
        if table is None:
            continue
        own = datasets
        if "datasets" in table:
            own = _list(table["datasets"], f"{source} [{experiment.SECTION}] datasets", str)
            table = {k: v for k, v in table.items() if k != "datasets"}
        cells += experiment.cells(table, own, seeds, source)
        baseline = table.get("baseline", baseline)
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
