"""The event store's two backends: SQLite (embedded, the default) and PostgreSQL.

Both run the schema and queries of :class:`recloop.serve.store.EventStore`; a backend only
opens connections and runs a transaction (``flush=False``: committed without its own
fsync, see :meth:`EventStore.log_requests`). Open one with
:func:`recloop.serve.store.open_store`.
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

__all__ = ["PostgresStore", "SQLiteStore", "redact"]


class SQLiteStore(EventStore):
    """SQLite in WAL mode with ``synchronous=FULL``; one connection behind a lock."""

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
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"{path} is not a usable SQLite event store ({e})") from e
        self._lock = threading.Lock()
        self.path = path

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
            finally:
                if not flush:
                    cur.execute("PRAGMA synchronous=FULL")
                cur.close()

    def close(self) -> None:
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
