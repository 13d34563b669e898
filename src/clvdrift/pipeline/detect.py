"""The drift check of a batch against the champion: data drift of its features and prediction (the
champion's reference profile), model drift on labels the champion never trained on, the decision.

Two steps, so a caller that only wants the answer (the service, a notebook) writes nothing:

- :func:`check_batch` computes the :class:`DetectResult` and writes no file;
- :func:`write_reports` writes ``reports_dir/<run_id>/drift_report.json`` (+ HTML: the data-drift
  decision with Evidently's distributions, the model-drift decision with Evidently's regression report on
  exactly the customers it scored) and ``latest_drift_report.json``.

:func:`detect_transactions` does both.

The champion's reference profile and reference data are each read once, checked against the sha256 the
registry recorded, and loaded from those very bytes (never reopened by path: a file swapped after the
check is not loaded).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clvdrift.config import SCENARIO_SEED, DriftConfig
from clvdrift.data import load_transactions, schema, simulate_scenario
from clvdrift.data.scenarios import SCENARIOS
from clvdrift.errors import ConfigError
from clvdrift.features import COUNTRY, NUMERIC_FEATURES
from clvdrift.io import atomic_write_text
from clvdrift.jsonable import TRANSIENT, dataclass_dict, dumps
from clvdrift.pipeline.common import (
    Progress,
    Timings,
    load_champion,
    load_profile,
    new_id,
    predict_set,
)

if TYPE_CHECKING:
    import pandas as pd

    from clvdrift.drift import DataDriftResult, ModelDriftResult
    from clvdrift.engines import EngineChoice, Source
    from clvdrift.features import LineTable
    from clvdrift.model.base import TrainingRecord
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.pipeline.common import Cleaned

CURRENT_FILE = "current_data.csv"
LATEST_REPORT = "latest_drift_report.json"
# columns of the reference profile; data drift is tested on the features, Country and the prediction
PROFILE_NUMERIC = [*NUMERIC_FEATURES, "prediction", "target"]
PROFILE_CATEGORICAL = [COUNTRY]
DRIFT_COLUMNS = [*NUMERIC_FEATURES, COUNTRY, "prediction"]


@dataclass(frozen=True)
class Batch:
    """What was checked: the batch, its cleaning and the cutoff its features were computed at."""

    source: str
    rows: int
    clean_rows: int
    customers: int
    cutoff: str
    labels_available: bool
    cleaning: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


@dataclass(frozen=True)
class ScoringScope:
    """Which customers model drift was scored on, and why the others were left out."""

    customers_scored: int
    customers_excluded: int
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


@dataclass(frozen=True)
class Decision:
    """Whether the batch calls for retraining, and why."""

    retraining_required: bool
    data_drift_detected: bool
    model_drift_detected: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


@dataclass(frozen=True)
class Evidence:
    """What :func:`write_reports` renders, kept in memory by :func:`check_batch` (never serialized):
    the batch's features with the champion's prediction (and target when labelled), the customers model
    drift scored, the champion's reference data as read and checked, and whether the label windows
    overlap."""

    current: pd.DataFrame
    scored: pd.Index
    reference_csv: bytes
    overlap: bool


@dataclass(frozen=True)
class DetectResult:
    """One drift check: what was compared, the data- and model-drift results, the decision.

    ``reports`` is empty until :func:`write_reports` wrote them; ``evidence`` is in-memory only."""

    run_id: str
    created_at: str
    model_version: str
    current: Batch
    data_drift: DataDriftResult
    model_drift: ModelDriftResult
    model_drift_scope: ScoringScope
    decision: Decision
    reports: dict[str, Any]
    timings: dict[str, float]
    evidence: Evidence | None = field(default=None, repr=False, compare=False, metadata=TRANSIENT)

    @property
    def retraining_required(self) -> bool:
        return self.decision.retraining_required

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def choose_cutoff(
    clean: pd.DataFrame | LineTable, training: TrainingRecord, cutoff: str | None
) -> tuple[str, bool]:
    """The cutoff at which a batch's features are computed, and whether its labels are available.

    Explicit ``cutoff`` wins. Otherwise, like training: the batch's last day minus H, when the batch
    spans more than H days (so the H-day holdout target is observable); else its last day, without
    labels. The formula target is computed from the features, so it is always available.
    """
    import pandas as pd

    from clvdrift.features import parse_cutoff

    horizon = pd.Timedelta(days=training.horizon_days)
    if isinstance(clean, pd.DataFrame):
        first = clean[schema.INVOICE_DATE].min().normalize()
        last = clean[schema.INVOICE_DATE].max().normalize()
    else:
        first, last = clean.first_day(), clean.last_day()
    if cutoff is not None:
        cut = parse_cutoff(cutoff)
    else:
        cut = last - horizon if last - horizon >= first else last
    labelled = training.target == "formula" or cut <= last - horizon
    return cut.date().isoformat(), bool(labelled)


def training_customers(reference_csv: bytes) -> pd.Index:
    """The customer ids (as text) a version was fitted on: the ``split == "train"`` rows of its
    ``reference_<version>.csv``, from the bytes :func:`read_verified` returned (checked, read once)."""
    import pandas as pd

    source = io.BytesIO(reference_csv)
    ref = pd.read_csv(source, usecols=[schema.CUSTOMER, "split"], dtype={schema.CUSTOMER: str})
    return pd.Index(ref.loc[ref["split"] == "train", schema.CUSTOMER])


def _reference_frame(reference_csv: bytes) -> pd.DataFrame:
    """The reference data (``reference_<version>.csv``'s bytes) indexed by customer id (as text)."""
    import pandas as pd

    return pd.read_csv(
        io.BytesIO(reference_csv),
        index_col=schema.CUSTOMER,
        dtype={schema.CUSTOMER: str},
        float_precision="round_trip",
    )


def _scoring_scope(
    reference_csv: bytes, training: TrainingRecord, cut: str, customers: pd.Index
) -> tuple[pd.Index, ScoringScope]:
    """The batch customers model drift may be scored on: never the champion's training customers
    while the batch's label window overlaps the one the champion was trained on."""
    horizon = training.horizon_days
    if not training.labels_overlap(cut, horizon):
        rule = (
            f"label window after {cut} does not overlap the champion's (after {training.label_start}): "
            "every customer scored"
        )
        return customers, ScoringScope(len(customers), 0, rule)
    trained_on = training_customers(reference_csv)
    keep = customers[~customers.astype(str).isin(trained_on)]
    rule = (
        f"the batch's labels overlap the champion's training labels ({training.label_start} … cutoff "
        f"{training.cutoff}, "
        f"H = {horizon}): its {len(trained_on):,} training customers are excluded; only held-out and "
        "new customers are scored"
    )
    return keep, ScoringScope(len(keep), len(customers) - len(keep), rule)


def _reference_metrics(metrics: dict[str, Any], overlap: bool) -> dict[str, Any]:
    """The champion's metrics model drift compares with, on customers like the ones it scores: its
    evaluation through time (every customer, a window it did not train on) when the batch's labels do
    not overlap its own; when they do, only its held-out customers are scored, so their figures on its
    training window (``random_split``) are the reference. Versions judged on a random split have one."""
    secondary = metrics.get("random_split")
    if overlap and isinstance(secondary, dict) and "model" in secondary:
        return dict(secondary["model"])
    return dict(metrics["model"])


def _reference_rows(reference: pd.DataFrame, overlap: bool) -> pd.DataFrame | None:
    """The reference rows of :func:`_reference_metrics`: the held-out test rows, or — for a batch
    that does not overlap — the champion's evaluation through time (every customer at its cutoff, the
    judged model's predictions) when it was judged through time."""
    from clvdrift.pipeline.train import EVALUATION_PREDICTION

    if not overlap and EVALUATION_PREDICTION in reference and reference[EVALUATION_PREDICTION].notna().all():
        return reference.assign(prediction=reference[EVALUATION_PREDICTION])
    return reference.loc[reference["split"] == "test"] if "split" in reference else None


def check_batch(
    raw: pd.DataFrame | Source | None,
    *,
    registry: ModelRegistry,
    models_dir: Path,
    source: str,
    config: DriftConfig = DriftConfig(),
    cutoff: str | None = None,
    progress: Progress | None = None,
    cleaned: Cleaned | None = None,
    engines: EngineChoice | None = None,
) -> DetectResult:
    """Check a batch of raw transactions against the champion (see the module docstring); writes nothing.

    ``cleaned`` is the batch already cleaned by an engine (then ``raw`` may be ``None``: a history read
    out of core); else ``raw`` is cleaned with ``engines`` (default: pandas)."""
    from clvdrift.drift import detect_data_drift, detect_model_drift
    from clvdrift.features import build_training_set
    from clvdrift.model.artifacts import read_verified
    from clvdrift.model.base import TrainingRecord

    unknown = sorted(set(config.key_columns) - set(DRIFT_COLUMNS))
    if unknown:
        raise ConfigError(f"key columns {unknown} are not tested columns; expected some of {DRIFT_COLUMNS}")
    if cleaned is None:
        from clvdrift.engines import EngineChoice

        if raw is None:
            raise ValueError("check_batch needs raw transactions or an engine's clean lines")
        with (engines or EngineChoice("pandas")).open(raw) as opened:
            return check_batch(
                raw,
                registry=registry,
                models_dir=models_dir,
                source=source,
                config=config,
                cutoff=cutoff,
                progress=progress,
                cleaned=opened,
            )
    t = Timings()
    with t.step("load champion", progress):
        champion, model = load_champion(registry, models_dir)
        # each file is read once and its checked bytes are what is loaded (never the path again)
        profile_info, reference_info = champion.artifacts["profile"], champion.artifacts["reference"]
        profile = load_profile(Path(models_dir), profile_info)
        reference_csv = read_verified(Path(models_dir), reference_info)
    training = TrainingRecord.from_dict(champion.training)
    with t.step("features", progress):
        lines, cleaning = cleaned.lines, cleaned.cleaning
        cut, labelled = choose_cutoff(lines, training, cutoff)
        ts = build_training_set(
            lines,
            target=training.target,
            horizon_days=training.horizon_days,
            cutoff=cut,
            lookback_days=training.lookback_days,
            require_labels=False,
        )
        current = ts.features.assign(prediction=predict_set(lines, model, ts))
        if labelled:
            current["target"] = ts.target
    with t.step("data drift", progress):
        data_drift = detect_data_drift(
            profile,
            current,
            config,
            columns=DRIFT_COLUMNS,
            reference=lambda: _reference_frame(reference_csv),  # read only when a sketch cannot decide
        )
    with t.step("model drift", progress):
        scored, scope = _scoring_scope(reference_csv, training, cut, current.index)
        overlap = scope.customers_excluded > 0
        reference_metrics = _reference_metrics(champion.metrics, overlap)
        if labelled and len(scored):
            model_drift = detect_model_drift(
                reference_metrics,
                current.loc[scored, "target"].to_numpy(),
                current.loc[scored, "prediction"].to_numpy(),
                config,
            )
        else:
            why = (
                f"the batch ends {ts.cutoff.date()}: the {training.horizon_days}-day holdout revenue "
                "after it is not observed yet"
                if not labelled
                else "no customer left to score: " + scope.rule
            )
            model_drift = detect_model_drift(reference_metrics, None, None, config, note=why)
    decision = Decision(
        retraining_required=bool(data_drift.dataset_drift or model_drift.detected),
        data_drift_detected=bool(data_drift.dataset_drift),
        model_drift_detected=bool(model_drift.detected),
        reasons=[
            *(f"data drift: {r}" for r in data_drift.reasons if data_drift.dataset_drift),
            *(f"model drift: {r}" for r in model_drift.reasons),
        ],
    )
    return DetectResult(
        run_id=new_id("drift"),
        created_at=datetime.now(UTC).isoformat(),
        model_version=champion.version,
        current=Batch(
            source=source,
            rows=cleaning.rows_in,
            clean_rows=cleaning.rows_out,
            customers=len(current),
            cutoff=cut,
            labels_available=labelled,
            cleaning=cleaning.to_dict(),
        ),
        data_drift=data_drift,
        model_drift=model_drift,
        model_drift_scope=scope,
        decision=decision,
        reports={},
        timings=t.seconds,
        evidence=Evidence(current, scored, reference_csv, overlap),
    )


def write_reports(
    result: DetectResult, reports_dir: Path, *, render_html: bool = True, progress: Progress | None = None
) -> DetectResult:
    """Write ``result``'s reports (see the module docstring) and return it with their paths in
    ``reports``. The HTML needs the check's in-memory evidence (a result read back from JSON has none)."""
    out_dir = Path(reports_dir) / result.run_id
    reports: dict[str, Any] = {"data_drift_html": None, "regression_html": None, "note": "HTML not requested"}
    timings = dict(result.timings)
    if render_html:
        from clvdrift.drift.report import render_reports

        evidence = result.evidence
        if evidence is None:
            raise ConfigError(
                f"drift check {result.run_id}: its HTML reports need the check's data in memory"
            )
        t = Timings()
        with t.step("reports", progress):
            reference = _reference_frame(evidence.reference_csv)
            held_out = _reference_rows(reference, evidence.overlap)
            reports = render_reports(  # each page renders its decision, nothing else
                reference,
                evidence.current,
                out_dir,
                data_drift=result.data_drift,
                model_drift=result.model_drift,
                model_drift_scope=result.model_drift_scope.to_dict(),
                # exactly the rows model drift scored, and the held-out rows its reference metrics are of
                regression_current=(
                    evidence.current.loc[evidence.scored] if result.model_drift.labels_available else None
                ),
                regression_reference=held_out if held_out is not None and len(held_out) else None,
                target="target",
                prediction="prediction",
            )
        timings.update(t.seconds)
    written = replace(
        result,
        reports={
            **reports,
            "json": str(out_dir / "drift_report.json"),
            "latest_json": str(Path(reports_dir) / LATEST_REPORT),
        },
        timings=timings,
    )
    text = dumps(written)
    atomic_write_text(out_dir / "drift_report.json", text)
    atomic_write_text(Path(reports_dir) / LATEST_REPORT, text)
    return written


def detect_transactions(
    raw: pd.DataFrame | Source | None,
    *,
    reports_dir: Path,
    render_html: bool = True,
    progress: Progress | None = None,
    **kwargs: Any,
) -> DetectResult:
    """:func:`check_batch` then :func:`write_reports` (``kwargs``: :func:`check_batch`'s)."""
    checked = check_batch(raw, progress=progress, **kwargs)
    return write_reports(checked, reports_dir, render_html=render_html, progress=progress)


def detect(
    current_path: Path,
    *,
    date_format: str | None = None,
    columns: dict[str, str] | None = None,
    **kwargs: Any,
) -> DetectResult:
    """:func:`detect_transactions` on a transactions file (default ``data/current/current_data.csv``)."""
    raw = load_transactions(current_path, date_format=date_format, columns=columns)
    return detect_transactions(raw, source=str(current_path), **kwargs)


def check_scenarios(
    data_path: Path,
    *,
    seed: int = SCENARIO_SEED,
    scenarios: Sequence[str] = SCENARIOS,
    progress: Progress | None = None,
    **kwargs: Any,
) -> dict[str, DetectResult]:
    """Run :func:`detect_transactions` on every drift scenario of the raw transactions."""
    raw = load_transactions(data_path)
    results = {}
    for scenario in scenarios:
        if progress:
            progress(f"check {scenario}")
        results[scenario] = detect_transactions(
            simulate_scenario(raw, scenario, seed=seed),
            source=f"{Path(data_path).name} [{scenario}, seed {seed}]",
            **kwargs,
        )
    return results
