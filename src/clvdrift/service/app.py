"""The FastAPI application (``clvdrift serve``): :func:`create_app`.

Every error becomes ``{"error": {"type", "message", "request_id"}}`` with the status of its class
(:func:`clvdrift.errors.http_status`). A client error (4xx) says what is wrong with the request; a server
error (5xx: the store, the model's files, the disk, a bug) says only what kind it is (:data:`GENERIC`),
never a path, a URL or a traceback, and the log has the details under the same request id. An unexpected
error is answered inside the middleware, so the client's keep-alive connection stays open. Every response
carries ``X-Request-ID`` (the client's, when it sent a sane one). Request bodies above
``service.max_body_bytes`` are refused with 413 before they are read whole.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clvdrift import __version__
from clvdrift.config import ServiceConfig
from clvdrift.errors import ClvdriftError, HistoryIntegrityError, NoChampionError, http_status, storage_error
from clvdrift.observability.logging import get_logger, log_context
from clvdrift.pipeline.common import Workspace
from clvdrift.service.deps import ServiceState
from clvdrift.service.metrics import ServiceMetrics
from clvdrift.urls import mask_url

log = get_logger(__name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _error(status: int, kind: str, message: str, request_id: str | None) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": kind, "message": message, "request_id": request_id}},
        status_code=status,
        headers={"X-Request-ID": request_id} if request_id else None,
    )


class RequestContext:
    """Pure ASGI middleware: the request id (header and log context), the body size limit, and the
    request metrics (count and latency by route and status)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: ServiceMetrics) -> None:
        self.app, self.max_body_bytes, self.metrics = app, max_body_bytes, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *[(k, v) for k, v in message["headers"] if k.lower() != b"x-request-id"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        length = headers.get("content-length")
        too_big = length is not None and length.isdigit() and int(length) > self.max_body_bytes
        started = {"response": False}

        async def send_tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                started["response"] = True
            await send_with_id(message)

        try:
            with log_context(request_id=request_id):
                if too_big:
                    await self._refuse(send_tracked, request_id)
                else:
                    try:
                        await self.app(scope, self._limited(scope, receive), send_tracked)
                    except Exception as exc:  # not one of ours: answered here, so the connection stays
                        if started["response"]:
                            raise
                        await _unexpected_response(exc, scope, request_id)(scope, _no_receive, send_tracked)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(
                scope.get("method", "GET"), path, status["code"], time.perf_counter() - start
            )

    async def _refuse(self, send: Send, request_id: str) -> None:
        response = _error(
            413,
            "PayloadTooLarge",
            f"the request body is larger than {self.max_body_bytes} bytes (CLVDRIFT_SERVICE__MAX_BODY_BYTES)",
            request_id,
        )
        await response({"type": "http"}, _no_receive, send)

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        """``receive`` counting the body's bytes (a chunked body has no Content-Length): beyond the limit
        it raises, and the scope says why (FastAPI turns an error while it parses a body into a 400)."""
        seen = {"bytes": 0}
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > limit:
                    scope["state"]["body_too_large"] = True
                    raise _BodyTooLarge()
            return message

        return wrapped


class _BodyTooLarge(Exception):
    pass


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


GENERIC = {
    500: "internal error of the server",
    503: "the store cannot answer now",
    507: "the server's disk cannot take the write",
}
"""What a server-side error (5xx) says to the client: never its own message, which may name the server's
paths or the store's URL; the log has it under the request id."""


def _unexpected_response(exc: Exception, scope: Scope, request_id: str) -> JSONResponse:
    """The answer to an exception no handler took (a bug, or a disk error), logged with the request id."""
    disk = storage_error(exc)
    if disk is not None:
        log.error("storage error: %s", disk)
        return _error(507, "StorageError", GENERIC[507] + f" (logged as request {request_id})", request_id)
    log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
    return _error(500, "InternalError", f"unexpected error (logged as request {request_id})", request_id)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServiceState = app.state.clvdrift
    await run_in_threadpool(state.champion.refresh)
    tasks = [asyncio.create_task(_poll_champion(state)), asyncio.create_task(_flush_predictions(state))]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await run_in_threadpool(state.predictions.flush)


async def _poll_champion(state: ServiceState) -> None:
    while True:
        await asyncio.sleep(state.config.champion_poll_seconds)
        try:
            await run_in_threadpool(state.champion.refresh)
        except Exception as exc:  # the poller must survive anything: the next round tries again
            log.error("champion poll failed: %s", exc)


async def _flush_predictions(state: ServiceState) -> None:
    while True:
        await asyncio.sleep(min(1.0, state.config.prediction_log_seconds))
        if state.predictions.due():
            try:
                await run_in_threadpool(state.predictions.flush)
            except Exception as exc:
                log.error("prediction log flush failed: %s", exc)


def create_app(workspace: Workspace, config: ServiceConfig = ServiceConfig()) -> FastAPI:
    """The application over ``workspace`` (its store is migrated on start)."""
    from clvdrift.service.routes import dashboard, drift, ingest, ops, predict, registry

    app = FastAPI(
        title="clvdrift",
        version=__version__,
        description="Customer lifetime value: ingestion, prediction, online drift, the model registry "
        "and the monitoring runs. Every endpoint but /health, /ready and /metrics needs an API key "
        "(X-API-Key header; `clvdrift apikey create`).",
        lifespan=_lifespan,
    )
    state = ServiceState.open(workspace, config)
    app.state.clvdrift = state
    metrics = ServiceMetrics(state)
    app.state.metrics = state.metrics = metrics
    for module in (ops, ingest, predict, drift, registry, dashboard):
        app.include_router(module.router)

    @app.exception_handler(ClvdriftError)
    async def _clvdrift_error(request: Request, exc: ClvdriftError) -> JSONResponse:
        status, rid = http_status(exc), _rid(request)
        if status < 500 or isinstance(exc, NoChampionError):
            return _error(status, type(exc).__name__, mask_url(str(exc)), rid)
        with log_context(request_id=rid):  # the details stay in the log (module docstring)
            log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        generic = GENERIC.get(status, GENERIC[500])
        if isinstance(exc, HistoryIntegrityError):
            generic = "the transaction history is damaged: `clvdrift history verify` says where"
        return _error(status, type(exc).__name__, f"{generic} (logged as request {rid})", rid)

    async def _refused_key(request: Request) -> JSONResponse | None:
        """The 401 of a protected route's request without a valid key: FastAPI parses a body before the
        route's dependencies run, so a bad body must not say more than "no key" to a caller without one."""
        from clvdrift.errors import AuthError
        from clvdrift.service.deps import require_key

        route = request.scope.get("route")
        needs_key = any(
            getattr(d, "dependency", None) is require_key for d in getattr(route, "dependencies", ())
        )
        if not needs_key:
            return None
        try:
            await require_key(request, request.headers.get("x-api-key"), state)
        except AuthError as exc:
            return _error(401, "AuthError", str(exc), _rid(request))
        return None

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        refused = await _refused_key(request)
        if refused is not None:
            return refused
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5]]
        return _error(422, "ValidationError", "; ".join(problems) or "invalid request", _rid(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if request.scope.get("state", {}).get("body_too_large"):  # FastAPI's 400 for our refusal
            return await _too_large(request, _BodyTooLarge())
        if exc.status_code == 400:  # a body FastAPI could not parse: no key, no more said
            refused = await _refused_key(request)
            if refused is not None:
                return refused
        response = _error(exc.status_code, "HTTPError", str(exc.detail), _rid(request))
        response.headers.update(exc.headers or {})  # e.g. the Allow of a 405
        return response

    @app.exception_handler(_BodyTooLarge)
    async def _too_large(request: Request, exc: _BodyTooLarge) -> JSONResponse:
        return _error(
            413,
            "PayloadTooLarge",
            f"the request body is larger than {config.max_body_bytes} bytes",
            _rid(request),
        )

    app.add_middleware(RequestContext, max_body_bytes=config.max_body_bytes, metrics=metrics)
    return app


def _rid(request: Request) -> str | None:
    value: Any = request.scope.get("state", {}).get("request_id")
    return str(value) if value else None
