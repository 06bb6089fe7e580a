"""Benchmark grids: declared in TOML, run in local processes or on Ray, gathered as tidy rows."""

from recloop.bench.grid import Cell, Grid, load_grid, parse_grid
from recloop.bench.runner import BenchResult, run_grid

__all__ = ["BenchResult", "Cell", "Grid", "load_grid", "parse_grid", "run_grid"]
