"""Shared test helpers."""

from __future__ import annotations

import subprocess
import sys

pytest_plugins = ["serving"]  # the serving tests' fixtures (tests/serving.py)


def run_cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``recloop ARGS`` as a user runs it (a real subprocess); check success when ``ok``."""
    proc = subprocess.run(
        [sys.executable, "-m", "recloop", *args], capture_output=True, text=True, timeout=300
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc
