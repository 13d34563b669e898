"""Training: load → validate → clean → features → check the training set → fit → evaluate → write
the version's artifacts → register → (champion only) publish the ``*_latest`` files and the reference data.

A version is registered only after every check passed and every file was written and checksummed, so
a bad file never becomes a registered model and nothing stored is half-written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clvdrift.config import TrainConfig
from clvdrift.data import load_transactions, schema
from clvdrift.errors import ConfigError, DataError
from clvdrift.io import remove_stale_temp_files
from clvdrift.jsonable import dataclass_dict, plain
from clvdrift.pipeline.common import Progress, Timings, data_fingerprint, new_version, predict_set

if TYPE_CHECKING:
    from clvdrift.engines import EngineChoice
    from clvdrift.features import LineTable, StackedSet, TrainingSet
    from clvdrift.model.base import ClvModel, TrainingRecord
    from clvdrift.model.registry import ModelRegistry

MIN_JUDGED_HISTORY_DAYS = 30
"""Days of history a model judged through time needs before its cutoff C − H; with less, ``train`` judges
on a random customer split (labelled so)."""
EVALUATION_PREDICTION = "evaluation_prediction"
"""The reference data's column of the judged model's predictions (:meth:`FittedModel.reference`)."""
# metrics of the model on the test split that must be defined for a version to be registered
REQUIRED_METRICS = ("r2", "mae", "rmse", "spearman", "gini_normalized")


@dataclass(frozen=True)
class TrainResult:
    """One trained and registered version."""

    version: str
    champion: bool
    evaluation: dict[str, Any]
    cleaning: dict[str, Any]
    training: dict[str, Any]
    artifacts: dict[str, Any]
    reference_path: str | None  # the champion's reference_data.csv; None for a challenger
    timings: dict[str, float]
    engine: str = "pandas"  # what cleaned the data and computed the features

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def _check_metrics(evaluation: Mapping[str, Any], test_customers: int) -> None:
    undefined = [
        m for m in REQUIRED_METRICS if not math.isfinite(float(evaluation["model"].get(m, math.nan)))
    ]
    if undefined:
        raise DataError(
            f"model metrics {undefined} are undefined on the {test_customers} test customers "
            "(constant target or predictions?); refusing to register this model"
        )


@dataclass(frozen=True)
class FittedModel:
    """A fitted model and what registering it needs.

    ``predictions`` covers every customer of ``training_set`` (the newest training cutoff's); ``split``
    says which were fitted on (``train``) and which held out (``test``). ``evaluation`` is where the model
    was judged: through time (:func:`evaluate_through_time`), or a random split for the formula target.
    """

    model: ClvModel
    training_set: TrainingSet
    training: TrainingRecord
    split: pd.Series
    predictions: pd.Series
    evaluation: dict[str, Any]
    evaluation_predictions: pd.Series | None = None

    def reference(self) -> pd.DataFrame:
        """The reference data written with the version: features, target, prediction and split, and —
        when the version was judged through time on these customers — ``evaluation_prediction``, the
        judged model's prediction, from which the reference metrics (``evaluation["model"]``) come."""
        ts = self.training_set
        frame = ts.features.assign(target=ts.target, prediction=self.predictions, split=self.split)
        if self.evaluation_predictions is not None:
            frame[EVALUATION_PREDICTION] = self.evaluation_predictions.reindex(frame.index)
        return frame

    def to_dict(self) -> dict[str, Any]:
        return {"training": self.training.to_dict(), "evaluation": plain(self.evaluation)}


@dataclass(frozen=True)
class ChampionToBeat:
    """The champion a new model is compared with: its model, training record and training customers
    (``None`` when unknown: the comparison is then marked not clean)."""

    version: str
    model: ClvModel
    training: TrainingRecord
    train_customers: frozenset[str] | None


def champion_to_beat(registry: ModelRegistry, models_dir: Path) -> ChampionToBeat | None:
    """The registry's champion as a :class:`ChampionToBeat`, or ``None`` when there is none. A champion
    whose files cannot be loaded is not compared with (the registry keeps it; ``clvdrift models``
    shows it), so a damaged champion never blocks training its replacement."""
    from clvdrift.errors import ArtifactError
    from clvdrift.model.artifacts import load_model, read_verified
    from clvdrift.model.base import TrainingRecord
    from clvdrift.pipeline.detect import training_customers

    record = registry.champion()
    if record is None:
        return None
    try:
        model = load_model(Path(models_dir), record.version, expected=record.artifacts)
        reference = record.artifacts.get("reference")
        customers = (
            frozenset(training_customers(read_verified(Path(models_dir), reference))) if reference else None
        )
    except ArtifactError:
        return None
    return ChampionToBeat(record.version, model, TrainingRecord.from_dict(record.training), customers)


MIN_HELD_OUT = 3
"""Held-out customers a small set is topped up to (:func:`held_out`): Spearman, Gini and R² need more
than one."""


def held_out(customers: pd.Index, config: TrainConfig) -> np.ndarray:
    """Which of ``customers`` a registered version never trains on: those whose id hashes (keyed with
    ``config.random_state``) below ``config.test_size`` — not a random draw per fit. A few customers
    may have fewer such hashes than the metrics need: the next smallest hashes top them up to
    min(3, ⌈test_size × n⌉) (a set of hundreds has far more, and is never topped up); at least one
    customer is always kept to train on.

    The held-out customers are a prefix of one fixed order (by hash), the same in every version: any two
    versions — a champion and its successor, the champions of two replay policies — have unseen
    customers in common to be compared on, and a customer held out once is never trained on later."""
    ids = customers.astype(str).to_numpy(dtype=object)
    hashed = pd.util.hash_array(ids, hash_key=f"{config.random_state:016d}", categorize=False)
    out = np.asarray(hashed / 2.0**64 < config.test_size, dtype=bool)
    order = np.argsort(hashed, kind="stable")
    least = min(MIN_HELD_OUT, math.ceil(config.test_size * len(ids)))
    if out.sum() < least:
        out[order[:least]] = True
    if len(ids) >= 2 and out.all():
        out[order[-1]] = False
    return out


def fit_on_cutoff(
    lines: LineTable,
    cutoff: pd.Timestamp,
    config: TrainConfig,
    family: str | None = None,
    *,
    exclude: pd.Index | None = None,
) -> tuple[ClvModel, StackedSet]:
    """A model of ``family`` (default ``config.model``) fitted on the family's training cutoffs up to
    ``cutoff``, leaving out every row of the customers in ``exclude``: it reads no line after
    ``cutoff`` + H."""
    from clvdrift.features import SharedLines, stacked_training_set
    from clvdrift.model.base import new_model

    excluded = () if exclude is None else tuple(sorted(str(c) for c in exclude))

    def fit() -> tuple[ClvModel, StackedSet]:
        model = new_model(config, family)
        cutoffs = model.training_cutoffs(cutoff, lines.first_day())
        stacked = stacked_training_set(
            lines, cutoffs, horizon_days=config.horizon_days, lookback_days=config.lookback_days
        )
        if exclude is not None and len(exclude):
            keep = ~stacked.features.index.isin(exclude)
            stacked = dataclasses.replace(
                stacked, features=stacked.features[keep], target=stacked.target[keep]
            )
        return model.fit(stacked.features, stacked.target), stacked

    if isinstance(lines, SharedLines):  # fitted once per table, by the first policy that asks
        return lines.once(
            ("fit_on_cutoff", pd.Timestamp(cutoff), family, config.model_dump_json(), excluded), fit
        )
    return fit()


def _scores(ts: TrainingSet, customers: pd.Index, predictions: pd.Series) -> dict[str, float]:
    from clvdrift.model.evaluate import regression_metrics

    return regression_metrics(ts.target.loc[customers].to_numpy(), predictions.loc[customers].to_numpy())


def evaluate_through_time(
    lines: LineTable,
    evaluation_set: TrainingSet,
    config: TrainConfig,
    *,
    champion: ChampionToBeat | None = None,
    fit_cutoff: pd.Timestamp | None = None,
    seed_rf: bool = True,
    skip_incomparable: bool = True,
) -> tuple[ClvModel, StackedSet, dict[str, Any]]:
    """Judge the family on the newest matured window it did not train on (the gate's protocol).

    With C the cutoff of ``evaluation_set`` (its target: revenue of (C, C + H]), the model is fitted at
    C − H — its labels end at C — and scored on every customer at C, next to persistence (revenue of the
    last H days), the seed's ``rf`` fitted the same way, and — when given — the champion, on the customers
    the champion did not train on when its labels overlap (C, C + H] (marked not clean when those are
    unknown). ``fit_cutoff`` (≤ C − H) fits the model earlier than C − H. With a year + H of history
    before C, a seasonal factor (:mod:`clvdrift.model.season`)
    gives calibrated figures too; otherwise the total is reported as uncalibrated.
    Returns the fitted model, its training rows and the evaluation (``model`` and ``baseline`` are the
    model's and persistence's metrics on all customers; ``rf``, ``calibrated``, ``champion`` beside).
    """
    from clvdrift.model.evaluate import compare_to_baseline
    from clvdrift.model.season import seasonal_factor

    ts, horizon = evaluation_set, config.horizon_days
    earlier = ts.cutoff - pd.Timedelta(days=horizon)
    if fit_cutoff is not None:
        if fit_cutoff > earlier:
            raise ConfigError(
                f"a model fitted at {fit_cutoff.date()} has labels after the evaluation cutoff "
                f"{ts.cutoff.date()}; fit at {earlier.date()} or earlier"
            )
        earlier = fit_cutoff
    if earlier < lines.first_day():
        raise DataError(
            f"cutoff {ts.cutoff.date()}: evaluation through time needs a model fitted at "
            f"{earlier.date()} (cutoff − {horizon} days), before the first transaction day "
            f"{lines.first_day().date()}; pass a later --cutoff or a shorter --horizon-days"
        )
    model, stacked = fit_on_cutoff(lines, earlier, config)
    customers = ts.features.index
    predictions = pd.Series(predict_set(lines, model, ts), index=customers)
    evaluation: dict[str, Any] = {
        **compare_to_baseline(ts.target.to_numpy(), predictions.to_numpy(), ts.baseline.to_numpy()),
        "split": "time",
        "family": model.family,
        "window": {
            "trained_at": earlier.date().isoformat(),
            "labels_end": ts.cutoff.date().isoformat(),
            "scored_at": ts.cutoff.date().isoformat(),
            "scored_until": (ts.cutoff + pd.Timedelta(days=horizon)).date().isoformat(),
            "customers": len(customers),
        },
    }
    if seed_rf and model.family != "rf":
        rf, _ = fit_on_cutoff(lines, earlier, config, family="rf")
        evaluation["rf"] = _scores(ts, customers, pd.Series(predict_set(lines, rf, ts), index=customers))
    season = seasonal_factor(model, lines, ts.cutoff, horizon, lookback_days=config.lookback_days)
    evaluation["season"] = season.to_dict()
    if season.factor is not None:
        evaluation["calibrated"] = _scores(ts, customers, predictions * season.factor)
    mismatch = _incomparable(champion.training, config) if champion is not None else None
    if champion is not None and mismatch and skip_incomparable:
        evaluation["champion"] = {"version": champion.version, "customers": 0, "skipped": mismatch}
    elif champion is not None:
        scope, rule, clean = _champion_scope(customers, ts.cutoff, horizon, champion)
        champion_predictions = pd.Series(predict_set(lines, champion.model, ts), index=customers)
        evaluation["champion"] = {
            "version": champion.version,
            "customers": len(scope),
            "clean": clean,
            "rule": rule,
            "model": _scores(ts, scope, predictions) if len(scope) else {},
            "champion": _scores(ts, scope, champion_predictions) if len(scope) else {},
            **({"note": mismatch} if mismatch else {}),
        }
    return model, stacked, evaluation


def _incomparable(training: TrainingRecord, config: TrainConfig) -> str | None:
    """Why a champion's predictions cannot be scored on this window (another target, horizon or
    lookback), or ``None``."""
    if training.target != "holdout":
        return f"the champion predicts the {training.target} target, not the next {config.horizon_days} days"
    if training.horizon_days != config.horizon_days:
        return (
            f"the champion predicts {training.horizon_days} days of revenue, this model "
            f"{config.horizon_days}: not comparable"
        )
    if training.lookback_days != config.lookback_days:
        return (
            f"the champion's features look back {training.lookback_days or 'over all the history'} days, "
            f"this model's {config.lookback_days or 'over all the history'}: not comparable"
        )
    return None


def _champion_scope(
    customers: pd.Index, cutoff: pd.Timestamp, horizon: int, champion: ChampionToBeat
) -> tuple[pd.Index, str, bool]:
    """The customers a champion may be scored on at ``cutoff``, the rule, and whether it is clean."""
    day = cutoff.date().isoformat()
    if not champion.training.labels_overlap(day, horizon):
        return (
            customers,
            "the champion's label window does not overlap the evaluation window: every customer scored",
            True,
        )
    if champion.train_customers is None:
        rule = (
            "the champion's label window overlaps the evaluation window and its training customers are "
            "unknown: every customer scored, comparison NOT clean (biased toward the champion)"
        )
        return customers, rule, False
    keep = customers[~customers.isin(pd.Index(sorted(champion.train_customers)))]
    rule = (
        "the champion's label window overlaps the evaluation window: its training customers are "
        "excluded; only held-out and new customers are scored"
    )
    return keep, rule, True


def _training_set(lines: LineTable, config: TrainConfig, cutoff: str | pd.Timestamp | None) -> TrainingSet:
    from clvdrift.features import build_training_set, check_trainable

    ts = build_training_set(
        lines,
        target=config.target,
        horizon_days=config.horizon_days,
        cutoff=cutoff,
        lookback_days=config.lookback_days,
    )
    check_trainable(
        ts, min_customers=config.min_customers, min_positive_target_share=config.min_positive_target_share
    )
    return ts


def _record(
    ts: TrainingSet, model: ClvModel, stacked: StackedSet | None, evaluation: str, **more: Any
) -> TrainingRecord:
    from clvdrift.model.base import TrainingRecord

    described = ts.describe()
    return TrainingRecord(
        target=ts.target_kind,
        cutoff=ts.cutoff.date().isoformat(),
        horizon_days=ts.horizon_days,
        lookback_days=ts.lookback_days,
        family=model.family,
        first_cutoff=stacked.cutoffs[-1].date().isoformat() if stacked else ts.cutoff.date().isoformat(),
        stacked_cutoffs=len(stacked.cutoffs) if stacked else 1,
        rows=len(stacked.features) if stacked else None,
        snapshot=str(described["snapshot"]),
        customers=len(ts.features),
        target_days_covered=ts.target_days_covered,
        zero_target_share=described["zero_target_share"],  # type: ignore[arg-type]
        evaluation=evaluation,
        **more,
    )


def fit_version(
    clean: pd.DataFrame | LineTable,
    *,
    config: TrainConfig = TrainConfig(),
    cutoff: str | pd.Timestamp | None = None,
    champion: ChampionToBeat | None = None,
) -> FittedModel:
    """Features at ``cutoff`` (default: the last day minus H), the training-set checks, the evaluation
    through time (:func:`evaluate_through_time`), then the model refitted at ``cutoff`` on every
    customer: that refit is what is registered.

    The formula target has no time to judge through: it keeps the customer split (the :func:`held_out`
    customers), labelled ``random split``. Raises :class:`DataError` when the training set or
    the model's metrics cannot be trusted.
    """
    from clvdrift.features import TransactionLines

    lines = TransactionLines.from_frame(clean) if isinstance(clean, pd.DataFrame) else clean
    ts = _training_set(lines, config, cutoff)
    if ts.target_kind == "formula":
        return _fit_random_split(ts, config, "the formula target has no future window to judge through")
    judged_at = ts.cutoff - pd.Timedelta(days=config.horizon_days)
    if judged_at < lines.first_day() + pd.Timedelta(days=MIN_JUDGED_HISTORY_DAYS):
        why = (
            f"the history starts {lines.first_day().date()}: judging through time needs a model fitted at "
            f"{judged_at.date()} with {MIN_JUDGED_HISTORY_DAYS} days of history before it"
        )
        return _fit_random_split(ts, config, why, lines)
    judged, _stacked, evaluation = evaluate_through_time(lines, ts, config, champion=champion)
    _check_metrics(evaluation, len(ts.features))
    judged_predictions = pd.Series(predict_set(lines, judged, ts), index=ts.features.index)
    return refit(lines, ts, config, evaluation, judged_predictions)


def _split(ts: TrainingSet, config: TrainConfig) -> tuple[pd.Index, pd.Index]:
    """The training and the :func:`held_out` customers of ``ts``."""
    out = held_out(ts.features.index, config)
    return ts.features.index[~out], ts.features.index[out]


def refit(
    lines: LineTable,
    ts: TrainingSet,
    config: TrainConfig,
    evaluation: dict[str, Any],
    evaluation_predictions: pd.Series | None = None,
) -> FittedModel:
    """The model refitted at ``ts.cutoff`` on the family's training cutoffs (the version that is
    registered), carrying the ``evaluation`` through time that judged the family.

    The :func:`held_out` customers are left out of every training row: later drift checks and gates
    whose labels overlap this model's can score them cleanly. Their figures on (C, C + H] are added as
    ``random_split`` (secondary: the same window the model trained on)."""
    from clvdrift.model.evaluate import compare_to_baseline

    train_ids, test_ids = _split(ts, config)
    model, stacked = fit_on_cutoff(lines, ts.cutoff, config, exclude=test_ids)
    predictions = pd.Series(predict_set(lines, model, ts), index=ts.features.index)
    secondary = compare_to_baseline(
        ts.target.loc[test_ids].to_numpy(),
        predictions.loc[test_ids].to_numpy(),
        ts.baseline.loc[test_ids].to_numpy(),
    )
    evaluation = {
        **evaluation,
        "random_split": {**secondary, "note": "secondary: held-out customers, same window as training"},
    }
    split = pd.Series("train", index=ts.features.index).where(~ts.features.index.isin(test_ids), "test")
    training = _record(
        ts, model, stacked, "time", train_customers=len(train_ids), test_customers=len(test_ids)
    )
    return FittedModel(model, ts, training, split, predictions, evaluation, evaluation_predictions)


def fitted_at(
    lines: LineTable,
    model: ClvModel,
    stacked: StackedSet,
    config: TrainConfig,
    evaluation: dict[str, Any],
    **more: Any,
) -> FittedModel:
    """A :class:`FittedModel` for a model already fitted on ``stacked`` (its newest cutoff's customers
    as the reference data), e.g. a challenger the gate rejected."""
    from clvdrift.features import build_training_set

    ts = build_training_set(
        lines,
        target="holdout",
        horizon_days=config.horizon_days,
        cutoff=stacked.cutoffs[0],
        lookback_days=config.lookback_days,
    )
    predictions = pd.Series(predict_set(lines, model, ts), index=ts.features.index)
    training = _record(ts, model, stacked, "time", train_customers=len(ts.features), test_customers=0, **more)
    return FittedModel(
        model, ts, training, pd.Series("train", index=ts.features.index), predictions, evaluation
    )


def _fit_random_split(
    ts: TrainingSet, config: TrainConfig, why: str, lines: LineTable | None = None
) -> FittedModel:
    """The fallback when there is no time to judge through (``why``): the :func:`held_out` customers
    (a ``config.test_size`` share) are left out of training and the model judged on them, labelled
    ``random split``. With ``lines`` (a holdout target) the family trains on its own cutoffs as in
    :func:`refit`; the formula target trains on the one cutoff."""
    from clvdrift.model.base import new_model
    from clvdrift.model.evaluate import compare_to_baseline

    train_ids, test_ids = _split(ts, config)
    stacked = None
    if lines is not None:
        model, stacked = fit_on_cutoff(lines, ts.cutoff, config, exclude=test_ids)
    else:
        model = new_model(config).fit(ts.features.loc[train_ids], ts.target.loc[train_ids])
    predictions = pd.Series(predict_set(lines, model, ts), index=ts.features.index)
    evaluation = compare_to_baseline(
        ts.target.loc[test_ids].to_numpy(),
        predictions.loc[test_ids].to_numpy(),
        ts.baseline.loc[test_ids].to_numpy(),
    )
    evaluation["split"] = f"random split ({why}; the held-out customers were not fitted on)"
    evaluation["family"] = model.family
    _check_metrics(evaluation, len(test_ids))
    training = _record(
        ts, model, stacked, "random split", train_customers=len(train_ids), test_customers=len(test_ids)
    )
    split = pd.Series("train", index=ts.features.index).where(~ts.features.index.isin(test_ids), "test")
    return FittedModel(model, ts, training, split, predictions, evaluation)


def register_version(
    fitted: FittedModel,
    *,
    registry: ModelRegistry,
    models_dir: Path,
    reference_dir: Path,
    cleaning: Mapping[str, Any],
    fingerprint: Mapping[str, Any],
    champion: bool | None = None,
    run_id: str | None = None,
) -> tuple[str, bool, dict[str, Any], str | None]:
    """Write the version's files (model, scaler, features, metadata, reference profile and data), then
    register it, then — when the registry made it champion — publish the champion's files.

    Returns ``(version, is_champion, artifacts, reference_data_path or None)``. Nothing is registered
    unless every file was written and checksummed. ``run_id`` (the monitoring or Airflow run that
    trains) is recorded in the metadata and the registry, which refuses a second version of one run.
    """
    from clvdrift.drift import build_profile
    from clvdrift.model.artifacts import publish_registry_champion, write_artifacts
    from clvdrift.pipeline.detect import PROFILE_CATEGORICAL, PROFILE_NUMERIC

    target = fitted.training_set.target_kind
    model_params = {"family": fitted.model.family, **fitted.model.params}
    training = fitted.training.to_dict()
    version = new_version()
    reference = fitted.reference()
    profile = build_profile(
        reference, numerical_columns=PROFILE_NUMERIC, categorical_columns=PROFILE_CATEGORICAL
    )
    metadata = {
        "created_at": datetime.now(UTC).isoformat(),
        "target": target,
        "family": fitted.model.family,
        "params": model_params,
        "training": training,
        "evaluation": fitted.evaluation,
        "cleaning": dict(cleaning),
        "data_fingerprint": dict(fingerprint),
        "run_id": run_id,
        "feature_columns": fitted.model.feature_columns,
    }
    artifacts = write_artifacts(
        fitted.model,
        plain(metadata),
        Path(models_dir),
        version,
        extras={
            "profile": ("profile_{v}.json", profile.save),
            "reference": (
                "reference_{v}.csv",
                lambda tmp: reference.to_csv(tmp, index_label=schema.CUSTOMER),
            ),
        },
    )
    registered = registry.register(
        version,
        target=target,
        metrics=fitted.evaluation,
        params=model_params,
        training=training,
        data_fingerprint=dict(fingerprint),
        artifacts=artifacts,
        champion=champion,
        run_id=run_id,
    )
    reference_path = None
    if registered.is_champion:
        # the files follow the registry: whoever publishes last publishes the registry's champion
        reference_path = publish_registry_champion(registry, Path(models_dir), Path(reference_dir))[
            "reference_data"
        ]
    return version, registered.is_champion, artifacts, reference_path


def train(
    data_path: Path,
    *,
    registry: ModelRegistry,
    models_dir: Path,
    reference_dir: Path,
    config: TrainConfig = TrainConfig(),
    cutoff: str | None = None,
    date_format: str | None = None,
    columns: Mapping[str, str] | None = None,
    champion: bool | None = None,
    lock_wait_seconds: float = 0.0,
    run_id: str | None = None,
    progress: Progress | None = None,
    engines: EngineChoice | None = None,
) -> TrainResult:
    """Train, evaluate against the persistence baseline, write artifacts, register the version.

    ``engines`` cleans the data and computes the features (default: pandas).

    ``champion=None`` makes the version champion only when there is none yet; ``True`` promotes it.
    Only one training runs at a time: the store's training lock is held throughout, and a second
    training is refused (:class:`LockBusyError`) unless the lock frees within ``lock_wait_seconds``.
    Raises :class:`DataError` when the training set cannot give a trustworthy model (horizon not
    covered by the data, near-all-zero target, too few customers, undefined metrics).
    """
    from clvdrift.store.locks import training_lock

    with training_lock(registry.engine, wait_seconds=lock_wait_seconds):
        return _train_locked(
            data_path,
            registry=registry,
            models_dir=models_dir,
            reference_dir=reference_dir,
            config=config,
            cutoff=cutoff,
            date_format=date_format,
            columns=columns,
            champion=champion,
            run_id=run_id,
            progress=progress,
            engines=engines,
        )


def _train_locked(
    data_path: Path,
    *,
    registry: ModelRegistry,
    models_dir: Path,
    reference_dir: Path,
    config: TrainConfig,
    cutoff: str | None,
    date_format: str | None,
    columns: Mapping[str, str] | None,
    champion: bool | None,
    run_id: str | None,
    progress: Progress | None,
    engines: EngineChoice | None,
) -> TrainResult:
    from clvdrift.engines import EngineChoice

    remove_stale_temp_files(Path(models_dir))  # what killed runs left behind does not accumulate
    remove_stale_temp_files(Path(reference_dir))
    t = Timings()
    with t.step("load", progress):
        raw = load_transactions(data_path, date_format=date_format, columns=columns)
    with contextlib.ExitStack() as stack:
        with t.step("clean", progress):
            opened = stack.enter_context((engines or EngineChoice("pandas")).open(raw))
            cleaning = opened.cleaning
        with t.step("fit", progress):
            fitted = fit_version(
                opened.lines,
                config=config,
                cutoff=cutoff,
                champion=champion_to_beat(registry, Path(models_dir)),
            )
    with t.step("register", progress):
        version, is_champion, artifacts, reference_path = register_version(
            fitted,
            registry=registry,
            models_dir=models_dir,
            reference_dir=reference_dir,
            cleaning=cleaning.to_dict(),
            fingerprint=data_fingerprint(data_path, raw),
            champion=champion,
            run_id=run_id,
        )
    return TrainResult(
        version=version,
        champion=is_champion,
        evaluation=fitted.evaluation,
        cleaning=cleaning.to_dict(),
        training=fitted.training.to_dict(),
        artifacts=artifacts,
        reference_path=reference_path,
        timings=t.seconds,
        engine=opened.engine,
    )
