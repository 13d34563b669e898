"""Prediction: by feature row or by customer id (features from the ingested history)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Request, Response
from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict, StrictInt, StrictStr, model_validator
from starlette.concurrency import run_in_threadpool

from clvdrift.errors import ConfigError, DataError
from clvdrift.pipeline import serving
from clvdrift.pipeline.serving import CATEGORICAL_FEATURES, NUMERICAL_FEATURES, predict_rows
from clvdrift.service.deps import (
    ServiceState,
    decode_body,
    error_responses,
    get_state,
    json_response,
    require_key,
)

router = APIRouter(tags=["prediction"], dependencies=[Depends(require_key)], responses=error_responses(401))

_FEATURE_ROW = {
    "type": "object",
    "description": "the champion's input features (GET /models/{version} lists them)",
    "properties": {
        **{c: {"type": ["number", "null"]} for c in NUMERICAL_FEATURES},
        **{c: {"type": "string", "maxLength": 64} for c in CATEGORICAL_FEATURES},
    },
}
FeatureValue = Annotated[float, Strict(), AllowInfNan(False)] | StrictInt | StrictStr | None
FeatureRow = Annotated[dict[str, FeatureValue], Field(json_schema_extra=_FEATURE_ROW)]
CustomerId = Annotated[str, Field(min_length=1, max_length=64)] | StrictInt


class PredictRequest(BaseModel):
    """One customer or a few: either ``customers`` (ids; features from the ingested history) or ``rows``
    (feature rows)."""

    model_config = ConfigDict(extra="forbid")  # as the decoder (msgspec) refuses unknown keys

    customers: list[CustomerId] | None = Field(default=None, min_length=1, max_length=100)
    rows: list[FeatureRow] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if (self.customers is None) == (self.rows is None):
            raise ValueError("give either customers (ids) or rows (feature rows)")
        return self


PREDICT_MAX = 100
BATCH_MAX = 10_000


class PredictBatchRequest(PredictRequest):
    customers: list[CustomerId] | None = Field(default=None, min_length=1, max_length=BATCH_MAX)
    rows: list[FeatureRow] | None = Field(default=None, min_length=1, max_length=BATCH_MAX)


class Prediction(BaseModel):
    customer_id: str | None = None
    predicted_revenue: float


class PredictResponse(BaseModel):
    model_version: str
    family: str
    horizon_days: int
    model_cutoff: str | None = Field(description="the cutoff the champion was trained at")
    features_cutoff: str | None = Field(
        description="the day the customers' features were computed at (by id); null for given rows"
    )
    features_from: str | None
    total_status: str | None = Field(description="calibrated or uncalibrated (by id)")
    predictions: list[Prediction]


def _predict(state: ServiceState, body: PredictRequest) -> dict[str, Any]:
    champion = state.champion.get()
    base = {
        "model_version": champion.version,
        "family": champion.family,
        "horizon_days": champion.horizon_days,
        "model_cutoff": champion.cutoff,
    }
    if body.rows is not None:
        columns, predicted = predict_rows(champion, body.rows)
        state.predictions.add(champion.version, columns, predicted)
        state.metrics.predicted(champion.version, "row", len(predicted))
        return {
            **base,
            "features_cutoff": None,
            "features_from": None,
            "total_status": None,
            "predictions": [{"customer_id": None, "predicted_revenue": float(v)} for v in predicted],
        }
    if champion.training.target != "holdout":
        raise ConfigError(f"the champion {champion.version} predicts the formula target; predict by rows")
    known = state.customers.get(champion)
    found = known.lookup(body.customers or [])
    state.predictions.add(
        champion.version, found[champion.input_features], found["predicted_revenue"].to_numpy()
    )
    state.metrics.predicted(champion.version, "customer", len(found))
    return {
        **base,
        "features_cutoff": known.cutoff,
        "features_from": known.features_from,
        "total_status": known.total_status,
        "predictions": [
            {"customer_id": str(c), "predicted_revenue": float(v)}
            for c, v in found["predicted_revenue"].items()
        ],
    }


class _BatchBody(msgspec.Struct, forbid_unknown_fields=True):
    """:class:`PredictBatchRequest` as msgspec decodes it (one pass, typed)."""

    customers: list[str | int] | None = None
    rows: list[serving.FeatureRow] | None = None  # type: ignore[name-defined]


async def _decoded(request: Request, limit: int) -> PredictBatchRequest:
    raw = await decode_body(request, _BatchBody)
    body = PredictBatchRequest.model_construct(customers=raw.customers, rows=raw.rows)
    try:
        _check_batch(body, limit)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    return body


@router.post(
    "/predict",
    summary="Predict one customer or a few",
    responses={200: {"model": PredictResponse}, **error_responses(404, 413, 422, 503)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
        }
    },
)
async def predict(request: Request, state: ServiceState = Depends(get_state)) -> Response:
    body = await _decoded(request, PREDICT_MAX)
    if body.rows is not None:
        return json_response(_predict(state, body))  # a few rows, CPU-bound: no thread hop
    return json_response(await run_in_threadpool(_predict, state, body))


@router.post(
    "/predict/batch",
    summary="Predict up to 10,000 customers",
    responses={200: {"model": PredictResponse}, **error_responses(404, 413, 422, 503)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PredictBatchRequest.model_json_schema()}},
        }
    },
)
async def predict_batch(request: Request, state: ServiceState = Depends(get_state)) -> Response:
    body = await _decoded(request, BATCH_MAX)
    return json_response(await run_in_threadpool(_predict, state, body))


def _check_batch(body: PredictBatchRequest, limit: int) -> None:
    """What the request models declare, checked on what msgspec decoded (one pass, several times faster
    than pydantic for these bodies)."""
    if (body.customers is None) == (body.rows is None):
        raise ValueError("give either customers (ids) or rows (feature rows)")
    items = body.customers if body.customers is not None else body.rows
    assert items is not None
    if not 1 <= len(items) <= limit:
        raise ValueError(f"customers or rows: 1 to {limit:,} per request, got {len(items):,}")
    if body.customers is not None and any(not 1 <= len(str(c)) <= 64 for c in body.customers):
        raise ValueError("customers: each id is 1-64 characters")
