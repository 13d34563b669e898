"""The seasonal factor: how far last year's same window was from what the model predicts for it.

A model trained on windows of one season predicts another season's total poorly (on the bundled file
Sep–Dec holds 1.74× the revenue of Jun–Sep). When the history holds at least a year + H days before a
cutoff ``P``, the model is applied at ``P − 365 days`` and its predicted total compared with the revenue
that came in the H days after it::

    factor = actual revenue of (P − 365, P − 365 + H] ÷ predicted total at P − 365

Predictions at ``P`` multiplied by ``factor`` are *calibrated*; ranks do not change. It reads nothing
after ``P``. With a shorter history there is no factor and the total is reported as **uncalibrated**,
in those words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from clvdrift.jsonable import dataclass_dict

if TYPE_CHECKING:
    from clvdrift.features import LineTable
    from clvdrift.model.base import ClvModel

__all__ = ["UNCALIBRATED", "SeasonalFactor", "seasonal_factor"]

UNCALIBRATED = "uncalibrated"
YEAR_DAYS = 365


@dataclass(frozen=True)
class SeasonalFactor:
    """The factor (``None`` when the history is too short) and the window it was learned on."""

    factor: float | None
    status: str  # "calibrated" or "uncalibrated"
    reason: str
    window_start: str | None = None
    window_end: str | None = None
    predicted_total: float | None = None
    actual_total: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def seasonal_factor(
    model: ClvModel,
    lines: LineTable,
    cutoff: pd.Timestamp,
    horizon_days: int,
    *,
    lookback_days: int | None = None,
) -> SeasonalFactor:
    """The factor for predictions at ``cutoff`` (module docstring), from lines before ``cutoff`` + 1, with
    the model's own features (``lookback_days``). A horizon longer than a year has no earlier window of
    its own that ends before the cutoff: no factor."""
    from clvdrift.features import _MILLI, history_features

    first = lines.first_day()
    year_ago = pd.Timestamp(cutoff) - pd.Timedelta(days=YEAR_DAYS)
    span = (pd.Timestamp(cutoff) - first).days + 1
    if horizon_days > YEAR_DAYS:
        return SeasonalFactor(
            None,
            UNCALIBRATED,
            f"a {horizon_days}-day horizon is longer than a year: last year's window would end after the "
            "cutoff; the total is uncalibrated",
        )
    if span < YEAR_DAYS + horizon_days:
        return SeasonalFactor(
            None,
            UNCALIBRATED,
            f"the history holds {span} days up to the cutoff; a seasonal factor needs a year + H = "
            f"{YEAR_DAYS + horizon_days}: the total is uncalibrated",
        )
    snapshot = year_ago + pd.Timedelta(days=1)
    features = history_features(
        lines, snapshot, horizon_days=horizon_days, history_start=first, lookback_days=lookback_days
    )
    end = snapshot + pd.Timedelta(days=horizon_days)
    actual = float(lines.revenue(snapshot, end, features.index).sum()) / _MILLI
    predicted = float(model.predict(features).sum()) if len(features) else 0.0
    window = (year_ago.date().isoformat(), (year_ago + pd.Timedelta(days=horizon_days)).date().isoformat())
    if predicted <= 0 or actual <= 0:
        return SeasonalFactor(
            None,
            UNCALIBRATED,
            f"last year's window {window[0]} … {window[1]} has a predicted total of {predicted:.2f} and an "
            f"actual one of {actual:.2f}: no factor, the total is uncalibrated",
            *window,
            predicted,
            actual,
        )
    return SeasonalFactor(
        actual / predicted,
        "calibrated",
        f"learned on last year's window {window[0]} … {window[1]}",
        *window,
        round(predicted, 2),
        round(actual, 2),
    )
