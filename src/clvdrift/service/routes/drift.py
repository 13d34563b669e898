"""Online drift: feature rows against the champion's reference profile, stored as drift events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from clvdrift.errors import DataError
from clvdrift.pipeline import serving
from clvdrift.pipeline.serving import online_drift, record_drift
from clvdrift.service.deps import (
    ServiceState,
    decode_body,
    error_responses,
    get_state,
    json_response,
    require_key,
)
from clvdrift.service.routes.predict import FeatureRow

router = APIRouter(tags=["drift"], dependencies=[Depends(require_key)], responses=error_responses(401))
NumericalTest = Literal["psi", "ks", "wasserstein", "jensenshannon"]
CategoricalTest = Literal["chisquare", "psi", "jensenshannon", "z"]


ROWS_MAX = 10_000


class DriftRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # as the decoder (msgspec) refuses unknown keys

    rows: list[FeatureRow] = Field(min_length=1, max_length=ROWS_MAX)
    numerical_test: NumericalTest = Field(default="psi", description="the test of numerical features")
    categorical_test: CategoricalTest = Field(
        default="chisquare", description="the test of categorical features (z: two categories only)"
    )


class _DriftBody(msgspec.Struct, forbid_unknown_fields=True):
    """:class:`DriftRequest` as msgspec decodes it (one pass, typed)."""

    rows: list[serving.FeatureRow]  # type: ignore[name-defined]
    numerical_test: NumericalTest = "psi"
    categorical_test: CategoricalTest = "chisquare"


@router.post(
    "/drift",
    summary="Drift of feature rows against the champion's reference, per feature",
    responses=error_responses(413, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DriftRequest.model_json_schema()}},
        }
    },
)
async def drift(request: Request, state: ServiceState = Depends(get_state)) -> Response:
    body = await decode_body(request, _DriftBody)
    if not 1 <= len(body.rows) <= ROWS_MAX:
        raise DataError(f"rows: 1 to {ROWS_MAX:,} per request, got {len(body.rows):,}")
    return json_response(await run_in_threadpool(_drift, state, body))


def _drift(state: ServiceState, body: _DriftBody) -> dict[str, Any]:
    champion = state.champion.get()
    config = state.config
    result = online_drift(
        champion,
        body.rows,
        numerical_test=body.numerical_test,
        categorical_test=body.categorical_test,
        warning=config.drift_warning,
        critical=config.drift_critical,
    )
    record_drift(state.engine, result)
    state.metrics.drift(result)
    return result.to_dict()


@router.get("/drift/history", summary="Stored drift events, newest first")
def drift_history(
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    model_version: Annotated[str | None, Query(max_length=64)] = None,
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    from clvdrift.store.online import DriftEvents

    events = DriftEvents(state.engine).list(limit=limit, model_version=model_version)
    return {"events": [e.to_dict() for e in events]}
