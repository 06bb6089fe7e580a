"""The experiments wing: one module per bench cell mode, and the registry of modes.

An experiment module defines:

- ``SECTION``: the grid-file table its cells come from (``[offline]``, ``[simulator]``, ...).
  Modes may share a table: ``[ope]`` makes the simulator check's cells (mode ``ope``) and the
  Open Bandit Dataset's (mode ``obd``);
- ``KEYS``: the keys it reads in that table (a key no mode of the table reads is an error);
- ``cells(table, datasets, seeds, source) -> list[Cell]``: the table checked and resolved,
  one :class:`~recloop.bench.cells.Cell` per unit of work (``source`` names the grid file in
  errors);
- ``compute(cell, folder, cache) -> (rows, extras)``: the cell's tidy rows and its extra
  tables (:data:`~recloop.bench.cells.EXTRAS`); ``folder`` is the cell's own folder (for
  checkpoints a killed cell resumes from), ``cache`` the bench's shared fit cache
  (:mod:`recloop.bench.cache`).

Adding a mode is its module and one line in :data:`EXPERIMENTS`; the grid parser and the
executors (:mod:`recloop.bench.grid`, :mod:`recloop.bench.runner`) know no mode by name.
Modules load when first asked for: a worker imports only its cell's experiment.

One module here is not a mode: :mod:`~recloop.bench.experiments.ope_logs` estimates a trained
run's value on logged events (``recloop ope``), an experiment that loads a run and its model
and so lives in this wing, beside the modes, rather than in the pure ``ope/`` estimators.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from recloop.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from recloop.bench.cells import Cell

__all__ = ["EXPERIMENTS", "Experiment", "Registry"]


class Experiment(Protocol):
    """What a bench mode's module provides (see the package docstring)."""

    SECTION: str
    KEYS: frozenset[str]

    def cells(self, table: dict[str, Any], datasets: list[str], seeds: list[int],
              source: str) -> list[Cell]: ...  # fmt: skip

    def compute(self, cell: Cell, folder: Path,
                cache: Path | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]: ...  # fmt: skip


class Registry(Mapping[str, Experiment]):
    """Mode name → experiment module, given as a module path and imported on first use.

    Iteration follows registration order, which is the order of a grid's cells."""

    def __init__(self, modules: dict[str, str]) -> None:
        #: mode → module path; a plugin (or a test) registers a mode by adding an entry
        self.modules = modules

    def __getitem__(self, mode: str) -> Experiment:
        return cast(Experiment, importlib.import_module(self.module(mode)))

    def module(self, mode: str) -> str:
        """The module path of ``mode``; a :class:`ConfigError` listing the modes if unknown."""
        try:
            return self.modules[mode]
        except KeyError:
            raise ConfigError(
                f"unknown cell mode {mode!r}; known modes: {list(self.modules)} (a mode is "
                "registered in recloop.bench.experiments.EXPERIMENTS)"
            ) from None

    def __contains__(self, mode: object) -> bool:
        return mode in self.modules

    def __iter__(self) -> Iterator[str]:
        return iter(self.modules)

    def __len__(self) -> int:
        return len(self.modules)


#: Every cell mode, in the order a grid's cells run.
EXPERIMENTS = Registry(
    {
        "offline": "recloop.bench.experiments.offline",
        "simulator": "recloop.bench.experiments.arena",
        "ope": "recloop.bench.experiments.ope_sim",
        "obd": "recloop.bench.experiments.obd",
        "diagnose": "recloop.bench.experiments.diagnose",
        "fidelity": "recloop.bench.experiments.fidelity",
    }
)
