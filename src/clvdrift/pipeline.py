"""The tasks every adapter calls (CLI, Airflow DAGs, service): explicit inputs, a result object out.

- :func:`train`: load → validate → clean → features → train → evaluate → write artifacts and the
  reference data → register.
- :func:`simulate`: write a drift scenario of the raw transactions to ``current_data.csv``.
- :func:`score_scenarios`: score the champion on each drift scenario of the raw transactions.
"""

from __future__ import annotations

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
from clvdrift.errors import DataError
from clvdrift.features import NUMERIC_FEATURES, build_training_set
from clvdrift.model.artifacts import atomic_write, load_model, sha256_file, write_artifacts
from clvdrift.model.estimator import DEFAULT_PARAMS, ClvModel, fit_model
from clvdrift.model.evaluate import compare_to_baseline
from clvdrift.model.registry import ModelRegistry, ModelVersion

Progress = Callable[[str], None]
REFERENCE_FILE = "reference_data.csv"
CURRENT_FILE = "current_data.csv"


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
        reference_path = Path(reference_dir) / REFERENCE_FILE
        atomic_write(reference_path, lambda tmp: reference.to_csv(tmp, index_label=schema.CUSTOMER))
        metadata = {
            "created_at": datetime.now(UTC).isoformat(),
            "target": target, "params": model_params, "training": training, "evaluation": evaluation,
            "cleaning": cleaning.to_dict(), "data_fingerprint": fingerprint,
            "feature_columns": model.feature_columns,
            "reference": {"path": str(reference_path), "sha256": sha256_file(reference_path)},
        }
        artifacts = write_artifacts(model, metadata, Path(models_dir), version)
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
    from clvdrift.errors import RegistryError

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


def score_transactions(model: ClvModel, raw: pd.DataFrame, *, training: Mapping[str, Any]) -> dict[str, Any]:
    """Clean a batch of raw transactions, build features and targets at the model's own cutoff and
    horizon, and score the model (and the persistence baseline) on them."""
    clean, cleaning = clean_transactions(raw)
    ts = build_training_set(clean, target=training["target"], horizon_days=training["horizon_days"],
                            cutoff=training["cutoff"], lookback_days=training["lookback_days"])
    predictions = model.predict(ts.features)
    evaluation = compare_to_baseline(ts.target.to_numpy(), predictions, ts.baseline.to_numpy())
    means = ts.features[list(NUMERIC_FEATURES)].mean()
    return {"rows": len(raw), "clean_rows": cleaning.rows_out, "customers": len(ts.features),
            "mean_monetary": float(means["Monetary"]), "mean_prediction": float(predictions.mean()),
            "evaluation": evaluation}


def score_scenarios(data_path: Path, *, registry: ModelRegistry, models_dir: Path, seed: int = 42,
                    scenarios: Sequence[str] = SCENARIOS, date_format: str | None = None,
                    progress: Progress | None = None) -> list[dict[str, Any]]:
    """Score the champion on every drift scenario of the raw transactions, one row per scenario."""
    champion, model = load_champion(registry, models_dir)
    raw = load_transactions(data_path, date_format=date_format)
    rows = []
    for scenario in scenarios:
        if progress:
            progress(f"score {scenario}")
        scored = score_transactions(model, simulate_scenario(raw, scenario, seed=seed), training=champion.training)
        rows.append({"scenario": scenario, "model_version": champion.version, **scored})
    return rows
