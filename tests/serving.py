"""Fixtures and helpers of the serving tests (a pytest plugin of tests/conftest.py): a trained run, a real database (SQLite and PostgreSQL) and
a real server on loopback.

PostgreSQL tests need ``RECLOOP_TEST_PG_URL`` (``.ci/run`` sets it from ``.ci/postgres.sh``,
which installs and starts the server); each test gets a database of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_URL = os.environ.get("RECLOOP_TEST_PG_URL", "")
TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SASRec run on ML-100K (two epochs: enough to rank, quick to train)."""
    from recloop.bench import RunSpec, train_run

    out = tmp_path_factory.mktemp("serve") / "sasrec"
    spec = RunSpec(model="sasrec", data="ml-100k", seed=0,
                   params={"epochs": 2, "max_len": 30, "dim": 32})  # fmt: skip
    train_run(spec, out, progress=False)
    return out


@pytest.fixture(scope="session")
def second_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another run over the same data (EASE), for reloads."""
    from recloop.bench import RunSpec, train_run

    out = tmp_path_factory.mktemp("serve") / "ease"
    train_run(RunSpec(model="ease", data="ml-100k", seed=0), out, progress=False)
    return out


def pg_database() -> Iterator[str]:
    import psycopg

    name = f"recloop_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        # FORCE ends the test's own sessions; an autovacuum worker on the database (a
        # superuser process the test role may not end) makes it fail until the worker is done
        with psycopg.connect(PG_URL, autocommit=True) as con:
            for attempt in range(100):
                try:
                    con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    break
                except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
                    if attempt == 99:
                        raise
                    time.sleep(0.1)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty event store URL of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need RECLOOP_TEST_PG_URL=$(bash .ci/postgres.sh)")
    yield from pg_database()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``recloop serve`` in a subprocess on loopback."""

    def __init__(self, run: Path, db: str, env: dict[str, str] | None = None) -> None:
        self.run, self.db, self.port = run, db, free_port()
        self.env = {**os.environ, "RECLOOP_ADMIN_TOKEN": TOKEN, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recloop", "serve", str(self.run), "--port", str(self.port),
             "--db-url", self.db, "--log-level", "warning"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        import httpx

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"server exited with {self.proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> Any:
        import httpx

        return httpx.Client(base_url=self.url, timeout=30.0)


def backend_server(backend: str, run_dir: Path, folder: Path) -> Iterator[Server]:
    """A started server over a new store of ``backend`` (sqlite or postgres); stopped, and
    its PostgreSQL database dropped, when the generator is closed."""
    if backend == "sqlite":
        dbs: Iterator[str] = iter([f"sqlite:///{folder / 'e.db'}"])
    elif not PG_URL:
        pytest.skip("PostgreSQL tests need RECLOOP_TEST_PG_URL=$(bash .ci/postgres.sh)")
    else:
        dbs = pg_database()
    srv = Server(run_dir, next(dbs)).start()
    try:
        yield srv
    finally:
        srv.stop()
        for _ in dbs:  # drop the PostgreSQL database
            pass


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_server(
    request: pytest.FixtureRequest, run_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per backend for a module's tests that need no fresh store: each such test
    uses users and ids of its own and counts only what it adds (a server start costs ~6 s)."""
    yield from backend_server(request.param, run_dir, tmp_path_factory.mktemp("shared"))


@pytest.fixture
def server(run_dir: Path, db_url: str) -> Iterator[Server]:
    srv = Server(run_dir, db_url).start()
    try:
        yield srv
    finally:
        srv.stop()
