"""Hypothesis-fuzzed payloads against a real server: no response is a 500, and every error
body names the problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving import TOKEN, Server, backend_server


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest, run_dir: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:  # fmt: skip
    """A server of its own (the fuzz may delete users and reload runs) and one request id."""
    for srv in backend_server(request.param, run_dir, tmp_path_factory.mktemp("fuzz")):
        with srv.client() as c:
            rec = c.post("/recommend", json={"user_id": "1", "k": 3}).json()
        yield srv, rec["request_id"]


json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))  # fmt: skip
json_value = st.recursive(json_scalar, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=10)  # fmt: skip
ids = st.one_of(st.text(max_size=12), st.sampled_from(["1", "50", "181", "", "0"]), json_scalar)


def recommend_payload() -> st.SearchStrategy[Any]:
    fields = st.fixed_dictionaries({}, optional={
        "user_id": ids, "history": st.one_of(st.lists(ids, max_size=5), json_value),
        "k": st.one_of(st.integers(-5, 200), json_scalar),
        "exploration": st.one_of(st.sampled_from(["none", "epsilon", "softmax", "thompson"]),
                                 json_scalar),
        "exclude": st.one_of(st.lists(ids, max_size=5), json_value),
        "extra": json_value})  # fmt: skip
    return st.one_of(fields, json_value)


def feedback_payload(request_id: str) -> st.SearchStrategy[Any]:
    fields = st.fixed_dictionaries({}, optional={
        "event_id": st.one_of(st.uuids().map(str), ids), "request_id": st.one_of(
            st.just(request_id), ids), "user_id": ids, "item_id": ids,
        "type": st.one_of(st.sampled_from(["click", "rating", "skip", "view"]), json_scalar),
        "value": json_scalar})  # fmt: skip
    return st.one_of(fields, json_value)


def _post(c: httpx.Client, path: str, body: Any, headers: dict[str, str] | None = None,
          ) -> httpx.Response:  # fmt: skip
    """POST ``body`` as JSON, NaN and Infinity included (as a careless client sends them)."""
    raw = json.dumps(body, allow_nan=True).encode()
    return c.post(
        path, content=raw, headers={"Content-Type": "application/json", **(headers or {})}
    )


def _check(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        error = r.json()["error"]
        assert isinstance(error, str) and len(error) > 10


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])  # fmt: skip


@FUZZ
@given(payload=st.data())
def test_recommend(live: tuple[Server, str], payload: st.DataObject) -> None:
    srv, _ = live
    body = payload.draw(recommend_payload())
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        _check(_post(c, "/recommend", body))


@FUZZ
@given(payload=st.data())
def test_feedback(live: tuple[Server, str], payload: st.DataObject) -> None:
    srv, request_id = live
    body = payload.draw(feedback_payload(request_id))
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        _check(_post(c, "/feedback", body))


@FUZZ
@given(raw=st.binary(max_size=64), path=st.sampled_from(["/recommend", "/feedback"]))
def test_raw_bodies(live: tuple[Server, str], raw: bytes, path: str) -> None:
    srv, _ = live
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        _check(c.post(path, content=raw, headers={"Content-Type": "application/json"}))


@FUZZ
@given(user=st.text(min_size=1, max_size=30).filter(lambda s: s not in (".", "..")),
       run=json_value, wrap=st.booleans(),
       auth=st.sampled_from([None, "Bearer wrong", f"Bearer {TOKEN}", "Basic x"]))  # fmt: skip
def test_admin(live: tuple[Server, str], user: str, run: Any, wrap: bool, auth: str | None) -> None:
    srv, _ = live
    headers = {"Authorization": auth} if auth else {}
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        _check(c.delete(f"/admin/users/{quote(user, safe='')}", headers=headers))
        _check(_post(c, "/admin/reload", {"run_dir": run} if wrap else run, headers))
