"""Run a grid's cells in local processes or on Ray, resumably, and gather their tidy rows.

Each cell gets its own folder ``OUT/cells/<cell name>/`` holding ``started.json`` (the
config hash it was started for), ``running.json`` while a worker computes it (removed when
the result is saved), ``rows.csv`` (tidy rows), per-user or per-session rows and training
curves where the mode has them (``per_user.csv.gz``, ``sessions.csv.gz``, ``curves.csv.gz``),
``log.txt`` (everything the cell printed) and, written last, ``status.json``. A cell whose ``status.json`` says ``done`` with the same config hash is
skipped on a rerun, so a killed bench resumes where it stopped; a cell that raised is
recorded as ``failed`` with its error, the others go on, and a rerun retries it. A cell
killed part-way keeps its folder when rerun with the same config: its model continues from
the last epoch's checkpoint (exactly, see :mod:`recloop.models.training`) and the
simulator reuses the agents it finished.

A worker computes a cell with its mode's experiment (``compute`` of the module that
:data:`recloop.bench.experiments.EXPERIMENTS` names; nothing here knows a mode) and returns
its rows as text; the driver writes the cell's files
(atomically; ``status.json`` is removed first and written last), so on a Ray cluster the
results come back to the machine that runs ``recloop bench`` whatever the workers' file
systems. What a worker writes itself (offline checkpoints under ``run/``, the simulator's
per-agent results under ``arena/``, and the greedy SASRec fits that the simulator and
diagnostic cells of a dataset and seed share, in ``OUT/cache/``, see
:mod:`recloop.bench.cache`) stays on its machine: on a cluster, put ``OUT`` on shared
storage to keep and share them. A cell folder left by another config is deleted before the cell reruns,
so no checkpoint or cached result of an old config is reused. A worker that dies (an OOM kill)
fails its cell; the others go on. A local worker exits within a second of its driver's end
(``kill``, SIGKILL), so a stopped bench leaves nothing training into its cell folders.

Those files are all that a done cell needs, on any machine: a bench folder copied or
committed without its checkpoints, cache and gathered tables resumes elsewhere with every
copied cell skipped, and reports the same. The bench writes ``OUT/.gitignore`` (unless one is
there) naming what is machine-local, so ``git add OUT`` keeps exactly the rest
(:data:`MACHINE_LOCAL`).

One concept, at about 400 lines: executing a grid's cells (local processes or Ray tasks, their
lifetimes and failures) and gathering what they left. The cells themselves and their folders'
files are :mod:`recloop.bench.cells`; what a cell computes is its experiment's.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import io
import json
import os
import shutil
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from recloop.bench.cells import (
    EXTRAS,
    Cell,
    Grid,
    grid_from_json,
    grid_json,
    read_json,
    save_cell,
    write,
)
from recloop.bench.experiments import EXPERIMENTS
from recloop.bench.results import TIDY_COLUMNS
from recloop.errors import ConfigError
from recloop.progress import progress_bar

if TYPE_CHECKING:
    from recloop.bench.experiments import Experiment

__all__ = ["BenchResult", "gather", "regather", "run_cell", "run_grid", "select_cells"]

#: What in a bench folder belongs to the machine that ran it (gitignore patterns): training
#: checkpoints, the simulator's per-agent results and the shared fit cache (all only for
#: resuming a cell part-way), the running marker, and the tables and report that
#: ``recloop report`` rebuilds from the cells.
MACHINE_LOCAL = (
    "cells/*/run/", "cells/*/arena/", "cells/*/running.json", "/cache/", ".*.tmp",
    "/per_user.csv", "/sessions.csv", "/curves.csv", "/report.html",
)  # fmt: skip
_POOL_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class BenchResult:
    """What a bench run left in ``out``: every done cell's rows, and the failures."""

    rows: pd.DataFrame
    extras: dict[str, pd.DataFrame]
    ran: list[str]
    skipped: list[str]
    failed: dict[str, str]  # cell name → error


def run_cell(cell_json: str, folder: str, cache: str, code: str | None,
             experiment: str) -> dict[str, Any]:  # fmt: skip
    """Compute one cell (in a worker process or Ray task); never raises.

    ``experiment`` is the module that computes the cell's mode (its ``compute``, see
    :mod:`recloop.bench.experiments`), named by the driver: a mode registered there at run time
    reaches fresh worker processes too. ``cache`` is the folder of shared greedy fits (the bench's ``OUT/cache``); ``code`` is the
    commit for every row's ``git_sha``: ``None`` where this process is fresh for the cell, so
    the code it imports is the checkout's now (:func:`recloop.runs.git_sha`, taken here before
    any model module loads); otherwise the driver's. The worker's machine fills every row's
    ``machine``. While the cell
    runs, its folder holds ``running.json`` (config hash, start time, machine, host name, process
    id).

    Returns ``{"state": "done" | "failed", "rows": csv, "extra": {name: csv}, "error": str,
    "log": str, "wall_s": float, "pid": int}`` (the process that ran it).
    """
    from recloop.runs import git_sha, machine

    code = git_sha() if code is None else code
    cell = Cell(**json.loads(cell_json))
    where = Path(folder)
    log = io.StringIO()
    t0 = time.perf_counter()
    out: dict[str, Any] = {"state": "done", "rows": "", "extra": {}, "error": ""}
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            where.mkdir(parents=True, exist_ok=True)
            write(where / "running.json", json.dumps({
                "key": cell.key, "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": machine(), "host": socket.gethostname(), "pid": os.getpid()}))  # fmt: skip
            import torch

            # the cell's share of the machine: torch models set their threads from it
            os.environ["RECLOOP_CPUS"] = str(max(1, cell.cpus))
            torch.set_num_threads(max(1, cell.cpus))
            module = cast("Experiment", importlib.import_module(experiment))
            rows, extras = module.compute(cell, where, Path(cache))
            # provenance on every row, whatever the mode
            rows = rows.assign(git_sha=code, machine=machine())
            out["rows"] = rows.to_csv(index=False)
            out["extra"] = {k: v.to_csv(index=False) for k, v in extras.items()}
        except Exception as e:  # a failed cell is recorded, never fatal to the bench
            out["state"] = "failed"
            out["error"] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
    out["log"] = log.getvalue()
    out["wall_s"] = time.perf_counter() - t0
    out["pid"] = os.getpid()
    return out


def _exit_with_parent(parent: int) -> None:
    """A worker's watchdog: exit as soon as the driver that spawned it is gone.

    A driver ended by ``kill`` (SIGTERM) or SIGKILL takes no workers with it; they would
    train on for up to a cell's length and write checkpoints into cell folders that a rerun
    then also writes to. Checked once a second, in a daemon thread.
    """
    import threading

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _died(error: Exception) -> dict[str, Any]:
    """The result of a cell whose worker died before it could report."""
    return {"state": "failed", "rows": "", "extra": {}, "log": "", "wall_s": 0.0,
            "error": f"the worker running this cell died ({type(error).__name__}: {error}); "
                     "rerun the bench to retry it"}  # fmt: skip


def _ray(address: str) -> tuple[Any, bool]:
    """The ``ray`` module, connected; and whether this call started the connection."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray-address needs Ray, which is not installed; install the extra with "
            "`pip install -c constraints.txt -e '.[distributed]'`, or drop --ray-address to "
            "run the cells in local processes"
        ) from None
    if ray.is_initialized():
        return ray, False
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except ConnectionError as e:
        raise ConfigError(
            f"cannot reach a Ray cluster at {address!r} ({e}); start one with `ray start --head`, "
            "or use --ray-address local"
        ) from e
    return ray, True


def run_grid(
    grid: Grid,
    out: str | Path,
    *,
    jobs: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    only: Sequence[str] = (),
) -> BenchResult:
    """Run every cell of ``grid`` not already done in ``out``; gather all done cells' rows.

    ``jobs`` local processes run cells in parallel (default: the grid's ``jobs``). With
    ``ray_address`` (``local``, ``auto`` or ``ray://HOST:PORT``) the cells run as Ray tasks,
    each declaring the CPUs its cell needs. ``only`` (shell patterns over cell names, e.g.
    ``offline-ml-100k-*``) runs just the matching cells and leaves the others' folders
    alone; the gathered rows are still every done cell's.

    Every row's ``git_sha`` names the code its cell ran. Local cells run each in a fresh
    process (Python 3.11+), which takes the checkout's code commit as it starts: code changed
    while a long bench runs reaches only the cells started after it, and their rows say so
    (a new commit, or ``+dirty``); a commit of results alone changes no label. Ray workers (and
    local ones on Python 3.10) are long-lived and import modules as cells first need them, so
    their rows carry the driver's commit at the bench's start: leave the code alone while such
    a bench runs.
    """
    from recloop.runs import git_sha

    selected = select_cells(grid, only)
    # each mode's module, by its registry: an unknown mode fails here, before any work
    modules = {c.mode: EXPERIMENTS.module(c.mode) for c in selected}
    root = Path(out)
    code, cache = git_sha(), str(root / "cache")
    cells_dir = root / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    write(root / "grid.json", grid_json(grid))
    if not (root / ".gitignore").exists():  # the user's own is left alone
        write(root / ".gitignore", "# written by `recloop bench`: what belongs to the machine "
               "that ran it; the rest resumes and reports anywhere\n"
               + "\n".join(MACHINE_LOCAL) + "\n")  # fmt: skip
    todo, skipped = [], []
    for cell in selected:
        folder = cells_dir / cell.name
        st = read_json(folder / "status.json")
        if st is not None and st.get("state") == "done" and st.get("key") == cell.key:
            skipped.append(cell.name)
            continue
        owner = st if st is not None else read_json(folder / "started.json")
        if folder.exists() and (owner is None or owner.get("key") != cell.key):
            # another config (or an unknown one) left checkpoints and cached results here:
            # start clean, so nothing of it is reused
            shutil.rmtree(folder)
        # the same config's folder is kept: a cell killed part-way continues its training
        # checkpoint (resumption is exact) and the simulator's finished agents
        todo.append(cell)
    for cell in todo:
        (cells_dir / cell.name).mkdir(exist_ok=True)
        write(cells_dir / cell.name / "started.json", json.dumps({"key": cell.key}))
    failed: dict[str, str] = {}
    ran: list[str] = []

    def finish(cell: Cell, result: dict[str, Any]) -> None:
        save_cell(cell, cells_dir / cell.name, result)
        ran.append(cell.name)
        if result["state"] != "done":
            failed[cell.name] = result["error"]

    with progress_bar(len(selected), f"bench {grid.name}", progress) as bar:
        bar.advance(len(skipped))
        if ray_address is not None and todo:
            ray, started = _ray(ray_address)
            try:
                task = ray.remote(run_cell)
                pending = {task.options(num_cpus=c.cpus).remote(
                    json.dumps(asdict(c)), str(cells_dir / c.name), cache, code, modules[c.mode]): c
                           for c in todo}  # fmt: skip
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    for ref in done:
                        cell = pending.pop(ref)
                        try:
                            result = ray.get(ref)
                        except Exception as e:  # the task's worker died (OOM, node lost, ...)
                            result = _died(e)
                        finish(cell, result)
                        bar.advance()
            finally:
                if started:
                    ray.shutdown()
        elif todo:
            workers = max(1, min(jobs or grid.jobs, len(todo)))
            # like Ray, give each worker's BLAS/OpenMP pools one cell's share: workers are
            # spawned fresh, so these are read before numpy loads (2 cells × 2 BLAS threads on
            # 2 cores ran the simulator and diagnostic cells 11-17% slower than on Ray)
            threads = max(1, min(c.cpus for c in todo))
            # one fresh process per cell (3.11+): each imports the code on disk when it starts
            # and labels its rows with that; a long-lived worker would run modules imported
            # hours earlier, or later, under one label (and carry one cell's memory to the next)
            fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
            own = None if fresh else code
            with (
                _pool_threads(threads),
                ProcessPoolExecutor(
                    workers,
                    mp_context=get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                    **fresh,
                ) as pool,
            ):
                futures: dict[Future[dict[str, Any]], Cell] = {
                    pool.submit(
                        run_cell,
                        json.dumps(asdict(c)),
                        str(cells_dir / c.name),
                        cache,
                        own,
                        modules[c.mode],
                    ): c
                    for c in todo
                }
                while futures:
                    done_f, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                    for f in done_f:
                        cell = futures.pop(f)
                        try:
                            result = f.result()
                        except Exception as e:  # a worker process died (OOM kill, crash)
                            result = _died(e)
                        finish(cell, result)
                        bar.advance()
    return gather(grid, root, ran, skipped, failed)


def select_cells(grid: Grid, only: Sequence[str] = ()) -> list[Cell]:
    """The cells whose names match any of the shell patterns ``only`` (all cells if none)."""
    if not only:
        return list(grid.cells)
    picked = [c for c in grid.cells if any(fnmatch.fnmatchcase(c.name, p) for p in only)]
    if not picked:
        names = ", ".join(c.name for c in grid.cells[:3])
        raise ConfigError(
            f"--only {' '.join(only)!s} matches none of the grid's {len(grid.cells)} cells; "
            f"patterns match cell names such as {names} (wildcards: *, ?, [..])"
        )
    return picked


@contextlib.contextmanager
def _pool_threads(threads: int) -> Iterator[None]:
    """Set the thread-pool variables that spawned workers inherit; restore them after."""
    saved = {k: os.environ.get(k) for k in _POOL_VARS}
    os.environ.update(dict.fromkeys(_POOL_VARS, str(threads)))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def gather(grid: Grid, root: Path, ran: list[str] | None = None, skipped: list[str] | None = None,
           failed: dict[str, str] | None = None) -> BenchResult:  # fmt: skip
    """Collect the done cells' rows into ``results.csv`` (and the extra tables) under ``root``."""
    frames: list[pd.DataFrame] = []
    extras: dict[str, list[pd.DataFrame]] = {v: [] for v in EXTRAS}
    errors = dict(failed or {})
    for cell in grid.cells:
        folder = root / "cells" / cell.name
        st = read_json(folder / "status.json")
        if st is None or st.get("key") != cell.key:
            continue
        if st["state"] != "done":
            errors.setdefault(cell.name, st.get("error", ""))
            continue
        frames.append(pd.read_csv(folder / "rows.csv"))
        for name in EXTRAS:
            # ``NAME.csv``: a cell saved by a recloop before 2026-11-30
            found = [p for p in (folder / f"{name}.csv.gz", folder / f"{name}.csv") if p.exists()]
            if found:
                extras[name].append(pd.read_csv(found[0]).assign(dataset=cell.dataset))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TIDY_COLUMNS)
    rows = rows.reindex(
        columns=[*TIDY_COLUMNS, *(c for c in rows.columns if c not in TIDY_COLUMNS)]
    )
    write(root / "results.csv", rows.to_csv(index=False))
    tables = {k: pd.concat(v, ignore_index=True) for k, v in extras.items() if v}
    for k in EXTRAS:  # a table no done cell has any more must not outlive its rows
        if k in tables:
            write(root / f"{k}.csv", tables[k].to_csv(index=False))
        else:
            (root / f"{k}.csv").unlink(missing_ok=True)
    fail = pd.DataFrame({"cell": list(errors), "error": list(errors.values())})
    write(root / "failures.csv", fail.to_csv(index=False))
    return BenchResult(rows, tables, list(ran or []), list(skipped or []), errors)


def regather(root: str | Path) -> BenchResult | None:
    """Gather the done cells of the bench in ``root`` afresh, from its ``grid.json``.

    ``recloop bench`` gathers when it ends, so while it runs (or after it was killed) its
    ``results.csv`` lags behind the cells; ``recloop report`` calls this first, so a report
    covers every cell done so far. ``None`` (nothing written) where ``root`` has no cell
    folders or a ``grid.json`` this recloop cannot read: its ``results.csv`` is used as it is.
    """
    folder = Path(root)
    meta = read_json(folder / "grid.json")
    if meta is None or not (folder / "cells").is_dir():
        return None
    grid = grid_from_json(meta, folder.name)
    return None if grid is None else gather(grid, folder)
