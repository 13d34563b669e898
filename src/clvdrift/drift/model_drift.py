"""Model-performance drift: the champion's quality on current data against its held-out quality.

The reference figures are the held-out (test-split) metrics recorded when the model was trained —
never in-sample ones. Model drift is detected when either

- R² drops by more than ``DriftConfig.r2_drop_threshold`` (the seed's 10% by default) relative to the
  reference: ``(R²_ref − R²_cur) / |R²_ref|``; or
- MAE rises by more than ``DriftConfig.mae_increase_threshold`` relative to the reference:
  ``(MAE_cur − MAE_ref) / MAE_ref``.

The second rule exists because R² alone is a weak signal for heavy-tailed CLV: a handful of very
large customers can push the held-out R² of a good ranking model below zero, and a relative drop from a
negative R² says little. MAPE is not used: a large share of holdout targets is 0.

When current labels are not available yet (the holdout target needs H days after the cutoff), or fewer
than ``DriftConfig.min_scored_customers`` customers have them (two customers make a Spearman of ±1), the
result says so (``labels_available = False``, ``detected = False``, a ``note``) instead of inventing
a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clvdrift.config import DriftConfig
from clvdrift.jsonable import dataclass_dict

__all__ = ["ModelDriftResult", "detect_model_drift"]


@dataclass(frozen=True)
class ModelDriftResult:
    """See the module docstring; ``to_dict()`` is the ``model_drift`` part of the drift report."""

    labels_available: bool
    detected: bool
    reference: dict[str, float]
    current: dict[str, float] | None
    r2_drop: float | None
    mae_increase: float | None
    r2_drop_threshold: float
    mae_increase_threshold: float
    reasons: list[str] = field(default_factory=list)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation (non-finite numbers become ``None``, see :mod:`clvdrift.jsonable`)."""
        return dataclass_dict(self)


def _relative(change: float, base: float) -> float:
    if not (math.isfinite(change) and math.isfinite(base)):
        return math.nan
    return change / abs(base) if base != 0 else (math.inf if change > 0 else 0.0)


def detect_model_drift(
    reference: Mapping[str, float | None],
    actual: np.ndarray | None,
    predicted: np.ndarray | None,
    config: DriftConfig,
    note: str | None = None,
) -> ModelDriftResult:
    """Compare current quality (``actual`` vs ``predicted``) with the ``reference`` metrics
    (a mapping with at least ``r2`` and ``mae``), with ``config``'s ``r2_drop_threshold`` and
    ``mae_increase_threshold``. Pass ``actual=None`` when labels are not available."""
    from clvdrift.model.evaluate import regression_metrics

    r2_drop_threshold, mae_increase_threshold = config.r2_drop_threshold, config.mae_increase_threshold
    # a metric stored as null (undefined when the champion was evaluated) is NaN here: its rule cannot fire
    ref = {k: math.nan if v is None else float(v) for k, v in reference.items()}
    if actual is None or predicted is None or len(actual) < config.min_scored_customers:
        scored = 0 if actual is None or predicted is None else len(actual)
        if scored:  # labels, but on too few customers to judge the model by
            few = (
                f"only {scored} customer(s) with matured labels to score, fewer than "
                f"{config.min_scored_customers} (min_scored_customers); model drift not assessed"
            )
            note = few if note is None else f"{note}; {few}"
        return ModelDriftResult(
            labels_available=False,
            detected=False,
            reference=ref,
            current=None,
            r2_drop=None,
            mae_increase=None,
            r2_drop_threshold=r2_drop_threshold,
            mae_increase_threshold=mae_increase_threshold,
            note=note or "current labels are not available yet; model drift not assessed",
        )
    cur = regression_metrics(actual, predicted)
    r2_drop = _relative(ref["r2"] - cur["r2"], ref["r2"])
    mae_increase = _relative(cur["mae"] - ref["mae"], ref["mae"])
    reasons = []
    if (math.isfinite(r2_drop) and r2_drop > r2_drop_threshold) or (math.isinf(r2_drop) and r2_drop > 0):
        reasons.append(
            f"R² fell from {ref['r2']:.3f} to {cur['r2']:.3f} "
            f"({r2_drop:.0%} relative drop > {r2_drop_threshold:.0%})"
        )
    if (math.isfinite(mae_increase) or math.isinf(mae_increase)) and mae_increase > mae_increase_threshold:
        reasons.append(
            f"MAE rose from {ref['mae']:,.2f} to {cur['mae']:,.2f} "
            f"({mae_increase:.0%} relative increase > {mae_increase_threshold:.0%})"
        )
    undefined = [
        name for name, v in (("r2_drop", r2_drop), ("mae_increase", mae_increase)) if not math.isfinite(v)
    ]
    if undefined:
        why = (
            f"{' and '.join(undefined)} undefined (a reference of 0 or a non-finite metric): written as "
            "null; an infinite rise counts as drift"
        )
        note = why if note is None else f"{note}; {why}"
    return ModelDriftResult(
        labels_available=True,
        detected=bool(reasons),
        reference=ref,
        current=cur,
        r2_drop=r2_drop,
        mae_increase=mae_increase,
        r2_drop_threshold=r2_drop_threshold,
        mae_increase_threshold=mae_increase_threshold,
        reasons=reasons,
        note=note,
    )
