"""Prediction: by feature row or by customer id (features from the ingested history)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from clvdrift.errors import ConfigError
from clvdrift.pipeline.serving import CATEGORICAL_FEATURES, NUMERICAL_FEATURES, predict_rows
from clvdrift.service.deps import ServiceState, get_state, require_key

router = APIRouter(tags=["prediction"], dependencies=[Depends(require_key)])

_FEATURE_ROW = {
    "type": "object",
    "description": "the champion's input features (GET /models/{version} lists them)",
    "properties": {
        **{c: {"type": ["number", "null"]} for c in NUMERICAL_FEATURES},
        **{c: {"type": "string", "maxLength": 64} for c in CATEGORICAL_FEATURES},
    },
}
FeatureRow = Annotated[dict[str, float | str | None], Field(json_schema_extra=_FEATURE_ROW)]
CustomerId = Annotated[str, Field(min_length=1, max_length=64)]


class PredictRequest(BaseModel):
    """One customer or a few: either ``customers`` (ids; features from the ingested history) or ``rows``
    (feature rows)."""

    customers: list[CustomerId] | None = Field(default=None, min_length=1, max_length=100)
    rows: list[FeatureRow] | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if (self.customers is None) == (self.rows is None):
            raise ValueError("give either customers (ids) or rows (feature rows)")
        return self


class PredictBatchRequest(PredictRequest):
    customers: list[CustomerId] | None = Field(default=None, min_length=1, max_length=10_000)
    rows: list[FeatureRow] | None = Field(default=None, min_length=1, max_length=10_000)


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


@router.post("/predict", response_model=PredictResponse, summary="Predict one customer or a few")
async def predict(body: PredictRequest, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    if body.rows is not None and len(body.rows) <= 100:
        return _predict(state, body)  # small and CPU-bound: no thread hop
    return await run_in_threadpool(_predict, state, body)


@router.post("/predict/batch", response_model=PredictResponse, summary="Predict up to 10,000 customers")
def predict_batch(body: PredictBatchRequest, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    return _predict(state, body)
