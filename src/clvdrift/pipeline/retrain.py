"""Retrain and gate (issue 7, point 4): fit a challenger on a time split, compare it with the champion
on the newest matured window neither was trained on, and refit it on that window when it wins.

With T the last day of the data and H the horizon (``TrainConfig.horizon_days``)::

    ─────── features ───────┤ challenger's target ┤ evaluation target ┤
                         T − 2H                T − H                  T

1. The challenger is fitted with cutoff T − 2H on every customer (its target: revenue in
   (T − 2H, T − H]); it never sees a transaction after T − H.
2. Champion and challenger are scored on the features at T − H against the revenue of (T − H, T]:
   the newest matured window. The champion must not have trained on those labels either: when its
   label window (after its training cutoff) overlaps (T − H, T], its *training* customers are left out
   and both models are scored on the remaining (held-out and new) customers — the rule ``detect`` uses
   for model drift. When those customers are not known, every customer is scored and the comparison is
   marked not clean (biased toward the champion, so a mistake rejects, never promotes).
3. :func:`clvdrift.model.gate.decide` compares the two metric sets.
4. On promotion the final model is refitted with cutoff T − H exactly as ``train`` fits (the
   :func:`clvdrift.pipeline.train.held_out` customers left out) and returned for registration.

Nothing is written and the registry is not touched: the caller registers the outcome (the challenger
with the gate's reason when rejected, the refitted model when promoted).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from clvdrift.config import GateConfig, TrainConfig
from clvdrift.data import schema
from clvdrift.errors import DataError
from clvdrift.jsonable import plain
from clvdrift.pipeline.common import Progress, Timings, predict_set
from clvdrift.pipeline.train import FittedModel

if TYPE_CHECKING:
    from clvdrift.features import LineTable
    from clvdrift.model.gate import GateDecision
    from clvdrift.pipeline.train import ChampionToBeat

__all__ = [
    "MIN_FEATURE_DAYS",
    "FittedModel",
    "GateWindow",
    "RetrainOutcome",
    "gate_window",
    "retrain_and_gate",
]

MIN_FEATURE_DAYS = 30
"""Days of history the challenger needs before its cutoff T − 2H (the data must span 2H + this)."""


@dataclass(frozen=True)
class GateWindow:
    """The cutoffs of the time split for data ending on ``last_day`` (see the module docstring)."""

    first_day: pd.Timestamp
    last_day: pd.Timestamp
    horizon_days: int

    @property
    def challenger_cutoff(self) -> pd.Timestamp:
        return self.last_day - pd.Timedelta(days=2 * self.horizon_days)

    @property
    def evaluation_cutoff(self) -> pd.Timestamp:
        return self.last_day - pd.Timedelta(days=self.horizon_days)

    def describe(self) -> dict[str, Any]:
        return {
            "first_day": self.first_day.date().isoformat(),
            "last_day": self.last_day.date().isoformat(),
            "horizon_days": self.horizon_days,
            "challenger_cutoff": self.challenger_cutoff.date().isoformat(),
            "evaluation_cutoff": self.evaluation_cutoff.date().isoformat(),
        }


def gate_window(clean: pd.DataFrame | LineTable, horizon_days: int) -> GateWindow:
    """The time split of ``clean``; :class:`DataError` when it spans fewer than 2H + MIN_FEATURE_DAYS days."""
    if clean.empty:
        raise DataError("no transactions left to retrain on")
    if isinstance(clean, pd.DataFrame):
        first = clean[schema.INVOICE_DATE].min().normalize()
        last = clean[schema.INVOICE_DATE].max().normalize()
    else:
        first, last = clean.first_day(), clean.last_day()
    span, need = (last - first).days, 2 * horizon_days + MIN_FEATURE_DAYS
    if span < need:
        raise DataError(
            f"the data spans {first.date()} to {last.date()} ({span} days): retraining with a gate needs "
            f"at least 2 × {horizon_days} + {MIN_FEATURE_DAYS} = {need} days (a challenger trained at "
            f"T − 2H with {MIN_FEATURE_DAYS} days of history, scored on the last H days); "
            "pass a shorter horizon or a longer history"
        )
    return GateWindow(first_day=first, last_day=last, horizon_days=horizon_days)


@dataclass(frozen=True)
class RetrainOutcome:
    """The gate's decision and what the caller registers.

    ``challenger`` is the model fitted at T − 2H, evaluated on the window (register it with
    ``decision.reason`` when rejected); ``final`` is the refit at T − H when promoted, else ``None``.
    """

    decision: GateDecision
    champion_version: str
    champion_evaluation: dict[str, Any]
    challenger: FittedModel
    final: FittedModel | None
    timings: dict[str, float]

    @property
    def promoted(self) -> bool:
        return self.decision.promote

    def to_dict(self) -> dict[str, Any]:
        return plain(
            {
                "promoted": self.promoted,
                "decision": self.decision,
                "champion_version": self.champion_version,
                "champion_evaluation": self.champion_evaluation,
                "challenger": self.challenger,
                "final": self.final,
                "timings": self.timings,
            }
        )


def retrain_and_gate(
    clean: pd.DataFrame | LineTable,
    *,
    champion: ChampionToBeat,
    train_config: TrainConfig = TrainConfig(),
    gate_config: GateConfig = GateConfig(),
    progress: Progress | None = None,
) -> RetrainOutcome:
    """Fit a challenger on the time split of ``clean`` (cleaned transactions), gate it against the
    champion on the newest matured window, refit it there when promoted (module docstring).

    Raises :class:`DataError` when the data does not span 2H + :data:`MIN_FEATURE_DAYS` days or a
    training set cannot be trusted.
    """
    from clvdrift.features import TransactionLines
    from clvdrift.model.gate import decide
    from clvdrift.pipeline.train import _training_set, evaluate_through_time, fitted_at, refit

    config = train_config.model_copy(update={"target": "holdout"})
    t = Timings()
    with t.step("features", progress):
        window = gate_window(clean, config.horizon_days)
        lines = TransactionLines.from_frame(clean) if isinstance(clean, pd.DataFrame) else clean
        evaluation_set = _training_set(lines, config, window.evaluation_cutoff)
    with t.step("fit challenger and gate", progress):
        model, stacked, evaluation = evaluate_through_time(
            lines, evaluation_set, config, champion=champion, seed_rf=False, skip_incomparable=False
        )
        compared = evaluation["champion"]
        if compared["customers"] < config.min_customers:
            raise DataError(
                f"only {compared['customers']} customer(s) at the evaluation cutoff "
                f"{window.evaluation_cutoff.date()} were not in the champion's training split; the gate "
                f"needs at least {config.min_customers}"
            )
        described = {
            **window.describe(),
            "customers": compared["customers"],
            "clean": compared["clean"],
            "customers_excluded": len(evaluation_set.features) - compared["customers"],
            "rule": compared["rule"],
        }
        decision = decide(compared["champion"], compared["model"], gate_config, window=described)
        if not compared["clean"]:
            decision = dataclasses.replace(decision, reason=f"{decision.reason} ({compared['rule']})")
        if compared.get("note"):  # another target, horizon or lookback: the ranks compare, money does not
            decision = dataclasses.replace(decision, reason=f"{decision.reason} (note: {compared['note']})")
    champion_eval = {"model": compared["champion"], "split": "time", "customers": compared["customers"]}
    challenger = fitted_at(lines, model, stacked, config, evaluation, evaluated_on=described)
    final = None
    if decision.promote:
        with t.step("refit", progress):
            judged = pd.Series(predict_set(lines, model, evaluation_set), index=evaluation_set.features.index)
            final = refit(lines, evaluation_set, config, evaluation, judged)
    return RetrainOutcome(decision, champion.version, champion_eval, challenger, final, t.seconds)
