"""The event store on SQLite and PostgreSQL: migrations, the request join, idempotency,
conflicts, deletion."""

from __future__ import annotations

import pytest

from recloop.errors import ConfigError, DataError
from recloop.serve.backends import open_store
from recloop.serve.store import Conflict, Feedback, NotShown, Served


def _slate() -> list[tuple[str, float, float]]:
    return [("i1", 2.0, 0.9), ("i2", 1.5, 0.05), ("i3", 1.0, 0.05)]


def test_migrations_are_recorded_once(db_url: str) -> None:
    store = open_store(db_url)
    assert store.schema_version() == 1
    assert store.migrate() == []  # nothing left to apply
    store.close()
    again = open_store(db_url)  # reopening applies nothing and keeps data
    assert again.schema_version() == 1
    again.close()


def test_feedback_carries_the_requests_propensity_and_version(db_url: str) -> None:
    store = open_store(db_url)
    store.log_request("r1", "u1", "run:abc+0", "epsilon", _slate(), 0.81, created_at=10.0)
    seq, dup = store.add_feedback(Feedback("e1", "r1", "u1", "i2", "click", 1.0), created_at=11.0)
    assert not dup and seq >= 1
    rows = store.feedback()
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["position"], row["propensity"], row["model_version"]) == (1, 0.05, "run:abc+0")
    assert row["created_at"] == 11.0
    shown = store.shown()
    assert shown["item_id"].tolist() == ["i1", "i2", "i3"]
    assert shown["propensity"].tolist() == [0.9, 0.05, 0.05]
    store.close()


def test_idempotent_on_event_id_and_conflicts_named(db_url: str) -> None:
    store = open_store(db_url)
    store.log_request("r1", "u1", "v", "none", _slate(), 1.0)
    first = store.add_feedback(Feedback("e1", "r1", "u1", "i1", "rating", 4.0))
    again = store.add_feedback(Feedback("e1", "r1", "u1", "i1", "rating", 4.0))
    assert again == (first[0], True)
    assert store.count("feedback") == 1
    with pytest.raises(Conflict, match="other content"):
        store.add_feedback(Feedback("e1", "r1", "u1", "i1", "rating", 2.0))
    with pytest.raises(NotShown, match="unknown"):
        store.add_feedback(Feedback("e2", "nope", "u1", "i1", "click", 1.0))
    with pytest.raises(NotShown, match="not shown"):
        store.add_feedback(Feedback("e2", "r1", "u1", "i9", "click", 1.0))
    with pytest.raises(NotShown, match="another user"):
        store.add_feedback(Feedback("e2", "r1", "u2", "i1", "click", 1.0))
    with pytest.raises(DataError, match="unknown feedback type"):
        store.add_feedback(Feedback("e2", "r1", "u1", "i1", "like", 1.0))
    assert store.count("feedback") == 1  # failed events left nothing behind
    assert store.max_seq() == first[0]
    with pytest.raises(Conflict, match="already used"):
        store.log_request("r1", "u1", "v", "none", _slate(), 1.0)
    assert store.count("shown") == 3  # the refused request added nothing
    store.close()


def test_a_group_commit_stores_the_good_and_names_the_bad(db_url: str) -> None:
    """One transaction for a group: a bad request or event is refused alone, and the group's
    duplicates and conflicts are judged in order, as if sent one by one."""
    store = open_store(db_url)
    store.log_request("r0", "u1", "v", "none", _slate(), 1.0)
    served = [Served(rid, "u1", "v", "none", tuple(_slate()), 1.0)
              for rid in ("r1", "r0", "r2", "r1")]  # fmt: skip
    results = store.log_requests(served)
    assert [r is None for r in results] == [True, False, True, False]
    assert all("already used" in str(r) for r in results if r is not None)
    assert store.count("requests") == 3 and store.count("shown") == 9
    events = [Feedback("e1", "r1", "u1", "i1", "click", 1.0),   # stored
              Feedback("e2", "r9", "u1", "i1", "click", 1.0),   # unknown request
              Feedback("e1", "r1", "u1", "i1", "click", 1.0),   # duplicate of the first
              Feedback("e1", "r1", "u1", "i1", "skip", 1.0),    # same id, other content
              Feedback("e3", "r2", "u1", "i3", "view", 1.0),    # stored
              Feedback("e4", "r2", "u1", "i3", "like", 1.0)]  # unknown type  # fmt: skip
    out = store.add_feedback_many(events)
    assert isinstance(out[0], tuple) and out[0][1] is False
    assert isinstance(out[1], NotShown) and "unknown" in str(out[1])
    assert out[2] == (out[0][0], True)
    assert isinstance(out[3], Conflict)
    assert isinstance(out[4], tuple) and out[4][0] > out[0][0]
    assert isinstance(out[5], DataError)
    assert store.feedback()["event_id"].tolist() == ["e1", "e3"]
    store.close()


def test_delete_user_removes_every_row_and_only_theirs(db_url: str) -> None:
    store = open_store(db_url)
    for user in ("u1", "u2"):
        for r in range(3):
            rid = f"{user}-r{r}"
            store.log_request(rid, user, "v", "none", _slate(), 1.0)
            store.add_feedback(Feedback(f"{rid}-e", rid, user, "i1", "click", 1.0))
    deleted = store.delete_user("u1")
    assert deleted == {"requests": 3, "feedback": 3}
    for table in ("requests", "shown", "feedback"):
        assert store.count(table, "u1") == 0
    assert store.count("requests", "u2") == 3
    assert store.count("shown", "u2") == 9
    assert store.count("feedback", "u2") == 3
    store.close()


def test_bad_urls_are_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="unsupported event store URL"):
        open_store("mysql://x:secret@host/db")
    with pytest.raises(ConfigError, match=r"folder .* is missing"):
        open_store(f"sqlite:///{tmp_path / 'no' / 'such' / 'events.db'}")
    with pytest.raises(ConfigError, match="empty"):
        open_store("")
    with pytest.raises(ConfigError, match=r"cannot connect .*\*\*\*"):
        open_store("postgresql://nobody:secret@127.0.0.1:1/none")


def test_settings_from_the_environment() -> None:
    from recloop.serve.settings import Settings

    s = Settings.from_env({"RECLOOP_EPSILON": "0.3", "RECLOOP_FLUSH_REQUESTS": "yes",
                           "RECLOOP_MAX_BATCH": "8"}, run_dir="r")  # fmt: skip
    assert (s.epsilon, s.flush_requests, s.max_batch, s.run_dir) == (0.3, True, 8, "r")
    assert Settings.from_env({"RECLOOP_FLUSH_REQUESTS": "0"}).flush_requests is False
    with pytest.raises(ConfigError, match="RECLOOP_FLUSH_REQUESTS='maybe' is not a valid bool"):
        Settings.from_env({"RECLOOP_FLUSH_REQUESTS": "maybe"})
    with pytest.raises(ConfigError, match="RECLOOP_MAX_BATCH must be >= 1"):
        Settings.from_env({"RECLOOP_MAX_BATCH": "0"})


@pytest.mark.parametrize("flush", [False, True])
def test_request_logs_survive_reopening_either_way(db_url: str, flush: bool) -> None:
    store = open_store(db_url)
    store.flush_requests = flush
    store.log_requests([Served(f"r{n}", "u", "v", "none", tuple(_slate()), 1.0) for n in range(5)])
    store.add_feedback(Feedback("e1", "r3", "u", "i1", "click", 1.0))
    store.close()
    again = open_store(db_url)  # a new connection sees every committed row
    assert again.count("requests") == 5 and again.count("shown") == 15
    assert again.feedback()["request_id"].tolist() == ["r3"]
    again.close()


def _wal_under_load(tmp_path, name: str, seconds: float, rate: float = 4000.0):  # type: ignore[no-untyped-def]
    """Log requests at ``rate`` commits a second for ``seconds``, spinning between commits
    (no pause a passive checkpoint could finish in: 4,000 a second is ~20x the serving
    loop's full load, and the bare loop here commits ~20,000 a second, so the pace is
    what this machine can always hold); returns the open store, its
    path, the commits, the WAL's extent in pages and the WAL restarts (the checkpoint
    sequence number in the WAL header, bytes 12-16, which SQLite bumps at every restart)."""
    import os
    import struct
    import time

    from recloop.serve.backends import SQLiteStore

    path = tmp_path / name
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLiteStore)
    store.flush_requests = False
    g, t0 = 0, time.perf_counter()
    while g < 1000 or time.perf_counter() - t0 < seconds:
        while time.perf_counter() - t0 < g / rate:
            pass
        store.log_requests([Served(f"r{g:06d}", f"u{g % 97}", "v", "none", tuple(_slate()), 1.0)])
        g += 1
    with open(f"{path}-wal", "rb") as f:
        restarts = struct.unpack(">I", f.read(16)[12:16])[0]
    return store, path, g, os.path.getsize(f"{path}-wal") / 4096, restarts


def test_sqlite_checkpoints_off_the_writer_and_the_wal_restarts_under_steady_load(
    tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The writer never runs a checkpoint itself below the backstop: the checkpointer
    thread does, and under load without a pause it still makes the WAL start over, so the
    file stays bounded; every committed row is there after reopening.

    Paced, and judged against a control in the same test: unpaced, how far the WAL grows
    between two passes depends on how fast this machine commits against how fast it
    fsyncs (a 20,000-commits/s writer outran the checkpointer's fsyncs here)."""
    import sqlite3

    from recloop.serve.backends import SQLiteStore

    monkeypatch.setattr(SQLiteStore, "CHECKPOINT_EVERY", 0.005)
    monkeypatch.setattr(SQLiteStore, "RESTART_FRAMES", 10**9)  # passive passes only
    control, _, _, control_frames, control_restarts = _wal_under_load(tmp_path, "c.db", 0.5)
    control.close()
    monkeypatch.setattr(SQLiteStore, "RESTART_FRAMES", 100)
    store, path, n, frames, restarts = _wal_under_load(tmp_path, "events.db", 0.5)
    assert store._con.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == (
        SQLiteStore.BACKSTOP_PAGES
    )
    seen = (control_frames, control_restarts, frames, restarts)
    # measured: passive only 11,042 pages, 0 restarts; with the locked pass ~230, ~70
    assert restarts >= 3 and restarts > 3 * control_restarts, seen
    assert frames < control_frames / 4 and frames < 3000, seen
    busy, wal, copied = store.checkpoint()  # idle now: one pass copies everything
    assert (busy, wal) == (0, copied)
    store.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == n
    assert con.execute("SELECT count(*) FROM shown").fetchone()[0] == 3 * n
    con.close()


def test_server_request_ids_are_time_ordered_uuid7() -> None:
    import time
    import uuid

    from recloop.serve.service import new_request_id

    first = [new_request_id() for _ in range(1000)]
    time.sleep(0.002)
    later = new_request_id()
    assert len(set(first)) == 1000
    parsed = uuid.UUID(later)
    assert (parsed.version, parsed.variant, len(later)) == (7, uuid.RFC_4122, 32)
    assert abs((parsed.int >> 80) / 1000 - time.time()) < 5  # its first 48 bits: now, in ms
    assert max(first) < later  # a later millisecond sorts after
