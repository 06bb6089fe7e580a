"""The event store's two backends: SQLite (embedded, the default) and PostgreSQL.

Both run the schema and queries of :class:`recloop.serve.store.EventStore`; a backend only
opens connections and runs a transaction (``flush=False``: committed without its own
fsync, see :meth:`EventStore.log_requests`). Open one with :func:`open_store`, which picks
the backend from the URL (it lives here, beside the backends it chooses from, so that
store.py never imports this module).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recloop.errors import ConfigError
from recloop.serve.store import EventStore

__all__ = ["PostgresStore", "SQLiteStore", "open_store", "redact"]


class SQLiteStore(EventStore):
    """SQLite in WAL mode with ``synchronous=FULL``; one connection behind a lock.

    Checkpoints (copying the WAL into the database file, with an fsync) run on a thread of
    their own with its own connection, in SQLite's ``PASSIVE`` mode, which never blocks a
    writer. Left to SQLite, the commit that crosses the WAL's 1,000-page mark runs the
    checkpoint itself: 30-40 ms here, once every ~26 groups of request logs at full load,
    and every request queued behind that commit waited for it (the serving p99). See
    :meth:`checkpoint` for how the WAL still restarts under steady load.
    The writer's own automatic checkpoint stays as a backstop at ``BACKSTOP_PAGES``.
    """

    #: WAL pages after which the writer checkpoints itself (the checkpointer fell behind).
    BACKSTOP_PAGES = 20_000
    #: WAL frames (pages) after which the checkpointer makes the WAL restart
    RESTART_FRAMES = 8_000
    #: how often the checkpointer looks for new commits (seconds)
    CHECKPOINT_EVERY = 0.1

    dialect = "sqlite"
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:") else url
        folder = Path(path).parent
        if not folder.is_dir():
            raise ConfigError(f"cannot create the event store {path}: folder {folder} is missing")
        try:
            self._con = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                        timeout=30.0)  # fmt: skip
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=FULL")
            self._con.execute("PRAGMA foreign_keys=ON")
            self._con.execute(f"PRAGMA wal_autocheckpoint={self.BACKSTOP_PAGES}")
            self._checkpoints = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
            self._checkpoints.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"{path} is not a usable SQLite event store ({e})") from e
        self._lock = threading.Lock()
        self.path = path
        self.commits = 0  # transactions committed (the checkpointer looks for new ones)
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, daemon=True,
                                              name="recloop-checkpoint")  # fmt: skip
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        done = 0
        while not self._closed.wait(self.CHECKPOINT_EVERY):
            if self.commits != done:
                done = self.commits
                self.checkpoint()

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy committed WAL frames into the database; returns SQLite's (busy, WAL frames,
        frames checkpointed) of the last pass.

        The pass runs ``PASSIVE``, beside the writer. Under steady load frames committed
        during the pass keep the WAL from restarting, so it only grows; once it holds
        ``RESTART_FRAMES``, a second pass holds the writer's lock and copies just those
        (10-50 ms measured, mostly two fsyncs; once every few seconds at full load), so the next
        commit starts the WAL again from its beginning. A pause in the load does the
        same for free."""
        try:
            row = self._checkpoints.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if row[1] >= self.RESTART_FRAMES:
                with self._lock:
                    row = self._checkpoints.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:  # busy or closing: the next round, or the backstop, does it
            return (1, -1, -1)
        return (int(row[0]), int(row[1]), int(row[2]))

    @contextmanager
    def _transaction(self, flush: bool = True) -> Iterator[Any]:
        with self._lock:
            cur = self._con.cursor()
            if not flush:  # committed to the WAL without an fsync (see log_requests)
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
                self.commits += 1
            finally:
                if not flush:
                    cur.execute("PRAGMA synchronous=FULL")
                cur.close()

    def close(self) -> None:
        self._closed.set()
        self._checkpointer.join(timeout=30)
        self._checkpoints.close()
        with self._lock:
            self._con.close()


class PostgresStore(EventStore):
    """PostgreSQL through psycopg 3, with a small pool of connections."""

    dialect = "postgres"
    placeholder = "%s"

    def __init__(self, url: str, pool_size: int = 8) -> None:
        super().__init__(url)
        try:
            import psycopg
        except ImportError as e:  # pragma: no cover - the serve extra has it
            raise ConfigError(
                'PostgreSQL needs psycopg: pip install -c constraints.txt -e ".[serve]"'
            ) from e
        self._psycopg = psycopg
        self.integrity_errors = (psycopg.IntegrityError,)
        self._pool: queue.Queue[Any] = queue.Queue()
        self._all: list[Any] = []
        for _ in range(pool_size):
            try:
                con = psycopg.connect(url, connect_timeout=10)
            except psycopg.Error as e:
                self.close()
                raise ConfigError(f"cannot connect to PostgreSQL at {redact(url)} ({e})") from e
            self._all.append(con)
            self._pool.put(con)

    @contextmanager
    def _transaction(self, flush: bool = True) -> Iterator[Any]:
        con = self._pool.get()
        try:
            with con.transaction(), con.cursor() as cur:
                if not flush:  # the next flushed commit writes this one's WAL too
                    cur.execute("SET LOCAL synchronous_commit TO OFF")
                yield cur
        finally:
            self._pool.put(con)

    def close(self) -> None:
        for con in self._all:
            con.close()
        self._all = []


def redact(url: str) -> str:
    """``url`` without its password."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def open_store(url: str) -> EventStore:
    """The event store at ``url`` (``sqlite:///path``, a file path, or ``postgresql://``),
    with every migration applied."""
    if not url:
        raise ConfigError("the event store URL is empty; give sqlite:///PATH or postgresql://...")
    store: EventStore
    if url.startswith(("postgresql://", "postgres://")):
        store = PostgresStore(url)
    elif url.startswith("sqlite:///") or "://" not in url:
        store = SQLiteStore(url)
    else:
        raise ConfigError(
            f"unsupported event store URL {redact(url)!r}; use sqlite:///PATH or postgresql://"
        )
    try:
        store.migrate()
    except Exception:
        store.close()
        raise
    return store
