"""Shared test helpers."""

from __future__ import annotations

import os
import subprocess
import sys

pytest_plugins = ["serving"]  # the serving tests' fixtures (tests/serving.py)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs one test process per core (pyproject's addopts). Each gets its share
    # of the cores for torch (RECLOOP_CPUS, read by the training loop) and the BLAS/OpenMP
    # pools, inherited by the CLI and server subprocesses it starts: two processes that each
    # started a thread per core would oversubscribe the machine several-fold.
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    _share = str(max(1, (_cores or 1) // max(1, _workers)))
    for _var in ("RECLOOP_CPUS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _share)


def run_cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``recloop ARGS`` as a user runs it (a real subprocess); check success when ``ok``."""
    proc = subprocess.run(
        [sys.executable, "-m", "recloop", *args], capture_output=True, text=True, timeout=300
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc
