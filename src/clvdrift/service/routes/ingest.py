"""Ingestion: transaction rows appended durably to the history the monitoring cycle reads."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field, TypeAdapter, WithJsonSchema
from starlette.concurrency import run_in_threadpool

from clvdrift.errors import DataError
from clvdrift.pipeline.ingest import IngestResult, TransactionRecord, ingest_records, ingest_stats
from clvdrift.service.deps import ServiceState, error_responses, get_state, require_key

router = APIRouter(tags=["ingestion"], dependencies=[Depends(require_key)], responses=error_responses(401))
_ROW_SCHEMA = TypeAdapter(TransactionRecord).json_schema()

Rows = Annotated[
    list[Any],
    WithJsonSchema({"type": "array", "items": _ROW_SCHEMA, "minItems": 1}),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="a retry with the same key and rows gets the first answer and stores nothing twice",
    ),
]


class IngestBatch(BaseModel):
    rows: Rows = Field(description="transaction lines in the Online Retail schema; each is checked alone")


class IngestResponse(BaseModel):
    request_id: str
    accepted: int
    rejected: int
    rows_added: int = Field(description="rows new to the history (accepted minus exact duplicates)")
    duplicates: int
    batch_id: str | None
    rejects: list[dict[str, Any]] = Field(description="index (0-based) and reason of each rejected row")
    idempotency_key: str | None
    replayed: bool


def _ingest(state: ServiceState, rows: list[Any], key: str | None) -> IngestResult:
    limit = state.config.max_batch_rows
    if len(rows) > limit:
        raise DataError(
            f"{len(rows)} rows in one request; at most {limit} (CLVDRIFT_SERVICE__MAX_BATCH_ROWS)"
        )
    if not rows:
        raise DataError("no rows")
    return ingest_records(state.workspace, rows, idempotency_key=key, engine=state.engine)


@router.post(
    "/ingest/batch",
    response_model=IngestResponse,
    summary="Append a batch of transaction rows",
    responses=error_responses(400, 409, 413, 422, 507),
)
def ingest_batch(
    body: IngestBatch, key: IdempotencyKey = None, state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    return _ingest(state, body.rows, key).to_dict()


@router.post(
    "/ingest/stream",
    response_model=IngestResponse,
    summary="Append transaction rows sent as NDJSON (one JSON object per line)",
    responses=error_responses(409, 413, 422, 507),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string", "description": "one row per line"}}
            },
        }
    },
)
async def ingest_stream(
    request: Request, key: IdempotencyKey = None, state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    rows: list[Any] = []
    buffer = b""
    line_no = 0
    async for chunk in request.stream():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line_no += 1
            rows.append(_line(line, line_no))
    if buffer.strip():
        rows.append(_line(buffer, line_no + 1))
    rows = [r for r in rows if r is not _BLANK]
    result = await run_in_threadpool(_ingest, state, rows, key)
    return result.to_dict()


_BLANK = object()


def _line(line: bytes, number: int) -> Any:
    if not line.strip():
        return _BLANK
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return ValueError(f"line {number} is not valid JSON")
    except RecursionError:
        return ValueError(f"line {number} is nested too deeply")


@router.get("/stats", summary="The history and what ingestion brought (rejects by reason)")
def stats(state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    return ingest_stats(state.workspace, state.engine)
