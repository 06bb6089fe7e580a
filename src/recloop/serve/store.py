"""The durable event store: every recommendation served and every piece of feedback.

Two backends with one schema (``migrations/<dialect>/NNNN_*.sql``, applied in order and
recorded in ``schema_migrations``):

- **SQLite**, the embedded default (``sqlite:///path/events.db`` or a plain path): WAL
  journal and ``synchronous=FULL``, so a committed event survives a killed process and a
  power cut.
- **PostgreSQL** (``postgresql://user:pass@host/db``), for several servers on one log.

Tables:

- ``requests``: one row per ``/recommend`` answer: who (``user_key``), when, which model
  version, which exploration, the slate's probability;
- ``shown``: the items of each request, with position, score and the logging propensity;
- ``feedback``: one row per event, idempotent on ``event_id``. Each row is joined to its
  request when it is written, so it carries the shown item's position, propensity and model
  version. ``seq`` numbers events in arrival order.

A feedback row is committed before :meth:`EventStore.add_feedback` (or
:meth:`EventStore.add_feedback_many`, one transaction for a group of events) returns: the
service acknowledges an event only after this call.

Open a store with :func:`recloop.serve.backends.open_store` (the backends subclass
:class:`EventStore`; this module never imports them).

One concept at about 400 lines: the event log's schema, its writes and its reads, which every
backend shares (the backends hold only their connection and dialect).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd

from recloop.errors import ConfigError, DataError, RecloopError, moved

__all__ = ["EVENT_TYPES", "Conflict", "EventStore", "Feedback", "NotShown", "Served"]

EVENT_TYPES = ("click", "rating", "skip", "view")
FEEDBACK_COLUMNS = (
    "seq", "event_id", "request_id", "user_key", "item_id", "type", "value", "position",
    "propensity", "model_version", "created_at",
)  # fmt: skip


class Conflict(RecloopError):
    """An ``event_id`` that is already stored with different content."""


class NotShown(RecloopError):
    """Feedback on a request that does not exist, or on an item it did not show."""


def _reused(request_id: str) -> Conflict:
    return Conflict(f"request_id {request_id!r} was already used; send a new one or none")


@dataclass(frozen=True)
class Served:
    """One recommendation to log: ``slate`` holds (item_id, score, propensity) in order."""

    request_id: str
    user_key: str
    model_version: str
    exploration: str
    slate: tuple[tuple[str, float, float], ...]
    slate_prob: float


@dataclass(frozen=True)
class Feedback:
    """One feedback event as the service receives it (ids already pseudonymised)."""

    event_id: str
    request_id: str
    user_key: str
    item_id: str
    type: str
    value: float


def _migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file of ``dialect``, in order."""
    folder = resources.files("recloop.serve") / "migrations" / dialect
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            out.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text()))
    return sorted(out)


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


class EventStore:
    """The event log over one database (see the module docstring); thread-safe."""

    dialect = "base"
    placeholder = "?"
    flush_requests = False  # fsync request logs on their own (RECLOOP_FLUSH_REQUESTS)
    integrity_errors: tuple[type[Exception], ...] = ()  # the backend's unique-key violation

    def __init__(self, url: str) -> None:
        self.url = url

    # ------------------------------------------------------------ backend hooks
    @contextmanager
    def _transaction(self, flush: bool = True) -> Iterator[Any]:  # pragma: no cover - overridden
        raise NotImplementedError
        yield

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # ------------------------------------------------------------ schema
    def _q(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded; returns the names applied."""
        applied = []
        with self._transaction() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
        for version, name, sql in _migrations(self.dialect):
            with self._transaction() as cur:
                cur.execute(self._q("SELECT 1 FROM schema_migrations WHERE version = ?"),
                            (version,))  # fmt: skip
                if cur.fetchone():
                    continue
                for statement in _statements(sql):
                    cur.execute(statement)
                cur.execute(
                    self._q("INSERT INTO schema_migrations VALUES (?, ?, ?)"),
                    (version, name, time.time()),
                )
                applied.append(name)
        return applied

    def schema_version(self) -> int:
        with self._transaction() as cur:
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            return int(cur.fetchone()[0])

    # ------------------------------------------------------------ writes
    def log_request(
        self,
        request_id: str,
        user_key: str,
        model_version: str,
        exploration: str,
        slate: Sequence[tuple[str, float, float]],
        slate_prob: float,
        created_at: float | None = None,
    ) -> None:
        """Record one recommendation: ``slate`` holds (item_id, score, propensity) in order.
        A ``request_id`` already stored raises :class:`Conflict`."""
        now = time.time() if created_at is None else created_at
        (result,) = self.log_requests(
            [Served(request_id, user_key, model_version, exploration, tuple(slate), slate_prob)],
            created_at=now,
        )
        if result is not None:
            raise result

    def log_requests(
        self, served: Sequence[Served], created_at: float | None = None
    ) -> list[Conflict | None]:
        """Record several recommendations in one transaction (one commit: the service's group
        commit). Returns, per request, ``None`` or the :class:`Conflict` of a ``request_id``
        already used (that request is not stored; the others are).

        Unless ``flush_requests`` is set, the commit is not flushed to disk on its own
        (SQLite ``synchronous=NORMAL`` for this transaction, PostgreSQL
        ``synchronous_commit=off``): it survives a killed process at once, and a power cut
        from the next flushed commit on. Feedback commits are always flushed, and a flush
        writes every earlier commit of the log too, so the request of every acknowledged
        event is on disk with it."""
        now = time.time() if created_at is None else created_at
        ids = [r.request_id for r in served]
        try:
            with self._transaction(flush=self.flush_requests) as cur:
                taken = self._taken(cur, ids)
                out: list[Conflict | None] = []
                new = []
                for r in served:
                    if r.request_id in taken:
                        out.append(_reused(r.request_id))
                        continue
                    taken.add(r.request_id)
                    new.append(r)
                    out.append(None)
                if new:  # one statement per table for the whole group
                    self._insert_served(cur, new, now)
                return out
        except self.integrity_errors:  # another server took one of the ids meanwhile
            return [self._log_one(r, now) for r in served]

    def _taken(self, cur: Any, ids: list[str]) -> set[str]:
        """The ``request_id``s among ``ids`` already stored."""
        marks = ", ".join([self.placeholder] * len(ids))
        cur.execute(f"SELECT request_id FROM requests WHERE request_id IN ({marks})", ids)
        return {str(row[0]) for row in cur.fetchall()}

    def _log_one(self, r: Served, now: float) -> Conflict | None:
        """One request in its own transaction (the slow path after a race on an id)."""
        try:
            with self._transaction() as cur:
                if self._taken(cur, [r.request_id]):
                    return _reused(r.request_id)
                self._insert_served(cur, [r], now)
                return None
        except self.integrity_errors:  # taken by another server since the check
            return _reused(r.request_id)

    def _insert_served(self, cur: Any, served: Sequence[Served], now: float) -> None:
        """The rows of ``served`` (ids not yet taken): one statement per table."""
        cur.executemany(
            self._q("INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?)"),
            [(r.request_id, r.user_key, now, r.model_version, r.exploration, len(r.slate),
              float(r.slate_prob)) for r in served],
        )  # fmt: skip
        cur.executemany(
            self._q("INSERT INTO shown VALUES (?, ?, ?, ?, ?)"),
            [(r.request_id, p, item, float(sc), float(pr))
             for r in served for p, (item, sc, pr) in enumerate(r.slate)],
        )  # fmt: skip

    def add_feedback(self, event: Feedback, created_at: float | None = None) -> tuple[int, bool]:
        """Store ``event`` durably; returns ``(seq, duplicate)``.

        A repeated ``event_id`` with the same content is a duplicate (stored once, not an
        error); with other content it raises :class:`Conflict`. Feedback on an unknown
        request, another user's request, or an item the request did not show raises
        :class:`NotShown`.
        """
        (result,) = self.add_feedback_many([event], created_at)
        if isinstance(result, Exception):
            raise result
        return result

    def add_feedback_many(
        self, events: Sequence[Feedback], created_at: float | None = None
    ) -> list[tuple[int, bool] | Conflict | NotShown | DataError]:
        """Store several events in one transaction, in order (one commit: the service's group
        commit). Per event: ``(seq, duplicate)`` as :meth:`add_feedback` returns, or the
        error it would raise; a rejected event writes nothing and the others are stored."""
        now = time.time() if created_at is None else created_at
        out: list[tuple[int, bool] | Conflict | NotShown | DataError] = []
        with self._transaction() as cur:
            for event in events:
                try:
                    out.append(self._add_one(cur, event, now))
                except (Conflict, NotShown, DataError) as e:
                    out.append(e)
        return out

    def _add_one(self, cur: Any, event: Feedback, now: float) -> tuple[int, bool]:
        """One event inside a transaction; every check comes before its only write."""
        if event.type not in EVENT_TYPES:
            raise DataError(f"unknown feedback type {event.type!r}; use one of {EVENT_TYPES}")
        found = self._existing(cur, event)
        if found is not None:
            return found, True
        cur.execute(
            self._q(
                "SELECT r.user_key, r.model_version, s.position, s.propensity FROM requests r "
                "JOIN shown s ON s.request_id = r.request_id "
                "WHERE r.request_id = ? AND s.item_id = ? ORDER BY s.position LIMIT 1"
            ),
            (event.request_id, event.item_id),
        )
        row = cur.fetchone()
        if row is None:
            cur.execute(self._q("SELECT 1 FROM requests WHERE request_id = ?"),
                        (event.request_id,))  # fmt: skip
            if cur.fetchone() is None:
                raise NotShown(
                    f"request_id {event.request_id!r} is unknown; send the request_id that "
                    f"/recommend returned"
                )
            raise NotShown(
                f"item {event.item_id!r} was not shown in request {event.request_id!r}; "
                f"feedback must be on an item of that response"
            )
        user_key, version, position, propensity = row
        if user_key != event.user_key:
            raise NotShown(
                f"request {event.request_id!r} was served to another user; send the "
                f"user_id of that request"
            )
        cur.execute(
            self._q(
                "INSERT INTO feedback (event_id, request_id, user_key, item_id, type, value, "
                "position, propensity, model_version, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
            ),
            (event.event_id, event.request_id, event.user_key, event.item_id, event.type,
             float(event.value), position, propensity, version, now),
        )  # fmt: skip
        found = self._existing(cur, event)
        if found is None:  # pragma: no cover - the row was just written
            raise RecloopError(f"event {event.event_id!r} was not stored")
        return found, False

    def _existing(self, cur: Any, event: Feedback) -> int | None:
        cur.execute(
            self._q(
                "SELECT seq, request_id, user_key, item_id, type, value FROM feedback "
                "WHERE event_id = ?"
            ),
            (event.event_id,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        stored = (row[1], row[2], row[3], row[4], float(row[5]))
        sent = (event.request_id, event.user_key, event.item_id, event.type, float(event.value))
        if stored != sent:
            raise Conflict(
                f"event_id {event.event_id!r} is already stored with other content; use a new "
                f"event_id for a new event"
            )
        return int(row[0])

    def delete_user(self, user_key: str) -> dict[str, int]:
        """Delete every row of ``user_key``; returns how many of each kind went."""
        with self._transaction() as cur:
            cur.execute(self._q("DELETE FROM feedback WHERE user_key = ?"), (user_key,))
            n_feedback = cur.rowcount
            cur.execute(
                self._q(
                    "DELETE FROM shown WHERE request_id IN "
                    "(SELECT request_id FROM requests WHERE user_key = ?)"
                ),
                (user_key,),
            )
            cur.execute(self._q("DELETE FROM requests WHERE user_key = ?"), (user_key,))
            return {"requests": int(cur.rowcount), "feedback": int(n_feedback)}

    # ------------------------------------------------------------ reads
    def count(self, table: str, user_key: str | None = None) -> int:
        if table not in ("requests", "shown", "feedback"):
            raise ConfigError(f"unknown table {table!r}")
        with self._transaction() as cur:
            if user_key is None:
                cur.execute(f"SELECT COUNT(*) FROM {table}")
            elif table == "shown":
                cur.execute(
                    self._q(
                        "SELECT COUNT(*) FROM shown s JOIN requests r "
                        "ON r.request_id = s.request_id WHERE r.user_key = ?"
                    ),
                    (user_key,),
                )
            else:
                cur.execute(self._q(f"SELECT COUNT(*) FROM {table} WHERE user_key = ?"),
                            (user_key,))  # fmt: skip
            return int(cur.fetchone()[0])

    def max_seq(self) -> int:
        """The highest feedback ``seq`` stored (0 for none)."""
        with self._transaction() as cur:
            cur.execute("SELECT COALESCE(MAX(seq), 0) FROM feedback")
            return int(cur.fetchone()[0])

    def feedback(self, after_seq: int = 0, limit: int | None = None) -> pd.DataFrame:
        """Feedback rows with ``seq > after_seq``, in ``seq`` order."""
        sql = f"SELECT {', '.join(FEEDBACK_COLUMNS)} FROM feedback WHERE seq > ? ORDER BY seq"
        args: tuple[Any, ...] = (after_seq,)
        if limit is not None:
            sql += " LIMIT ?"
            args += (limit,)
        with self._transaction() as cur:
            cur.execute(self._q(sql), args)
            rows = cur.fetchall()
        return pd.DataFrame([tuple(r) for r in rows], columns=list(FEEDBACK_COLUMNS))

    def shown(self) -> pd.DataFrame:
        """Every shown item with its request (one row per impression)."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT r.request_id, r.user_key, r.created_at, r.model_version, r.exploration, "
                "s.position, s.item_id, s.score, s.propensity FROM shown s "
                "JOIN requests r ON r.request_id = s.request_id ORDER BY r.created_at, s.position"
            )
            rows = cur.fetchall()
        cols = ["request_id", "user_key", "created_at", "model_version", "exploration",
                "position", "item_id", "score", "propensity"]  # fmt: skip
        return pd.DataFrame([tuple(r) for r in rows], columns=cols)


#: Names that lived here before the house was reshaped (issue 30), and where they live now.
__getattr__ = moved(__name__, {"open_store": "recloop.serve.backends"})
