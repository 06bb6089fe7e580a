"""The HTTP service: ``create_app(settings)`` builds the FastAPI application.

Endpoints: ``POST /recommend``, ``POST /feedback``, ``GET /health``, ``GET /metrics``, and,
behind a bearer token, ``POST /admin/reload`` and ``DELETE /admin/users/{user_id}``.
``/recommend`` and ``/feedback`` are ``async``: they queue their job for a worker thread that
serves concurrent requests as one group (:mod:`recloop.serve.batching`: one model call, one
commit), so the event loop never computes. The admin handlers are plain ``def`` (FastAPI
runs them in its thread pool). Every error body is ``{"error": "<what is wrong and how to
fix it>"}``. ``recloop serve`` runs :class:`ServeApp` (:func:`serve_app`), which answers
``/recommend`` and ``/feedback`` before FastAPI's middleware and routing, with the same
schemas, errors and metrics.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import queue
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, cast

import numpy as np
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from recloop.errors import CheckpointError, ConfigError, DataError, RecloopError, UnknownIdError
from recloop.serve.batching import GroupWorker, Overloaded
from recloop.serve.metrics import Metrics
from recloop.serve.policy import OnlineLearner, Query, ServingPolicy, user_key
from recloop.serve.schemas import (
    FeedbackIn,
    FeedbackOut,
    RecommendIn,
    RecommendOut,
    ReloadIn,
    answer,
)
from recloop.serve.settings import Settings
from recloop.serve.store import Conflict, EventStore, Feedback, NotShown, Served, open_store

__all__ = ["ServeApp", "Service", "create_app", "serve_app"]


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def new_request_id() -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: a millisecond timestamp, then 74 random bits.

    Time-ordered ids make each new request's rows land at the end of the store's
    ``request_id`` indexes instead of on a random page: at groups of 8 a commit writes
    20 WAL pages instead of 44, and takes 0.56 ms instead of 1.29 (SQLite, here)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 are used
    value = ((ms & (1 << 48) - 1) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
             | 0b10 << 62 | rand & (1 << 62) - 1)  # fmt: skip
    return f"{value:032x}"


# ------------------------------------------------------------------ the service
class Service:
    """The policy, the event store, the online learner's thread and the metrics."""

    def __init__(self, settings: Settings) -> None:
        import torch

        torch.set_num_threads(settings.torch_threads)
        self.settings = settings
        self.metrics = Metrics()
        self.policy = ServingPolicy(settings.run_dir, settings)
        self.store: EventStore = open_store(settings.store_url)
        self.store.flush_requests = settings.flush_requests
        self.schema_version = self.store.schema_version()  # migrations ran at open
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=settings.queue_size)
        self._learn_lock = threading.Lock()
        self._resync = threading.Event()
        self._stop = threading.Event()
        self._forgotten: dict[str, int] = {}
        self.learner = self._rebuilt(self.policy)
        self._thread = threading.Thread(target=self._learn_loop, name="recloop-learner",
                                        daemon=True)  # fmt: skip
        self.recommender: GroupWorker[RecommendIn, bytes] = GroupWorker(
            "recommend", self.recommend_many, settings.max_batch, settings.max_pending
        )
        self.recorder: GroupWorker[FeedbackIn, bytes] = GroupWorker(
            "feedback", self.feedback_many, settings.max_batch, settings.max_pending
        )
        self._publish_metrics()

    # ---------------------------------------------------------- online learning
    def _rebuilt(self, policy: ServingPolicy) -> OnlineLearner:
        learner = OnlineLearner(policy)
        learner.apply(
            [{str(k): v for k, v in r.items()} for r in self.store.feedback().to_dict("records")]
        )
        return learner

    def start(self) -> None:
        self._thread.start()
        self.recommender.start()
        self.recorder.start()

    def stop(self) -> None:
        self.recommender.stop()
        self.recorder.stop()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.store.close()

    def _learn_loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self.queue.get(timeout=0.05)]
            except queue.Empty:
                batch = []
            while batch and len(batch) < self.settings.learner_batch:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            if not batch and not self._resync.is_set():
                continue
            with self._learn_lock:
                if self._resync.is_set():
                    self._resync.clear()
                    self.learner = self._rebuilt(self.policy)
                else:
                    rows = [
                        r for r in batch if int(r["seq"]) > self._forgotten.get(r["user_key"], 0)
                    ]
                    self.learner.apply(rows)
            self._publish_metrics()

    def wait_learned(self, timeout: float = 10.0) -> None:
        """Block until the queue is empty and applied (for tests and the CLI)."""
        end = time.monotonic() + timeout
        while (not self.queue.empty() or self._resync.is_set()) and time.monotonic() < end:
            time.sleep(0.01)
        with self._learn_lock:
            pass

    def _publish_metrics(self) -> None:
        m = self.metrics
        m.model_version = self.model_version
        m.set("recloop_online_updates", "Feedback events applied by the online learner.",
              self.learner.snapshot.version)  # fmt: skip
        m.set("recloop_learner_queue", "Events waiting for the online learner.", self.queue.qsize())
        for w in (self.recommender, self.recorder):
            m.set(f"recloop_{w.name}_groups", f"Groups the {w.name} worker has served "
                  "(each: one model call or one commit).", w.groups)  # fmt: skip
            m.set(f"recloop_{w.name}_grouped", f"Requests the {w.name} worker has served.", w.jobs)

    @property
    def model_version(self) -> str:
        return f"{self.policy.version}+{self.learner.snapshot.version}"

    # ---------------------------------------------------------- handlers
    def recommend_many(self, bodies: list[RecommendIn]) -> list[bytes | Exception]:
        """Answer a group of ``/recommend`` requests (the recommend worker's job): one
        batched model call, one transaction for their log rows. Each answer is JSON bytes,
        or the error of that request alone."""
        policy, snapshot = self.policy, self.learner.snapshot
        s = self.settings
        version = f"{policy.version}+{snapshot.version}"
        out: list[bytes | Exception | None] = [None] * len(bodies)
        todo: list[tuple[int, str, str, str, Query]] = []
        for n, body in enumerate(bodies):
            if body.k > s.max_k:
                out[n] = HttpError(422, f"k={body.k} is above the limit of {s.max_k}; ask for "
                                        f"fewer items")  # fmt: skip
                continue
            request_id = body.request_id or new_request_id()
            user_id = body.user_id if body.user_id is not None else f"anonymous-{request_id}"
            key = user_key(user_id, s.pseudonymize_key)
            exploration = body.exploration or s.exploration
            rng = None  # the greedy ranking draws nothing; seeding a generator costs 60 µs
            if exploration != "none":
                digest = int(hashlib.sha256(request_id.encode()).hexdigest()[:16], 16)
                rng = np.random.default_rng([s.seed, digest])
            query = Query(key, body.k, exploration, rng, body.history, body.exclude)
            todo.append((n, request_id, user_id, key, query))
        recs = policy.recommend_many([t[4] for t in todo], snapshot)
        served, answers = [], []
        for (n, request_id, user_id, key, query), rec in zip(todo, recs, strict=True):
            if isinstance(rec, Exception):
                out[n] = rec
                continue
            ids = [policy.item_ids[i] for i in rec.items]
            served.append(Served(request_id, key, version, query.exploration,
                                 tuple(zip(ids, rec.scores.tolist(), rec.slot_prob.tolist(),
                                           strict=True)), rec.slate_prob))  # fmt: skip
            answers.append((n, request_id, user_id, query.exploration, rec))
        conflicts = self.store.log_requests(served) if served else []
        for (n, request_id, user_id, exploration, rec), conflict in zip(answers, conflicts,
                                                                         strict=True):  # fmt: skip
            out[n] = conflict or answer(policy, rec, request_id, user_id, version, exploration)
        return cast("list[bytes | Exception]", out)  # every slot is filled above

    def feedback_many(self, bodies: list[FeedbackIn]) -> list[bytes | Exception]:
        """Store a group of ``/feedback`` events in one transaction (the feedback worker's
        job; one commit, so every event is durable before any is answered), then queue the
        new ones for the online learner."""
        keys = [user_key(b.user_id, self.settings.pseudonymize_key) for b in bodies]
        events = [Feedback(b.event_id, b.request_id, key, b.item_id, b.type, b.value)
                  for b, key in zip(bodies, keys, strict=True)]  # fmt: skip
        results = self.store.add_feedback_many(events)
        out: list[bytes | Exception] = []
        for body, key, result in zip(bodies, keys, results, strict=True):
            if isinstance(result, Exception):
                out.append(result)
                continue
            seq, duplicate = result
            if not duplicate:
                self._learn({"seq": seq, "user_key": key, "item_id": body.item_id,
                             "type": body.type, "value": body.value})  # fmt: skip
            out.append(FeedbackOut(event_id=body.event_id, stored=True, duplicate=duplicate,
                                   seq=seq).model_dump_json().encode())  # fmt: skip
        return out

    def _learn(self, row: dict[str, Any]) -> None:
        self.metrics.inc("recloop_events_stored_total", "Feedback events stored.")
        try:
            self.queue.put_nowait(row)
        except queue.Full:  # stored durably; the learner re-reads the log
            self.metrics.inc("recloop_learner_overflows_total",
                             "Events the learner's queue could not take (re-read from the log).")  # fmt: skip
            self._resync.set()

    def reload(self, run_dir: str) -> dict[str, Any]:
        from dataclasses import replace

        settings = replace(self.settings, run_dir=run_dir)
        policy = ServingPolicy(run_dir, settings)  # fails before anything changes
        with self._learn_lock:
            learner = self._rebuilt(policy)
            self.settings, self.policy, self.learner = settings, policy, learner
        self._publish_metrics()
        return {"model_version": self.model_version, "run_dir": run_dir}

    def delete_user(self, user_id: str) -> dict[str, Any]:
        key = user_key(user_id, self.settings.pseudonymize_key)
        with self._learn_lock:
            top = self.store.max_seq()
            deleted = self.store.delete_user(key)
            self._forgotten[key] = top
            self.learner = self._rebuilt(self.policy)
        self._publish_metrics()
        return {"user_id": user_id, "deleted": deleted, "model_version": self.model_version}


# ------------------------------------------------------------------ the app
_bearer = HTTPBearer(auto_error=False)


async def _admin(  # async: a dependency that only reads needs no thread-pool hop
    request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    token = request.app.state.service.settings.admin_token
    if cred is None:
        raise HttpError(401, "admin endpoints need 'Authorization: Bearer <token>'",
                        {"WWW-Authenticate": "Bearer"})  # fmt: skip
    if not token:
        raise HttpError(403, "admin endpoints are disabled; start the server with "
                             "RECLOOP_ADMIN_TOKEN set")  # fmt: skip
    if not hmac.compare_digest(cred.credentials.encode(), token.encode()):
        raise HttpError(403, "the bearer token is wrong")


async def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]
public = APIRouter()
admin = APIRouter(prefix="/admin", dependencies=[Depends(_admin)])


@public.post("/recommend", response_model=RecommendOut)
async def recommend(body: RecommendIn, service: ServiceDep) -> Response:
    # queued for the recommend worker, which serves concurrent requests as one group
    return Response(await service.recommender(body), media_type="application/json")


@public.post("/feedback", response_model=FeedbackOut)
async def feedback(body: FeedbackIn, service: ServiceDep) -> Response:
    # answered after the worker's group commit: the event is durable before the 200
    return Response(await service.recorder(body), media_type="application/json")


@public.get("/health")
def health(service: ServiceDep) -> dict[str, Any]:
    return {"status": "ok", "model_version": service.model_version,
            "store": service.store.dialect, "schema_version": service.schema_version}  # fmt: skip


@public.get("/metrics", response_class=PlainTextResponse)
def metrics(service: ServiceDep) -> PlainTextResponse:
    service._publish_metrics()
    return PlainTextResponse(service.metrics.render(),
                             media_type="text/plain; version=0.0.4; charset=utf-8")  # fmt: skip


@admin.post("/reload")
def reload(body: ReloadIn, service: ServiceDep) -> dict[str, Any]:
    return service.reload(body.run_dir)


@admin.delete("/users/{user_id}")
def delete_user(user_id: str, service: ServiceDep) -> dict[str, Any]:
    if "\x00" in user_id:
        raise HttpError(422, "user_id may not contain the NUL character (%00)")
    return service.delete_user(user_id)


ENDPOINTS = {"/recommend", "/feedback", "/health", "/metrics", "/admin/reload"}


class _Timing:
    """ASGI middleware: request count and latency per endpoint."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = scope["path"]
            endpoint = path if path in ENDPOINTS else (
                "/admin/users" if path.startswith("/admin/users/") else "other")  # fmt: skip
            service = getattr(scope["app"].state, "service", None) if "app" in scope else None
            if service is not None:
                service.metrics.observe(endpoint, status["code"], time.perf_counter() - t0)


class ServeApp:
    """The ASGI application ``recloop serve`` runs: the FastAPI app of :func:`create_app`,
    with ``POST /recommend`` and ``POST /feedback`` sent straight to their workers.

    FastAPI's and Starlette's middleware, routing, dependency solving and request objects
    cost about 0.3 ms of the ~1.5 ms of server CPU a request took under load; these two
    routes carry nearly all of the traffic, so they skip that stack. The body is validated
    by the same pydantic schemas (``model_validate_json``, one pass from bytes), errors get
    the same ``{"error": ...}`` bodies and statuses as the app's exception handlers, the
    request is counted in ``/metrics`` as any other, and everything else (the lifespan,
    the other routes, the OpenAPI documentation of these two) is FastAPI's.
    """

    def __init__(self, api: FastAPI) -> None:
        self.api = api

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        route = _HOT.get(scope["path"]) if scope["type"] == "http" else None
        service = getattr(self.api.state, "service", None) if route else None
        if route is None or service is None or scope["method"] != "POST":
            await self.api(scope, receive, send)
            return
        t0 = time.perf_counter()
        schema, worker = route
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, str] | None = None
        try:
            job = schema.model_validate_json(body)
            status, payload = 200, await getattr(service, worker)(job)
        except ValidationError as exc:
            status, payload = 422, _invalid_body(exc.errors(), body)
        except Exception as exc:  # the app's exception handlers, as one table
            status, message, headers = _status_of(exc)
            payload = orjson.dumps({"error": message})
        raw = [(b"content-type", b"application/json"),
               (b"content-length", str(len(payload)).encode())]  # fmt: skip
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})
        service.metrics.observe(scope["path"], status, time.perf_counter() - t0)


def serve_app(settings: Settings | None = None) -> ServeApp:
    """What ``recloop serve`` runs: :func:`create_app` with the fast hot routes."""
    return ServeApp(create_app(settings))


_HOT: dict[str, tuple[Any, str]] = {
    "/recommend": (RecommendIn, "recommender"),
    "/feedback": (FeedbackIn, "recorder"),
}


def _status_of(exc: Exception) -> tuple[int, str, dict[str, str] | None]:
    """(status, error message, headers) of an exception raised by a handler or worker."""
    if isinstance(exc, HttpError):
        return exc.status, exc.message, exc.headers
    if isinstance(exc, Overloaded):
        return 503, str(exc), {"Retry-After": "1"}
    if isinstance(exc, Conflict):
        return 409, str(exc), None
    if isinstance(exc, NotShown):
        return 404, str(exc), None
    if isinstance(exc, RecloopError):
        client = isinstance(exc, DataError | UnknownIdError | ConfigError | CheckpointError)
        return (422 if client else 500), str(exc), None
    return 500, f"internal error ({type(exc).__name__}); see the server log", None


def _invalid_body(errors: Any, body: bytes) -> bytes:
    if not body.strip():
        return orjson.dumps({"error": "invalid request: body: Field required (send a JSON "
                                      "object)"})  # fmt: skip
    return orjson.dumps({"error": _validation_message(errors)})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_message(errors: Any) -> str:
    parts = []
    for err in errors:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service's FastAPI app; the run is loaded once, in the lifespan."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        # few handler threads: more only contend for the GIL and stretch the latency tail
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.handler_threads
        service = Service(settings)
        service.start()
        app.state.service = service
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="recloop", lifespan=lifespan)
    app.include_router(public)
    app.include_router(admin)
    app.add_middleware(_Timing)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}",
                      getattr(exc, "headers", None))  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc.errors()))

    async def _known(_: Request, exc: Exception) -> JSONResponse:
        return _error(*_status_of(exc))

    for kind in (HttpError, Overloaded, Conflict, NotShown, RecloopError, Exception):
        app.add_exception_handler(kind, _known)

    return app
