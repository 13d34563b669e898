"""The service's state and dependencies: the workspace and store, the champion in memory (reloaded after a
promotion or rollback by any process), the customer predictions of the history, the prediction log
buffer, API-key checks. Routes get them through FastAPI dependencies; tests override them."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from fastapi import Depends, Request, Response
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from clvdrift.config import ServiceConfig
from clvdrift.errors import AuthError, ClvdriftError, DataError, NoChampionError
from clvdrift.observability.logging import get_logger
from clvdrift.pipeline.common import Workspace
from clvdrift.pipeline.serving import (
    CustomerPredictions,
    ServingChampion,
    champion_version,
    customer_predictions,
    history_key,
    load_serving_champion,
    log_predictions,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = get_logger(__name__)
KEY_COOKIE = "clvdrift_key"
"""The cookie (HttpOnly, SameSite=Strict) that carries the API key of a browser on the dashboard."""
KEY_CACHE_SECONDS = 5.0
"""A verified API key is trusted this long without asking the store again (a revocation takes effect
within this time)."""


class ChampionHolder:
    """The champion in memory. :meth:`refresh` asks the store for the champion's version (one query) and
    reloads when it changed; a failed load keeps the previous champion serving and says why."""

    def __init__(self, workspace: Workspace, engine: Engine) -> None:
        self.workspace, self.engine = workspace, engine
        self._champion: ServingChampion | None = None
        self.problem: str | None = "not loaded yet"
        self._lock = threading.Lock()

    def get(self) -> ServingChampion:
        champion = self._champion
        if champion is None:
            raise NoChampionError(
                f"no champion model loaded: {self.problem}; train one (`clvdrift train`) or promote one"
            )
        return champion

    @property
    def loaded(self) -> ServingChampion | None:
        return self._champion

    def refresh(self, *, force: bool = False) -> bool:
        """Reload when the registry's champion is not the one in memory (``force``: always); whether a
        new champion was loaded."""
        with self._lock:
            try:
                version = champion_version(self.engine)
            except ClvdriftError as exc:  # the message names the store: the log has it, the API not
                log.error("the store cannot be read: %s", exc)
                self.problem = f"the store cannot be read ({type(exc).__name__}; see the server log)"
                return False
            current = self._champion
            if version is None:
                self._champion, self.problem = None, "no champion is registered"
                return current is not None
            if not force and current is not None and current.version == version:
                return False
            try:
                loaded = load_serving_champion(self.workspace, self.engine)
            except ClvdriftError as exc:
                serving = f"; still serving {current.version}" if current is not None else ""
                self.problem = (
                    f"the registry's champion {version} cannot be loaded ({type(exc).__name__}; see the "
                    f"server log){serving}"
                )
                log.error("champion %s cannot be loaded: %s", version, exc)
                return False
            self._champion, self.problem = loaded, None
            log.info("serving champion %s", loaded.version, extra={"model_version": loaded.version})
            return True


class CustomerCache:
    """Every customer's prediction from the history, recomputed when the history or the champion changed."""

    def __init__(self, workspace: Workspace, engine: Engine) -> None:
        self.workspace, self.engine = workspace, engine
        self._value: CustomerPredictions | None = None
        self._lock = threading.Lock()

    def get(self, champion: ServingChampion) -> CustomerPredictions:
        with self._lock:
            key = history_key(self.workspace, self.engine)
            value = self._value
            if value is None or value.version != champion.version or value.key != key:
                value = customer_predictions(self.workspace, champion, self.engine)
                self._value = value
            return value


@dataclass
class PredictionBuffer:
    """Served predictions waiting to be written to the prediction log (:func:`log_predictions`)."""

    workspace: Workspace
    engine: Engine
    max_rows: int
    max_seconds: float
    _frames: list[tuple[str, Any, Any]] = field(default_factory=list)
    _rows: int = 0
    _oldest: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    logged_batches: int = 0

    def add(self, version: str, features: Mapping[str, Any] | pd.DataFrame, predictions: Any) -> None:
        """Buffer served predictions: ``features`` column by column (or a frame), one prediction each."""
        with self._lock:
            self._frames.append((version, features, predictions))
            self._rows += len(predictions)
            if self._oldest is None:
                self._oldest = time.monotonic()

    def due(self) -> bool:
        with self._lock:
            return self._rows >= self.max_rows or (
                self._oldest is not None and time.monotonic() - self._oldest >= self.max_seconds
            )

    def flush(self) -> int:
        """Write what is buffered, one part per champion version; the batches written."""
        with self._lock:
            frames, self._frames, self._rows, self._oldest = self._frames, [], 0, None
        by_version: dict[str, list[tuple[Any, Any]]] = {}
        for version, features, predictions in frames:
            by_version.setdefault(version, []).append((features, predictions))
        written = 0
        for version, parts in by_version.items():
            try:
                log_predictions(self.workspace, self.engine, version, _concat(parts))
                written += 1
            except Exception as exc:  # logging predictions must never fail a prediction, nor stop the log
                log.error("cannot log %d predictions of %s: %s", sum(len(p) for _, p in parts), version, exc)
        self.logged_batches += written
        return written


def _concat(parts: list[tuple[Any, Any]]) -> pd.DataFrame:
    """One frame of buffered (features, predictions) pairs, joined column by column (no frame per
    request: at 1,000 requests/s building one per request costs more than the prediction)."""
    frames = [f for f, _ in parts if isinstance(f, pd.DataFrame)]
    columns = [f for f, _ in parts if not isinstance(f, pd.DataFrame)]
    pieces = []
    if columns:
        names = list(columns[0])
        joined = {
            n: np.concatenate(
                [np.asarray(c[n], dtype=object if isinstance(c[n], list) else None) for c in columns]
            )
            for n in names
        }
        pieces.append(pd.DataFrame(joined))
    pieces += frames
    frame = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]
    predictions = [np.asarray(p, dtype=np.float64) for f, p in parts if not isinstance(f, pd.DataFrame)]
    predictions += [np.asarray(p, dtype=np.float64) for f, p in parts if isinstance(f, pd.DataFrame)]
    return frame.assign(prediction=np.concatenate(predictions))


class KeyChecker:
    def __init__(self, engine: Engine) -> None:
        from clvdrift.store.apikeys import ApiKeys

        self.keys = ApiKeys(engine)
        self._cache: dict[str, tuple[str, float]] = {}

    def cached(self, key: str | None) -> str | None:
        """The key id of a key verified less than :data:`KEY_CACHE_SECONDS` ago (no store query)."""
        hit = self._cache.get(key) if key else None
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def check(self, key: str | None) -> str:
        if not key:
            raise AuthError("an API key is required: send it as the X-API-Key header")
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        key_id = self.keys.verify(key)
        if key_id is None:
            self._cache.pop(key, None)
            raise AuthError("the API key is unknown or revoked")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (key_id, now + KEY_CACHE_SECONDS)
        return key_id


@dataclass
class ServiceState:
    workspace: Workspace
    config: ServiceConfig
    engine: Engine
    champion: ChampionHolder
    customers: CustomerCache
    predictions: PredictionBuffer
    keys: KeyChecker
    metrics: Any = None
    """The :class:`clvdrift.service.metrics.ServiceMetrics` of the app (set by ``create_app``)."""

    @classmethod
    def open(cls, workspace: Workspace, config: ServiceConfig) -> ServiceState:
        from clvdrift.store import connect

        engine = connect(workspace.database_url)
        return cls(
            workspace=workspace,
            config=config,
            engine=engine,
            champion=ChampionHolder(workspace, engine),
            customers=CustomerCache(workspace, engine),
            predictions=PredictionBuffer(
                workspace, engine, config.prediction_log_rows, config.prediction_log_seconds
            ),
            keys=KeyChecker(engine),
        )


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.clvdrift
    return state


_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key (`clvdrift apikey create`)"
)


async def require_key(
    request: Request, key: str | None = Depends(_key_header), state: ServiceState = Depends(get_state)
) -> str:
    """The key id of the request's valid API key; 401 otherwise. The key is read from the ``X-API-Key``
    header, an ``Authorization: Bearer`` header, or the dashboard's cookie (:data:`KEY_COOKIE`, set by
    its sign-in form)."""
    if not key:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
    if not key:
        key = request.cookies.get(KEY_COOKIE)
    known = state.keys.cached(key)  # the common case: no store query, no thread
    return known if known is not None else await run_in_threadpool(state.keys.check, key)


def json_response(payload: Any, status_code: int = 200) -> Response:
    """``payload`` encoded with msgspec (several times faster than the standard library for the 10,000
    rows of a batch answer); non-finite floats are refused by the encoder, so callers pass plain numbers."""
    import msgspec

    return Response(msgspec.json.encode(payload), status_code=status_code, media_type="application/json")


async def decode_body(request: Request, kind: Any) -> Any:
    """The request's JSON body decoded and type-checked into ``kind`` (a ``msgspec.Struct``) in one pass:
    for the batch endpoints, where the standard library plus pydantic cost more than the work itself. A
    body that does not parse or fit is a :class:`DataError` (422) saying where."""
    import msgspec

    body = await request.body()
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise DataError(f"request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise DataError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:  # msgspec skipping an ignored key's deeply nested value
        raise DataError("request body is nested too deeply") from None


ERROR_BODY = {
    "type": "object",
    "description": "every error answer's body",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message", "request_id"],
            "properties": {
                "type": {"type": "string", "description": "the error's class, e.g. DataError, AuthError"},
                "message": {"type": "string", "description": "one line: what is wrong and where"},
                "request_id": {
                    "type": ["string", "null"],
                    "description": "also in the X-Request-ID header and the server's log",
                },
            },
        }
    },
}


_ERROR_MEANING = {
    400: "a body that is not JSON, or a setting or parameter that cannot work",
    401: "no valid API key (X-API-Key header)",
    404: "not found (the message names what)",
    409: "a conflict: e.g. an Idempotency-Key reused with other rows, or another run holds the lock",
    413: "the request body is larger than the limit",
    422: "the body or a parameter is invalid (the message says where)",
    503: "no champion yet, or the store cannot be reached",
    507: "the disk is full; nothing was stored",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of these error statuses (JSON, :data:`ERROR_BODY`, whatever the route's
    own media type)."""
    return {
        s: {"description": _ERROR_MEANING[s], "content": {"application/json": {"schema": ERROR_BODY}}}
        for s in statuses
    }
