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
4. On promotion the final model is refitted with cutoff T − H exactly as ``train`` fits (random
   train/test split, evaluation against the persistence baseline) and returned for registration.

Nothing is written and the registry is not touched: the caller registers the outcome (the challenger
with the gate's reason when rejected, the refitted model when promoted).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from clvdrift.config import GateConfig, TrainConfig
from clvdrift.data import schema
from clvdrift.errors import DataError
from clvdrift.jsonable import plain
from clvdrift.pipeline.common import Progress, Timings
from clvdrift.pipeline.train import FittedModel, fit_version

if TYPE_CHECKING:
    from clvdrift.features import TrainingSet
    from clvdrift.model.estimator import ClvModel
    from clvdrift.model.gate import GateDecision

__all__ = [
    "MIN_FEATURE_DAYS",
    "FittedModel",
    "GateWindow",
    "RetrainOutcome",
    "compare_on_window",
    "fit_challenger",
    "gate_window",
    "refit",
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


def gate_window(clean: pd.DataFrame, horizon_days: int) -> GateWindow:
    """The time split of ``clean``; :class:`DataError` when it spans fewer than 2H + MIN_FEATURE_DAYS days."""
    if clean.empty:
        raise DataError("no transactions left to retrain on")
    first = clean[schema.INVOICE_DATE].min().normalize()
    last = clean[schema.INVOICE_DATE].max().normalize()
    span, need = (last - first).days, 2 * horizon_days + MIN_FEATURE_DAYS
    if span < need:
        raise DataError(
            f"the data spans {first.date()} to {last.date()} ({span} days): retraining with a gate needs "
            f"at least 2 × {horizon_days} + {MIN_FEATURE_DAYS} = {need} days (a challenger trained at "
            f"T − 2H with {MIN_FEATURE_DAYS} days of history, scored on the last H days); "
            "pass a shorter horizon or a longer history"
        )
    return GateWindow(first_day=first, last_day=last, horizon_days=horizon_days)


def _training_set(clean: pd.DataFrame, cutoff: pd.Timestamp, config: TrainConfig) -> TrainingSet:
    from clvdrift.features import build_training_set, check_trainable

    ts = build_training_set(
        clean,
        target="holdout",
        horizon_days=config.horizon_days,
        cutoff=cutoff,
        lookback_days=config.lookback_days,
    )
    check_trainable(
        ts, min_customers=config.min_customers, min_positive_target_share=config.min_positive_target_share
    )
    return ts


def _fit(ts: TrainingSet, ids: pd.Index, config: TrainConfig, params: Mapping[str, Any] | None) -> ClvModel:
    from clvdrift.model.estimator import DEFAULT_PARAMS, fit_model

    return fit_model(
        ts.features.loc[ids],
        ts.target.loc[ids],
        params={**DEFAULT_PARAMS, **(params or {})},
        min_country_customers=config.min_country_customers,
    )


def _evaluate(ts: TrainingSet, predictions: pd.Series, customers: pd.Index) -> dict[str, Any]:
    from clvdrift.model.evaluate import compare_to_baseline

    return compare_to_baseline(
        ts.target.loc[customers].to_numpy(),
        predictions.loc[customers].to_numpy(),
        ts.baseline.loc[customers].to_numpy(),
    )


def fit_challenger(
    clean: pd.DataFrame,
    cutoff: pd.Timestamp,
    *,
    config: TrainConfig = TrainConfig(),
    params: Mapping[str, Any] | None = None,
) -> ClvModel:
    """A model fitted on every customer of the holdout training set at ``cutoff`` (its test is the time
    split, not a random one); reads no transaction after ``cutoff`` + H."""
    ts = _training_set(clean, cutoff, config)
    return _fit(ts, ts.features.index, config, params)


def refit(
    clean: pd.DataFrame,
    cutoff: pd.Timestamp,
    *,
    config: TrainConfig = TrainConfig(),
    params: Mapping[str, Any] | None = None,
) -> FittedModel:
    """The final model at ``cutoff`` on the holdout target, fitted exactly as ``train`` fits
    (:func:`clvdrift.pipeline.train.fit_version`)."""
    return fit_version(
        clean, config=config.model_copy(update={"target": "holdout"}), cutoff=cutoff, params=params
    )


def _label_windows_overlap(champion_training: Mapping[str, Any], window: GateWindow) -> bool:
    """Whether the champion's holdout labels (after its cutoff) share a day with (T − H, T]; an unknown
    cutoff counts as overlapping; an unreadable one is a :class:`ConfigError`. A formula target has no
    labels after the cutoff."""
    if champion_training.get("target") == "formula":
        return False
    if champion_training.get("cutoff") is None:
        return True
    from clvdrift.features import parse_cutoff

    start = parse_cutoff(str(champion_training["cutoff"]))
    end = start + pd.Timedelta(days=int(champion_training.get("horizon_days", window.horizon_days)))
    return start < window.last_day and end > window.evaluation_cutoff


def _evaluation_scope(
    ts: TrainingSet,
    window: GateWindow,
    champion_training: Mapping[str, Any],
    champion_train_customers: Collection[str] | None,
) -> tuple[pd.Index, dict[str, Any]]:
    """The customers both models are scored on, and how they were chosen (module docstring, step 2)."""
    customers = ts.features.index
    if not _label_windows_overlap(champion_training, window):
        rule = "the champion's label window does not overlap the evaluation window: every customer scored"
        return customers, {"clean": True, "customers_excluded": 0, "rule": rule}
    if champion_train_customers is None:
        rule = (
            "the champion's label window overlaps the evaluation window and its training customers are "
            "unknown: every customer scored, comparison NOT clean (biased toward the champion)"
        )
        return customers, {"clean": False, "customers_excluded": 0, "rule": rule}
    keep = customers[~customers.isin(pd.Index([str(c) for c in champion_train_customers]))]
    rule = (
        "the champion's label window overlaps the evaluation window: its training customers are "
        "excluded; only held-out and new customers are scored"
    )
    return keep, {"clean": True, "customers_excluded": len(customers) - len(keep), "rule": rule}


def compare_on_window(
    evaluation_set: TrainingSet,
    customers: pd.Index,
    champion_model: ClvModel,
    challenger_model: ClvModel,
    gate_config: GateConfig = GateConfig(),
    *,
    window: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], GateDecision]:
    """Both models scored on ``customers`` of the evaluation set (each against the persistence baseline)
    and the gate's decision; ``window`` (its ``clean`` flag and ``rule``) is recorded in the decision, and
    a comparison that is not clean says so in the reason."""
    from clvdrift.model.gate import decide

    features = evaluation_set.features
    champion_eval, challenger_eval = (
        {
            **_evaluate(evaluation_set, pd.Series(model.predict(features), index=features.index), customers),
            "split": "time",
        }
        for model in (champion_model, challenger_model)
    )
    decision = decide(champion_eval["model"], challenger_eval["model"], gate_config, window=window)
    if not window.get("clean", True):
        decision = dataclasses.replace(decision, reason=f"{decision.reason} ({window['rule']})")
    return champion_eval, challenger_eval, decision


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
    clean: pd.DataFrame,
    *,
    champion_model: ClvModel,
    champion_version: str,
    champion_training: Mapping[str, Any] | None = None,
    champion_train_customers: Collection[str] | None = None,
    train_config: TrainConfig = TrainConfig(),
    gate_config: GateConfig = GateConfig(),
    params: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> RetrainOutcome:
    """Fit a challenger on the time split of ``clean`` (cleaned transactions), gate it against the
    champion on the newest matured window, refit it there when promoted (module docstring).

    ``champion_training`` is the registry's ``training`` record of the champion (its ``cutoff``,
    ``horizon_days``, ``target``); ``champion_train_customers`` the ids it was fitted on (the ``train``
    rows of its reference data). Raises :class:`DataError` when the data does not span
    2H + :data:`MIN_FEATURE_DAYS` days or a training set cannot be trusted.
    """
    t = Timings()
    with t.step("features", progress):
        window = gate_window(clean, train_config.horizon_days)
        challenger_set = _training_set(clean, window.challenger_cutoff, train_config)
        evaluation_set = _training_set(clean, window.evaluation_cutoff, train_config)
        customers, scope = _evaluation_scope(
            evaluation_set, window, champion_training or {}, champion_train_customers
        )
        if len(customers) < train_config.min_customers:
            raise DataError(
                f"only {len(customers)} customer(s) at the evaluation cutoff "
                f"{window.evaluation_cutoff.date()} were not in the champion's training split; the gate "
                f"needs at least {train_config.min_customers}"
            )
    with t.step("fit challenger", progress):
        challenger_model = _fit(challenger_set, challenger_set.features.index, train_config, params)
    with t.step("gate", progress):
        described = {**window.describe(), "customers": len(customers), **scope}
        champion_eval, challenger_eval, decision = compare_on_window(
            evaluation_set, customers, champion_model, challenger_model, gate_config, window=described
        )
    challenger = FittedModel(
        challenger_model,
        challenger_set,
        {
            **challenger_set.describe(),
            "train_customers": len(challenger_set.features),
            "test_customers": 0,
            "evaluated_on": described,
        },
        pd.Series("train", index=challenger_set.features.index),
        pd.Series(challenger_model.predict(challenger_set.features), index=challenger_set.features.index),
        challenger_eval,
    )
    final = None
    if decision.promote:
        with t.step("refit", progress):
            final = refit(clean, window.evaluation_cutoff, config=train_config, params=params)
    return RetrainOutcome(decision, champion_version, champion_eval, challenger, final, t.seconds)
