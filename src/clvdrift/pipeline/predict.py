"""Predicted CLV per customer from the champion: ``clvdrift predict`` (and the service, later).

The champion's own feature definition (:func:`clvdrift.features.history_features`, with its lookback)
is computed at ``cutoff`` (default: the last day of the data) from every transaction up to and including
that day, and the champion predicts each customer's revenue over the next H days. When the history
holds a year + H days before the cutoff, the predictions are multiplied by the seasonal factor
(:mod:`clvdrift.model.season`) and the total is *calibrated*; otherwise it is *uncalibrated*, and the
output and the summary say so. The ``gbm`` and ``rf`` families give no interval.

Output (``out``, CSV or Parquet by suffix, written atomically): one row per customer, sorted by id, with
the columns of :data:`OUTPUT_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from clvdrift.data import schema
from clvdrift.errors import ConfigError, DataError
from clvdrift.jsonable import dataclass_dict
from clvdrift.pipeline.common import Progress, Timings, Workspace, load_champion

if TYPE_CHECKING:
    from clvdrift.engines import EngineChoice, Source
    from clvdrift.features import LineTable
    from clvdrift.model.base import ClvModel, TrainingRecord
    from clvdrift.model.registry import ModelRegistry

__all__ = ["OUTPUT_COLUMNS", "PredictResult", "predict", "predict_customers"]

OUTPUT_COLUMNS = (
    schema.CUSTOMER,
    "predicted_revenue",
    "horizon_days",
    "total_status",
    "model_version",
    "cutoff",
    "features_from",
    "features_to",
)
OUTPUT_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class PredictResult:
    """What ``predict`` did: the champion, the cutoff, the customers and the total, and the file."""

    model_version: str
    family: str
    cutoff: str
    horizon_days: int
    features_from: str
    features_to: str
    customers: int
    predicted_total: float
    total_status: str
    season: dict[str, Any]
    source: str
    output: str | None
    cleaning: dict[str, Any]
    engine: str
    timings: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def predict_customers(
    lines: LineTable,
    model: ClvModel,
    training: TrainingRecord,
    *,
    cutoff: str | pd.Timestamp | None = None,
    with_features: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each customer's predicted revenue over the next H days at ``cutoff`` (default: the last day),
    with the champion's feature definition; returns the frame (index ``CustomerID``, column
    ``predicted_revenue``; ``with_features``: the model's input features too) and the season record
    (``status`` calibrated or uncalibrated, ``factor``)."""
    from clvdrift.features import history_features, parse_cutoff
    from clvdrift.model.season import seasonal_factor

    if lines.empty:
        raise DataError("no transactions left to predict from")
    first, last = lines.first_day(), lines.last_day()
    cut = last if cutoff is None else parse_cutoff(cutoff)
    if not first <= cut <= last:
        raise ConfigError(
            f"cutoff {cut.date()} is outside the data ({first.date()} to {last.date()}); predictions are "
            "made from the transactions up to a day the data covers"
        )
    snapshot = cut + pd.Timedelta(days=1)
    features = history_features(
        lines,
        snapshot,
        horizon_days=training.horizon_days,
        history_start=first,
        lookback_days=training.lookback_days,
    )
    if features.empty:
        raise DataError(f"no customer has a transaction up to the cutoff {cut.date()}")
    season = seasonal_factor(model, lines, cut, training.horizon_days, lookback_days=training.lookback_days)
    predicted = pd.Series(model.predict(features), index=features.index, name="predicted_revenue")
    if season.factor is not None:
        predicted = predicted * season.factor
    start = (
        first
        if training.lookback_days is None
        else max(first, snapshot - pd.Timedelta(days=training.lookback_days))
    )
    frame = predicted.to_frame().assign(
        horizon_days=training.horizon_days,
        total_status=season.status,
        cutoff=cut.date().isoformat(),
        features_from=start.date().isoformat(),
        features_to=cut.date().isoformat(),
    )
    if with_features:
        frame = frame.join(features[model.input_features])
    return frame, season.to_dict()


def _check_out(out: Path, protected: Sequence[Path]) -> None:
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES or out.name.lower() in OUTPUT_SUFFIXES:
        raise ConfigError(
            f"--out {out}: expected a file name ending in .csv or .parquet, e.g. predictions.csv"
        )
    target = out.resolve()
    for path in protected:
        guarded = Path(path).resolve()
        if target == guarded or guarded in target.parents:
            raise ConfigError(
                f"--out {out} would overwrite {'the input file' if target == guarded else guarded}; "
                "write the predictions elsewhere"
            )


def _write(frame: pd.DataFrame, out: Path) -> None:
    from clvdrift.io import atomic_write, remove_stale_temp_files

    suffix = out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(f"{out}: the output must end in .csv or .parquet")
    table = frame.reset_index()[list(OUTPUT_COLUMNS)]
    try:
        remove_stale_temp_files(out.parent, target=out.name)  # what a killed predict left beside it
        if suffix == ".csv":
            atomic_write(out, lambda tmp: table.to_csv(tmp, index=False))
        else:
            atomic_write(out, lambda tmp: table.to_parquet(tmp, index=False))
    except OSError as exc:
        from clvdrift.errors import storage_error

        raise (storage_error(exc) or ConfigError(f"{out}: cannot write: {exc.strerror or exc}")) from exc


def predict_input(
    workspace: Workspace,
    data: Path | None = None,
    *,
    date_format: str | None = None,
    columns: dict[str, str] | None = None,
) -> tuple[Source, str]:
    """The raw transactions a prediction reads, and how its summary names them: ``data`` when given, else
    the transaction history when it holds a batch (its part files, read by the engine), else the
    workspace's raw data file."""
    from clvdrift.data import load_transactions
    from clvdrift.engines import Source

    if data is None:
        from clvdrift.data.history import TransactionHistory
        from clvdrift.store import connect

        parts = TransactionHistory(workspace.history_dir, connect(workspace.database_url)).parts()
        if parts:
            name = f"transaction history ({len(parts)} batch{'es' if len(parts) != 1 else ''})"
            return Source.of_parts(parts, name=name), name
    path = data or workspace.raw_data
    return Source.of_frame(load_transactions(path, date_format=date_format, columns=columns)), str(path)


def predict(
    raw: pd.DataFrame | Source,
    *,
    registry: ModelRegistry,
    models_dir: Path,
    source: str,
    cutoff: str | None = None,
    out: Path | None = None,
    protected: Sequence[Path] = (),
    progress: Progress | None = None,
    engines: EngineChoice | None = None,
) -> PredictResult:
    """Clean ``raw`` transactions, predict every customer's CLV with the champion at ``cutoff`` and,
    with ``out``, write the file (module docstring).

    Only the rows dated up to ``cutoff`` are cleaned (a cancellation or an outlier date after it must not
    change a prediction made at it). ``out`` may not be, or lie inside, any of ``protected`` (the input
    file, the models and reference folders, the history): a prediction never overwrites stored data.
    ``engines`` cleans and computes the features (default: pandas)."""
    from clvdrift.engines import EngineChoice, Source
    from clvdrift.model.base import TrainingRecord

    if out is not None:
        _check_out(Path(out), protected)
    t = Timings()
    with t.step("load champion", progress):
        champion, model = load_champion(registry, models_dir)
        training = TrainingRecord.from_dict(champion.training)
    if training.target != "holdout":
        raise ConfigError(
            f"the champion {champion.version} predicts the seed's formula target, not future revenue; "
            "train a holdout model (clvdrift train --target holdout) to predict CLV"
        )
    with t.step("features and prediction", progress):
        rows = Source.of_frame(raw) if isinstance(raw, pd.DataFrame) else raw
        if cutoff is not None:
            from clvdrift.features import parse_cutoff

            rows = rows.until(parse_cutoff(cutoff))
        with (engines or EngineChoice("pandas")).open(rows) as opened:
            cleaning, engine = opened.cleaning, opened.engine
            frame, season = predict_customers(opened.lines, model, training, cutoff=cutoff)
        frame["model_version"] = champion.version
    if out is not None:
        with t.step("write", progress):
            _write(frame, Path(out))
    return PredictResult(
        model_version=champion.version,
        family=model.family,
        cutoff=str(frame["cutoff"].iloc[0]),
        horizon_days=training.horizon_days,
        features_from=str(frame["features_from"].iloc[0]),
        features_to=str(frame["features_to"].iloc[0]),
        customers=len(frame),
        predicted_total=round(float(frame["predicted_revenue"].sum()), 2),
        total_status=str(season["status"]),
        season=season,
        source=source,
        output=str(out) if out is not None else None,
        cleaning=cleaning.to_dict(),
        engine=engine,
        timings=t.seconds,
    )
