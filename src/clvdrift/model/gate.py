"""The champion/challenger gate: promote a retrained model only when it is not worse than the champion.

Both models are scored on the same customers of the same matured window (see
:func:`clvdrift.pipeline.retrain.retrain_and_gate` for the time split); :func:`decide` compares the two
metric sets on :attr:`GateConfig.primary_metric`:

- Spearman and normalized Gini: higher is better; the challenger may be worse by ``tolerance``
  (absolute, e.g. 0.02 of Spearman).
- MAE: lower is better; the challenger may be worse by ``tolerance`` *relative* to the champion's MAE
  (0.02 = 2% higher).

An undefined (NaN or missing) challenger metric rejects the challenger; an undefined champion metric
(e.g. the champion predicts a constant) promotes a challenger whose metric is defined. MAE and
normalized Gini are always reported next to the primary metric, so a promotion on Spearman that costs
a lot of MAE is visible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clvdrift.config import GateConfig
from clvdrift.jsonable import dataclass_dict

__all__ = ["HIGHER_IS_BETTER", "REPORTED_METRICS", "GateDecision", "decide", "worse_by"]

REPORTED_METRICS = ("spearman", "gini_normalized", "mae")
"""The metrics a decision always reports, whichever is primary."""
HIGHER_IS_BETTER = {"spearman": True, "gini_normalized": True, "mae": False}
_EPS = 1e-9  # metrics are rounded to 6 significant digits: a difference this small is float noise


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict, with the numbers it was based on (``to_dict()`` for the run history)."""

    promote: bool
    reason: str
    primary_metric: str
    tolerance: float
    champion: dict[str, float]
    challenger: dict[str, float]
    window: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def _metric(metrics: Mapping[str, Any], name: str) -> float:
    """``metrics[name]`` as a float; NaN when missing or null (the store keeps NaN as null)."""
    value = metrics.get(name)
    return math.nan if value is None else float(value)


def worse_by(champion: float, challenger: float, metric: str) -> float:
    """How much worse the challenger is (negative: better): absolute for Spearman and Gini, relative to
    the champion's value for MAE (a champion MAE of 0 makes any positive challenger MAE infinitely worse)."""
    if HIGHER_IS_BETTER[metric]:
        return champion - challenger
    if champion == 0:
        return 0.0 if challenger == 0 else math.inf
    return (challenger - champion) / champion


def _reported(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {name: _metric(metrics, name) for name in REPORTED_METRICS}


def decide(
    champion_metrics: Mapping[str, Any],
    challenger_metrics: Mapping[str, Any],
    config: GateConfig = GateConfig(),
    *,
    window: Mapping[str, Any] | None = None,
) -> GateDecision:
    """Promote the challenger unless it is worse than the champion by more than ``config.tolerance`` on
    ``config.primary_metric`` (module docstring); ``window`` describes where both were scored."""
    primary = config.primary_metric
    champion, challenger = _reported(champion_metrics), _reported(challenger_metrics)
    old, new = champion[primary], challenger[primary]
    kind = "relative" if primary == "mae" else "absolute"

    def verdict(promote: bool, reason: str) -> GateDecision:
        return GateDecision(
            promote=promote,
            reason=reason,
            primary_metric=primary,
            tolerance=config.tolerance,
            champion=champion,
            challenger=challenger,
            window=dict(window or {}),
        )

    if not math.isfinite(new):
        return verdict(False, f"challenger's {primary} is undefined on the window (constant predictions?)")
    if not math.isfinite(old):
        return verdict(
            True,
            f"champion's {primary} is undefined on the window and the challenger's is {new:.4g}: promoted "
            "without a comparison",
        )
    gap = worse_by(old, new, primary)
    comparison = f"challenger {primary} {new:.4g} vs champion {old:.4g}"
    if gap <= config.tolerance + _EPS:
        how = "better" if gap < 0 else f"worse by {gap:.4g} ≤ {kind} tolerance {config.tolerance:g}"
        return verdict(True, f"{comparison}: {how}; promoted")
    return verdict(
        False, f"{comparison}: worse by {gap:.4g} > {kind} tolerance {config.tolerance:g}; rejected"
    )
