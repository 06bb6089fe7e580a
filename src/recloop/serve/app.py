"""The HTTP layer: ``create_app(settings)`` builds the FastAPI application around a
:class:`~recloop.serve.service.Service` (the policy, store, learner and workers).

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

import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from recloop.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    RecloopError,
    UnknownIdError,
    moved,
)
from recloop.serve.batching import Overloaded
from recloop.serve.schemas import FeedbackIn, FeedbackOut, RecommendIn, RecommendOut, ReloadIn
from recloop.serve.service import HttpError, Service
from recloop.serve.settings import Settings
from recloop.serve.store import Conflict, NotShown

__all__ = ["ServeApp", "create_app", "serve_app"]


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


#: Names that lived here before the house was reshaped (issue 30), and where they live now.
__getattr__ = moved(
    __name__,
    {
        "Service": "recloop.serve.service",
        "new_request_id": "recloop.serve.service",
        "HttpError": "recloop.serve.service",
    },
)
