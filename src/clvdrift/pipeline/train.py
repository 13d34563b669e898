"""Training: load → validate → clean → features → check the training set → fit → evaluate → write
the version's artifacts → register → (champion only) publish the ``*_latest`` files and the reference data.

A version is registered only after every check passed and every file was written and checksummed, so
a bad file never becomes a registered model and nothing stored is half-written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from clvdrift.config import TrainConfig
from clvdrift.data import clean_transactions, load_transactions, schema
from clvdrift.errors import DataError
from clvdrift.io import remove_stale_temp_files
from clvdrift.jsonable import dataclass_dict, plain
from clvdrift.pipeline.common import Progress, Timings, data_fingerprint, new_version

if TYPE_CHECKING:
    from clvdrift.features import TrainingSet
    from clvdrift.model.estimator import ClvModel
    from clvdrift.model.registry import ModelRegistry

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

    ``predictions`` covers every customer of ``training_set``; ``split`` says which were fitted on
    (``train``) and which evaluated (``test``). ``evaluation`` is ``compare_to_baseline``'s result on
    the customers it says (the test split, or a gate's evaluation window).
    """

    model: ClvModel
    training_set: TrainingSet
    training: dict[str, Any]
    split: pd.Series
    predictions: pd.Series
    evaluation: dict[str, Any]

    def reference(self) -> pd.DataFrame:
        """The reference data written with the version: features, target, prediction and split."""
        ts = self.training_set
        return ts.features.assign(target=ts.target, prediction=self.predictions, split=self.split)

    def to_dict(self) -> dict[str, Any]:
        return {"training": plain(self.training), "evaluation": plain(self.evaluation)}


def fit_version(
    clean: pd.DataFrame,
    *,
    config: TrainConfig = TrainConfig(),
    cutoff: str | pd.Timestamp | None = None,
    params: Mapping[str, Any] | None = None,
) -> FittedModel:
    """Features at ``cutoff`` (default: the last day minus H), the training-set checks, a random
    train/test split, the fit, and the evaluation against the persistence baseline on the test split.

    Raises :class:`DataError` when the training set or the model's metrics cannot be trusted.
    """
    from sklearn.model_selection import train_test_split

    from clvdrift.features import build_training_set, check_trainable
    from clvdrift.model.estimator import DEFAULT_PARAMS, fit_model
    from clvdrift.model.evaluate import compare_to_baseline

    ts = build_training_set(
        clean,
        target=config.target,
        horizon_days=config.horizon_days,
        cutoff=cutoff,
        lookback_days=config.lookback_days,
    )
    check_trainable(
        ts, min_customers=config.min_customers, min_positive_target_share=config.min_positive_target_share
    )
    train_ids, test_ids = train_test_split(
        ts.features.index, test_size=config.test_size, random_state=config.random_state
    )
    model = fit_model(
        ts.features.loc[train_ids],
        ts.target.loc[train_ids],
        params={**DEFAULT_PARAMS, **(params or {})},
        min_country_customers=config.min_country_customers,
    )
    predictions = pd.Series(model.predict(ts.features), index=ts.features.index)
    evaluation = compare_to_baseline(
        ts.target.loc[test_ids].to_numpy(),
        predictions.loc[test_ids].to_numpy(),
        ts.baseline.loc[test_ids].to_numpy(),
    )
    evaluation["split"] = "test"
    _check_metrics(evaluation, len(test_ids))
    training = {
        **ts.describe(),
        "train_customers": len(train_ids),
        "test_customers": len(test_ids),
        "test_size": config.test_size,
        "random_state": config.random_state,
    }
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
    params: Mapping[str, Any] | None = None,
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
    from clvdrift.model.estimator import DEFAULT_PARAMS
    from clvdrift.pipeline.detect import PROFILE_CATEGORICAL, PROFILE_NUMERIC

    target = fitted.training_set.target_kind
    model_params = {**DEFAULT_PARAMS, **(params or {})}
    version = new_version()
    reference = fitted.reference()
    profile = build_profile(
        reference, numerical_columns=PROFILE_NUMERIC, categorical_columns=PROFILE_CATEGORICAL
    )
    metadata = {
        "created_at": datetime.now(UTC).isoformat(),
        "target": target,
        "params": model_params,
        "training": fitted.training,
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
        training=fitted.training,
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
    params: Mapping[str, Any] | None = None,
    champion: bool | None = None,
    lock_wait_seconds: float = 0.0,
    run_id: str | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, evaluate against the persistence baseline, write artifacts, register the version.

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
            params=params,
            champion=champion,
            run_id=run_id,
            progress=progress,
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
    params: Mapping[str, Any] | None,
    champion: bool | None,
    run_id: str | None,
    progress: Progress | None,
) -> TrainResult:
    remove_stale_temp_files(Path(models_dir))  # what killed runs left behind does not accumulate
    remove_stale_temp_files(Path(reference_dir))
    t = Timings()
    with t.step("load", progress):
        raw = load_transactions(data_path, date_format=date_format, columns=columns)
    with t.step("clean", progress):
        clean, cleaning = clean_transactions(raw)
    with t.step("fit", progress):
        fitted = fit_version(clean, config=config, cutoff=cutoff, params=params)
    with t.step("register", progress):
        version, is_champion, artifacts, reference_path = register_version(
            fitted,
            registry=registry,
            models_dir=models_dir,
            reference_dir=reference_dir,
            cleaning=cleaning.to_dict(),
            fingerprint=data_fingerprint(data_path, raw),
            params=params,
            champion=champion,
            run_id=run_id,
        )
    return TrainResult(
        version=version,
        champion=is_champion,
        evaluation=fitted.evaluation,
        cleaning=cleaning.to_dict(),
        training=fitted.training,
        artifacts=artifacts,
        reference_path=reference_path,
        timings=t.seconds,
    )
