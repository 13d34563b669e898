"""The tasks every adapter calls (CLI, Airflow DAGs, service): explicit inputs, a result object out.

- :func:`train`: load → validate → clean → features → train → evaluate → write artifacts and the
  reference data → register.
- :func:`simulate`: write a drift scenario of the raw transactions to ``current_data.csv``.
- :func:`detect` / :func:`detect_transactions`: data drift and model drift of a batch against the
  champion, the retraining decision, the JSON result and the Evidently reports.
- :func:`check_scenarios`: :func:`detect_transactions` on each drift scenario (the demo).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clvdrift.data import clean_transactions, load_transactions, schema, simulate_scenario
from clvdrift.data.scenarios import SCENARIOS
from clvdrift.errors import ConfigError, DataError, RegistryError
from clvdrift.drift import ReferenceProfile, build_profile, detect_data_drift
from clvdrift.drift.model_drift import MAE_INCREASE_THRESHOLD, R2_DROP_THRESHOLD, detect_model_drift
from clvdrift.features import COUNTRY, NUMERIC_FEATURES, build_training_set
from clvdrift.model.artifacts import (
    atomic_write, atomic_write_text, load_model, sha256_file, verify_artifacts, write_artifacts,
)
from clvdrift.model.estimator import DEFAULT_PARAMS, ClvModel, fit_model
from clvdrift.model.evaluate import compare_to_baseline
from clvdrift.model.registry import ModelRegistry, ModelVersion

Progress = Callable[[str], None]
REFERENCE_FILE = "reference_data.csv"
CURRENT_FILE = "current_data.csv"
LATEST_REPORT = "latest_drift_report.json"
# columns of the reference profile; data drift is tested on the features and the prediction
PROFILE_NUMERIC = [*NUMERIC_FEATURES, "prediction", "target"]
DRIFT_COLUMNS = [*NUMERIC_FEATURES, COUNTRY, "prediction"]
# a drift of these alone counts as dataset drift (see docs/drift.md, "key columns")
KEY_COLUMNS = ("Monetary", "prediction")
DRIFT_SHARE = 0.5


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str, progress: Progress | None) -> Iterator[None]:
        if progress:
            progress(name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


@dataclass(frozen=True)
class TrainResult:
    version: str
    champion: bool
    evaluation: dict[str, Any]
    cleaning: dict[str, Any]
    training: dict[str, Any]
    artifacts: dict[str, Any]
    reference_path: str
    timings: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def data_fingerprint(path: Path, raw: pd.DataFrame) -> dict[str, Any]:
    dates = raw[schema.INVOICE_DATE]
    return {
        "file": Path(path).name,
        "sha256": sha256_file(Path(path)),
        "rows": len(raw),
        "first_date": str(dates.min()),
        "last_date": str(dates.max()),
        "encoding": raw.attrs.get("encoding"),
    }


def new_version() -> str:
    """A sortable version id in the seed's timestamp style, with milliseconds: ``YYYYmmdd_HHMMSS_fff``."""
    now = datetime.now(UTC)
    return now.strftime("%Y%m%d_%H%M%S_") + f"{now.microsecond // 1000:03d}"


def train(
    data_path: Path,
    *,
    registry: ModelRegistry,
    models_dir: Path,
    reference_dir: Path,
    target: str = "holdout",
    horizon_days: int = 90,
    cutoff: str | None = None,
    lookback_days: int | None = None,
    date_format: str | None = None,
    columns: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    test_size: float = 0.2,
    random_state: int = 42,
    min_country_customers: int = 10,
    champion: bool | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, evaluate against the persistence baseline, write artifacts, register the version."""
    from sklearn.model_selection import train_test_split

    t = Timings()
    with t.step("load", progress):
        raw = load_transactions(data_path, date_format=date_format, columns=columns)
    with t.step("clean", progress):
        clean, cleaning = clean_transactions(raw)
    with t.step("features", progress):
        ts = build_training_set(clean, target=target, horizon_days=horizon_days, cutoff=cutoff,
                                lookback_days=lookback_days)
    if len(ts.features) < 10:
        raise DataError(f"{data_path}: only {len(ts.features)} customers before the cutoff; need at least 10")
    model_params = {**DEFAULT_PARAMS, **(params or {})}
    with t.step("train", progress):
        train_ids, test_ids = train_test_split(ts.features.index, test_size=test_size, random_state=random_state)
        model = fit_model(ts.features.loc[train_ids], ts.target.loc[train_ids], params=model_params,
                          min_country_customers=min_country_customers)
    with t.step("evaluate", progress):
        predictions = pd.Series(model.predict(ts.features), index=ts.features.index)
        evaluation = compare_to_baseline(ts.target.loc[test_ids].to_numpy(), predictions.loc[test_ids].to_numpy(),
                                         ts.baseline.loc[test_ids].to_numpy())
        evaluation["split"] = "test"
    version = new_version()
    training = {**ts.describe(), "train_customers": len(train_ids), "test_customers": len(test_ids),
                "test_size": test_size, "random_state": random_state}
    fingerprint = data_fingerprint(data_path, raw)
    with t.step("save", progress):
        reference = ts.features.assign(target=ts.target, prediction=predictions,
                                       split=np.where(ts.features.index.isin(test_ids), "test", "train"))
        profile = build_profile(reference, numerical_columns=PROFILE_NUMERIC, categorical_columns=[COUNTRY])
        metadata = {
            "created_at": datetime.now(UTC).isoformat(),
            "target": target, "params": model_params, "training": training, "evaluation": evaluation,
            "cleaning": cleaning.to_dict(), "data_fingerprint": fingerprint,
            "feature_columns": model.feature_columns,
        }
        artifacts = write_artifacts(model, metadata, Path(models_dir), version, extras={
            "profile": ("profile_{v}.json", profile.save),
            "reference": ("reference_{v}.csv", lambda tmp: reference.to_csv(tmp, index_label=schema.CUSTOMER)),
        })
        # the seed's single reference file: a copy of this version's
        reference_path = Path(reference_dir) / REFERENCE_FILE
        versioned = Path(models_dir) / artifacts["reference"]["path"]
        atomic_write(reference_path, lambda tmp: shutil.copyfile(versioned, tmp))
    with t.step("register", progress):
        registered = registry.register(
            version, target=target, metrics=evaluation, params=model_params, training=training,
            data_fingerprint=fingerprint, artifacts=artifacts, champion=champion,
        )
    return TrainResult(
        version=version, champion=registered.is_champion, evaluation=evaluation, cleaning=cleaning.to_dict(),
        training=training, artifacts=artifacts, reference_path=str(reference_path), timings=t.seconds,
    )


def load_champion(registry: ModelRegistry, models_dir: Path) -> tuple[ModelVersion, ClvModel]:
    """The champion's record and its model, checksums verified against the registry."""
    champion = registry.champion()
    if champion is None:
        raise RegistryError("no champion model registered; run `clvdrift train` first")
    return champion, load_model(Path(models_dir), champion.version, expected=champion.artifacts)


def write_transactions_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write transactions in the canonical columns with ISO dates, atomically."""
    out = frame[list(schema.CANONICAL_COLUMNS)].copy()
    out[schema.INVOICE_DATE] = out[schema.INVOICE_DATE].dt.strftime("%Y-%m-%d %H:%M:%S")
    out[schema.QUANTITY] = out[schema.QUANTITY].astype("Int64")
    atomic_write(Path(path), lambda tmp: out.to_csv(tmp, index=False))


def simulate(data_path: Path, scenario: str, *, seed: int, current_dir: Path,
             date_format: str | None = None) -> dict[str, Any]:
    """Write ``scenario`` of the raw transactions to ``current_dir/current_data.csv``."""
    raw = load_transactions(data_path, date_format=date_format)
    drifted = simulate_scenario(raw, scenario, seed=seed)
    path = Path(current_dir) / CURRENT_FILE
    write_transactions_csv(drifted, path)
    return {"scenario": scenario, "seed": seed, "rows": len(drifted), "path": str(path),
            "mean_quantity": float(drifted[schema.QUANTITY].mean()),
            "mean_unit_price": float(drifted[schema.UNIT_PRICE].mean())}


def choose_cutoff(clean: pd.DataFrame, training: Mapping[str, Any], cutoff: str | None) -> tuple[str, bool]:
    """The cutoff at which a batch's features are computed, and whether its labels are available.

    Explicit ``cutoff`` wins. Otherwise, like training: the batch's last day minus H, when the batch
    spans more than H days (so the H-day holdout target is observable); else its last day, without
    labels. The formula target is computed from the features, so it is always available.
    """
    horizon = pd.Timedelta(days=int(training["horizon_days"]))
    first = clean[schema.INVOICE_DATE].min().normalize()
    last = clean[schema.INVOICE_DATE].max().normalize()
    if cutoff is not None:
        cut = pd.Timestamp(cutoff).normalize()
    else:
        cut = last - horizon if last - horizon >= first else last
    labelled = training["target"] == "formula" or cut + horizon <= last
    return cut.date().isoformat(), bool(labelled)


@dataclass(frozen=True)
class DetectResult:
    """One drift check: what was compared, the data- and model-drift results, the decision."""

    run_id: str
    created_at: str
    model_version: str
    current: dict[str, Any]
    data_drift: dict[str, Any]
    model_drift: dict[str, Any]
    decision: dict[str, Any]
    reports: dict[str, Any]
    timings: dict[str, float]

    @property
    def retraining_required(self) -> bool:
        return bool(self.decision["retraining_required"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_transactions(
    raw: pd.DataFrame,
    *,
    registry: ModelRegistry,
    models_dir: Path,
    reports_dir: Path,
    source: str,
    cutoff: str | None = None,
    drift_share: float = DRIFT_SHARE,
    key_columns: Sequence[str] = KEY_COLUMNS,
    stattest: str | None = None,
    per_column_stattest: Mapping[str, str] | None = None,
    per_column_threshold: Mapping[str, float] | None = None,
    fdr: bool = False,
    calibrate: bool = False,
    r2_drop_threshold: float = R2_DROP_THRESHOLD,
    mae_increase_threshold: float = MAE_INCREASE_THRESHOLD,
    render_html: bool = True,
    progress: Progress | None = None,
) -> DetectResult:
    """Check a batch of raw transactions against the champion: data drift on its features and
    prediction (reference profile), model drift on its labels when available, the retraining decision.
    Writes ``reports_dir/<run_id>/drift_report.json`` (+ Evidently HTML) and ``latest_drift_report.json``."""
    t = Timings()
    with t.step("load champion", progress):
        champion, model = load_champion(registry, models_dir)
        paths = verify_artifacts(Path(models_dir), {k: champion.artifacts[k] for k in ("profile", "reference")})
        profile = ReferenceProfile.load(paths["profile"])
    training = champion.training
    with t.step("features", progress):
        clean, cleaning = clean_transactions(raw)
        if clean.empty:
            raise DataError(f"{source}: no usable transactions after cleaning ({cleaning.removed})")
        cut, labelled = choose_cutoff(clean, training, cutoff)
        ts = build_training_set(clean, target=training["target"], horizon_days=int(training["horizon_days"]),
                                cutoff=cut, lookback_days=training.get("lookback_days"))
        current = ts.features.assign(prediction=model.predict(ts.features))
        if labelled:
            current["target"] = ts.target
    with t.step("data drift", progress):
        unknown = sorted(set(key_columns) - set(DRIFT_COLUMNS))
        if unknown:
            raise ConfigError(f"key columns {unknown} are not tested columns; expected some of {DRIFT_COLUMNS}")
        data_drift = detect_data_drift(profile, current, columns=DRIFT_COLUMNS, drift_share=drift_share,
                                       key_columns=list(key_columns), stattest=stattest,
                                       per_column_stattest=per_column_stattest,
                                       per_column_threshold=per_column_threshold, fdr=fdr, calibrate=calibrate)
    with t.step("model drift", progress):
        model_drift = detect_model_drift(
            champion.metrics["model"], current["target"].to_numpy() if labelled else None,
            current["prediction"].to_numpy(), r2_drop_threshold=r2_drop_threshold,
            mae_increase_threshold=mae_increase_threshold,
            note=None if labelled else f"the batch ends {ts.cutoff.date()}: the {training['horizon_days']}-day "
                                       "holdout revenue after it is not observed yet",
        )
    reasons = [*(f"data drift: {r}" for r in data_drift.reasons if data_drift.dataset_drift),
               *(f"model drift: {r}" for r in model_drift.reasons)]
    decision = {
        "retraining_required": bool(data_drift.dataset_drift or model_drift.detected),
        "data_drift_detected": bool(data_drift.dataset_drift),
        "model_drift_detected": bool(model_drift.detected),
        "reasons": reasons,
    }
    run_id = "drift_" + new_version()
    out_dir = Path(reports_dir) / run_id
    reports: dict[str, Any] = {"data_drift_html": None, "regression_html": None, "note": "HTML not requested"}
    if render_html:
        from clvdrift.drift.report import render_reports

        with t.step("reports", progress):
            reference = pd.read_csv(paths["reference"], index_col=schema.CUSTOMER)
            reports = render_reports(reference, current, out_dir, numerical_columns=list(NUMERIC_FEATURES),
                                     categorical_columns=[COUNTRY], target="target" if labelled else None,
                                     prediction="prediction", drift_share=drift_share)
    result = DetectResult(
        run_id=run_id, created_at=datetime.now(UTC).isoformat(), model_version=champion.version,
        current={"source": source, "rows": int(len(raw)), "clean_rows": cleaning.rows_out,
                 "customers": int(len(current)), "cutoff": cut, "labels_available": labelled,
                 "cleaning": cleaning.to_dict()},
        data_drift=data_drift.to_dict(), model_drift=model_drift.to_dict(), decision=decision,
        reports={**reports, "json": str(out_dir / "drift_report.json"),
                 "latest_json": str(Path(reports_dir) / LATEST_REPORT)},
        timings=t.seconds,
    )
    text = json.dumps(result.to_dict(), indent=2, default=_json_default, allow_nan=False)
    atomic_write_text(out_dir / "drift_report.json", text)
    atomic_write_text(Path(reports_dir) / LATEST_REPORT, text)
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    return str(value)


def detect(current_path: Path, *, date_format: str | None = None, **kwargs: Any) -> DetectResult:
    """:func:`detect_transactions` on a transactions file (default ``data/current/current_data.csv``)."""
    raw = load_transactions(current_path, date_format=date_format)
    return detect_transactions(raw, source=str(current_path), **kwargs)


def check_scenarios(data_path: Path, *, seed: int = 42, scenarios: Sequence[str] = SCENARIOS,
                    progress: Progress | None = None, **kwargs: Any) -> dict[str, DetectResult]:
    """Run :func:`detect_transactions` on every drift scenario of the raw transactions."""
    raw = load_transactions(data_path)
    results = {}
    for scenario in scenarios:
        if progress:
            progress(f"check {scenario}")
        results[scenario] = detect_transactions(simulate_scenario(raw, scenario, seed=seed),
                                                source=f"{Path(data_path).name} [{scenario}, seed {seed}]", **kwargs)
    return results
