"""A real `recloop serve` on loopback over a real database: the loop end to end, admin
auth, deletion, reload under load, and the kill test."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx

from recloop.serve.backends import open_store
from serving import TOKEN, Server

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _wait_version(c: httpx.Client, updates: int, timeout: float = 10.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        version = str(c.get("/health").json()["model_version"])
        if version.endswith(f"+{updates}"):
            return version
        time.sleep(0.02)
    raise AssertionError(f"the learner did not reach {updates} updates")


def test_recommend_feedback_learn(server: Server) -> None:
    with server.client() as c:
        first = c.post("/recommend", json={"user_id": "1", "k": 5})
        assert first.status_code == 200, first.text
        body = first.json()
        assert len(body["items"]) == 5 and body["model_version"].endswith("+0")
        assert all(i["propensity"] == 1.0 and i["title"] for i in body["items"])
        assert all(i["explanation"] for i in body["items"])
        top = body["items"][0]["item_id"]
        for n in range(5):
            r = c.post("/feedback", json={"event_id": f"skip-{n}", "request_id": body["request_id"],
                                          "user_id": "1", "item_id": top, "type": "skip"})  # fmt: skip
            assert r.status_code == 200 and r.json()["stored"], r.text
        version = _wait_version(c, 5)
        after = c.post("/recommend", json={"user_id": "1", "k": 5}).json()
        assert after["model_version"] == version
        assert after["items"][0]["item_id"] != top  # the skips changed the next answer
        # an exploring request logs its propensities
        eps = c.post("/recommend", json={"user_id": "2", "k": 3, "exploration": "epsilon"}).json()
        assert all(0 < i["propensity"] <= 1 for i in eps["items"])
        metrics = c.get("/metrics").text
        assert 'recloop_requests_total{endpoint="/recommend",status="200"} 3' in metrics
        assert "recloop_events_stored_total 5" in metrics
        assert 'recloop_request_seconds_count{endpoint="/feedback"} 5' in metrics
        assert f'recloop_model_info{{version="{version}"}} 1' in metrics
    store = open_store(server.db)
    rows = store.feedback()
    assert len(rows) == 5 and set(rows["propensity"]) == {1.0} and set(rows["position"]) == {0}
    assert store.count("requests") == 3
    store.close()


def test_cold_start_is_not_an_error(shared_server: Server) -> None:
    with shared_server.client() as c:
        r = c.post("/recommend", json={"user_id": "never-seen", "k": 3})
        assert r.status_code == 200 and r.json()["cold_start"] == "popular"
        r = c.post("/recommend", json={"history": ["50", "181"], "k": 3})
        assert r.status_code == 200 and r.json()["cold_start"] == "history"
        assert r.json()["user_id"].startswith("anonymous-")


def _group_counts(server: Server) -> dict[str, float]:
    with server.client() as c:
        metrics = c.get("/metrics").text
    return {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
            if line.startswith(("recloop_recommend_", "recloop_feedback_"))}  # fmt: skip


def test_concurrent_requests_are_grouped_and_each_gets_its_own_answer(
    shared_server: Server,
) -> None:
    """16 clients at once: the recommend worker serves them in groups (one model call each),
    and every answer is the one that user gets alone; feedback is committed in groups and
    every event is stored once."""
    server = shared_server
    users = [str(u) for u in range(101, 165)]  # users no other test of the module touches
    store = open_store(server.db)
    before, stored_before = _group_counts(server), store.count("feedback")
    with server.client() as c:
        alone = {u: [i["item_id"] for i in c.post("/recommend", json={"user_id": u, "k": 5})
                     .json()["items"]] for u in users}  # fmt: skip
    answers: dict[str, list[list[str]]] = {u: [] for u in users}
    served: list[tuple[str, str, str]] = []
    errors: list[str] = []

    def client(part: list[str]) -> None:
        with server.client() as c:
            for _ in range(3):
                for u in part:
                    r = c.post("/recommend", json={"user_id": u, "k": 5})
                    if r.status_code != 200:
                        errors.append(r.text)
                        continue
                    body = r.json()
                    answers[u].append([i["item_id"] for i in body["items"]])
                    served.append((u, body["request_id"], body["items"][-1]["item_id"]))

    threads = [threading.Thread(target=client, args=(users[n::16],)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(answers[u] == [alone[u]] * 3 for u in users)

    def feed(part: list[tuple[str, str, str]]) -> None:
        with server.client() as c:
            for u, rid, item in part:
                body = {"event_id": f"v-{rid}", "request_id": rid, "user_id": u,
                        "item_id": item, "type": "view"}  # fmt: skip
                for _ in range(2):  # a retry is a duplicate, not a second event
                    r = c.post("/feedback", json=body)
                    if r.status_code != 200:
                        errors.append(r.text)

    threads = [threading.Thread(target=feed, args=(served[n::16],)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    after = _group_counts(server)
    grouped = {name: after[name] - before.get(name, 0.0) for name in after}
    assert grouped["recloop_recommend_grouped"] == 64 + 3 * 64
    assert grouped["recloop_recommend_groups"] < grouped["recloop_recommend_grouped"]
    assert grouped["recloop_feedback_grouped"] == 2 * len(served)
    assert store.count("feedback") - stored_before == len(served) == 3 * 64
    store.close()


def test_nul_in_an_id_is_refused_by_name(shared_server: Server) -> None:
    with shared_server.client() as c:
        r = c.post("/recommend", json={"user_id": "a\u0000b", "k": 3})
        assert r.status_code == 422 and "NUL" in r.json()["error"]
        r = c.delete("/admin/users/a%00b", headers=AUTH)
        assert r.status_code == 422 and "NUL" in r.json()["error"]


def test_admin_needs_the_token(shared_server: Server) -> None:
    with shared_server.client() as c:
        for method, path, kw in (("DELETE", "/admin/users/1", {}),
                                 ("POST", "/admin/reload", {"json": {"run_dir": "x"}})):  # fmt: skip
            r = c.request(method, path, **kw)
            assert r.status_code == 401 and "Bearer" in r.json()["error"]
            r = c.request(method, path, headers={"Authorization": "Bearer wrong"}, **kw)
            assert r.status_code == 403 and "wrong" in r.json()["error"]
        r = c.post("/admin/reload", headers=AUTH, json={"run_dir": "/no/such/run"})
        assert r.status_code == 422 and "not a recloop run directory" in r.json()["error"]


def test_delete_user_removes_all_their_rows(server: Server) -> None:
    with server.client() as c:
        for user in ("1", "2"):
            rec = c.post("/recommend", json={"user_id": user, "k": 3}).json()
            for item in rec["items"]:
                c.post("/feedback", json={"event_id": uuid.uuid4().hex, "user_id": user,
                                          "request_id": rec["request_id"],
                                          "item_id": item["item_id"], "type": "click"})  # fmt: skip
        _wait_version(c, 6)
        r = c.delete("/admin/users/1", headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["deleted"] == {"requests": 1, "feedback": 3}
        assert r.json()["model_version"].endswith("+3")  # user 1's updates are gone
    store = open_store(server.db)
    assert [store.count(t, "1") for t in ("requests", "shown", "feedback")] == [0, 0, 0]
    assert [store.count(t, "2") for t in ("requests", "shown", "feedback")] == [1, 3, 3]
    store.close()


def test_pseudonymised_ids(run_dir: Path, db_url: str) -> None:
    srv = Server(run_dir, db_url, {"RECLOOP_PSEUDONYMIZE_KEY": "k3y"}).start()
    try:
        with srv.client() as c:
            rec = c.post("/recommend", json={"user_id": "1", "k": 2}).json()
            assert rec["cold_start"] is None  # a known user is still known
            item = rec["items"][0]["item_id"]
            r = c.post("/feedback", json={"event_id": "e", "request_id": rec["request_id"],
                                          "user_id": "1", "item_id": item, "type": "click"})  # fmt: skip
            assert r.status_code == 200
            store = open_store(db_url)
            keys = set(store.feedback()["user_key"])
            assert keys and "1" not in keys and all(len(k) == 64 for k in keys)
            assert c.delete("/admin/users/1", headers=AUTH).json()["deleted"]["feedback"] == 1
            assert store.count("feedback") == 0
            store.close()
    finally:
        srv.stop()


def test_reload_drops_no_request(server: Server, second_run: Path) -> None:
    errors: list[str] = []
    done = threading.Event()
    served = [0]

    def hammer() -> None:
        with server.client() as c:
            while not done.is_set():
                r = c.post("/recommend", json={"user_id": "5", "k": 5})
                if r.status_code != 200:
                    errors.append(r.text)
                served[0] += 1

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    with server.client() as c:
        old = c.get("/health").json()["model_version"]
        r = c.post("/admin/reload", headers=AUTH, json={"run_dir": str(second_run)})
        assert r.status_code == 200, r.text
        time.sleep(0.5)
        done.set()
        for t in threads:
            t.join()
        new = c.get("/health").json()["model_version"]
    assert errors == [] and served[0] > 10
    assert old.startswith("sasrec:") and new.startswith("ease:")


def test_kill_test_every_acknowledged_event_stored_once(run_dir: Path, db_url: str) -> None:
    """SIGKILL the server while clients send feedback; after a restart and retries, every
    acknowledged event is in the store exactly once."""
    srv = Server(run_dir, db_url).start()
    with srv.client() as c:
        rec = c.post("/recommend", json={"user_id": "1", "k": 10}).json()
    items = [i["item_id"] for i in rec["items"]]
    events = [{"event_id": f"ev-{n}", "request_id": rec["request_id"], "user_id": "1",
               "item_id": items[n % 10], "type": "view"} for n in range(600)]  # fmt: skip
    acked: set[str] = set()
    lock = threading.Lock()

    def send(part: list[dict[str, str]]) -> None:
        with httpx.Client(base_url=srv.url, timeout=5.0) as c:
            for e in part:
                try:
                    r = c.post("/feedback", json=e)
                except httpx.HTTPError:
                    return  # the server died
                if r.status_code == 200:
                    with lock:
                        acked.add(e["event_id"])

    threads = [threading.Thread(target=send, args=(events[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    while len(acked) < 100:
        time.sleep(0.005)
    srv.kill()
    for t in threads:
        t.join()
    killed_at = set(acked)
    assert 100 <= len(killed_at) < len(events)  # killed part-way
    store = open_store(db_url)
    stored = store.feedback()
    assert killed_at <= set(stored["event_id"])  # nothing acknowledged was lost
    store.close()

    srv.start()  # restart on the same store; clients retry everything not acknowledged,
    try:  # and some acknowledged events again
        with srv.client() as c:
            for e in events:
                if e["event_id"] not in killed_at or e["event_id"].endswith("7"):
                    r = c.post("/feedback", json=e)
                    assert r.status_code == 200, r.text
                    if e["event_id"] in killed_at:
                        assert r.json()["duplicate"]
    finally:
        srv.stop()
    store = open_store(db_url)
    stored = store.feedback()
    assert sorted(stored["event_id"]) == sorted(e["event_id"] for e in events)  # exactly once
    store.close()
