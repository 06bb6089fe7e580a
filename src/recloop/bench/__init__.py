"""Benchmark grids and the experiments they run, in local processes or on Ray, as tidy rows.

This package is the one door to the experiments (:mod:`recloop.bench.experiments`, which
nothing outside ``bench/`` imports): the CLI and user code take from here what trains a run
(:func:`train_run`, :func:`compare`), runs the simulator arena (:func:`run_arena`), the
diagnostic (:func:`diagnose`) or an off-policy estimate of a trained run
(:func:`estimate_run`), and what reads the results (:func:`load_bench`,
:func:`summary_table`, :func:`write_report`, ...). Names load on first use, so importing the
package stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from recloop.bench.cells import Cell, Grid
from recloop.bench.grid import load_grid, parse_grid
from recloop.bench.runner import BenchResult, gather, regather, run_grid

if TYPE_CHECKING:
    from recloop.bench.experiments.arena import (
        ArenaConfig,
        run_arena,
        run_replay,
        save_policy_run,
        with_agents,
    )
    from recloop.bench.experiments.diagnose import DiagnoseConfig, diagnose
    from recloop.bench.experiments.fidelity import FidelityConfig, run_fidelity
    from recloop.bench.experiments.fidelity_report import panel_text
    from recloop.bench.experiments.obd import bts_from_random, obd_rows
    from recloop.bench.experiments.offline import (
        RunSpec,
        compare,
        prepare_data,
        run_rows,
        spec_of,
        train_run,
    )
    from recloop.bench.experiments.ope_logs import estimate_run
    from recloop.bench.experiments.ope_sim import SimCheckConfig, sim_check, sim_rows
    from recloop.bench.report import write_report
    from recloop.bench.results import (
        TIDY_COLUMNS,
        BenchData,
        arena_table,
        arena_tests,
        load_bench,
        markdown,
        summary_table,
        write_results,
    )
    from recloop.bench.summary import verdict_lines

_LAZY = {
    "ArenaConfig": "recloop.bench.experiments.arena",
    "run_arena": "recloop.bench.experiments.arena",
    "run_replay": "recloop.bench.experiments.arena",
    "save_policy_run": "recloop.bench.experiments.arena",
    "with_agents": "recloop.bench.experiments.arena",
    "DiagnoseConfig": "recloop.bench.experiments.diagnose",
    "diagnose": "recloop.bench.experiments.diagnose",
    "FidelityConfig": "recloop.bench.experiments.fidelity",
    "panel_text": "recloop.bench.experiments.fidelity_report",
    "run_fidelity": "recloop.bench.experiments.fidelity",
    "bts_from_random": "recloop.bench.experiments.obd",
    "obd_rows": "recloop.bench.experiments.obd",
    "RunSpec": "recloop.bench.experiments.offline",
    "compare": "recloop.bench.experiments.offline",
    "prepare_data": "recloop.bench.experiments.offline",
    "run_rows": "recloop.bench.experiments.offline",
    "spec_of": "recloop.bench.experiments.offline",
    "train_run": "recloop.bench.experiments.offline",
    "estimate_run": "recloop.bench.experiments.ope_logs",
    "SimCheckConfig": "recloop.bench.experiments.ope_sim",
    "sim_check": "recloop.bench.experiments.ope_sim",
    "sim_rows": "recloop.bench.experiments.ope_sim",
    "write_report": "recloop.bench.report",
    "TIDY_COLUMNS": "recloop.bench.results",
    "BenchData": "recloop.bench.results",
    "arena_table": "recloop.bench.results",
    "arena_tests": "recloop.bench.results",
    "load_bench": "recloop.bench.results",
    "markdown": "recloop.bench.results",
    "summary_table": "recloop.bench.results",
    "write_results": "recloop.bench.results",
    "verdict_lines": "recloop.bench.summary",
}

__all__ = [
    "TIDY_COLUMNS",
    "ArenaConfig",
    "BenchData",
    "BenchResult",
    "Cell",
    "DiagnoseConfig",
    "FidelityConfig",
    "Grid",
    "RunSpec",
    "SimCheckConfig",
    "arena_table",
    "arena_tests",
    "bts_from_random",
    "compare",
    "diagnose",
    "estimate_run",
    "gather",
    "load_bench",
    "load_grid",
    "markdown",
    "obd_rows",
    "panel_text",
    "parse_grid",
    "prepare_data",
    "regather",
    "run_arena",
    "run_fidelity",
    "run_grid",
    "run_replay",
    "run_rows",
    "save_policy_run",
    "sim_check",
    "sim_rows",
    "spec_of",
    "summary_table",
    "train_run",
    "verdict_lines",
    "with_agents",
    "write_report",
    "write_results",
]


def __getattr__(name: str) -> Any:
    """A name of :data:`_LAZY`, imported from its module on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
