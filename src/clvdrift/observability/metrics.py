"""Prometheus metrics of the monitoring loop, computed from the run history in the store.

Every number comes from the ``runs`` table (:class:`clvdrift.store.runs.RunStore`): counters are SQL
counts over all runs, gauges come from the latest runs' rows. So every process (CLI, Airflow worker,
service) exports the same values, and the Pushgateway shows 2 after two drift runs, not 1 forever as
with a process-local counter. The champion's reference quality (``clv_model_reference_performance``)
is the ``metrics["model"]`` its registry row holds, read for the champion the caller names: it
follows every promotion and rollback.

A batch run publishes a :class:`MetricsSnapshot`: to the Pushgateway (job ``clv_drift_monitoring``,
the whole group replaced) when a URL is configured, else to a node-exporter textfile. A failure to
publish is returned as a :class:`PublishOutcome` (the caller logs it and records it in the run); it never
raises. The names below are the contract of ``deploy/`` (rules, dashboard): see docs/operations.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest, push_to_gateway, write_to_textfile
from prometheus_client.registry import Collector
from sqlalchemy import Engine, select

from clvdrift.jsonable import dataclass_dict
from clvdrift.store.db import session_scope
from clvdrift.store.runs import FINAL_STATUSES, RunRecord, RunStore
from clvdrift.store.tables import ModelVersionRow
from clvdrift.urls import mask_url

JOB = "clv_drift_monitoring"
"""The Pushgateway job (grouping key) of every push."""
NO_MODEL = "none"
"""``model_version`` when there is no champion yet."""
PUSH_TIMEOUT_SECONDS = 10.0

METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "clv_drift_detected_total": ("counter", ("drift_type",), "Monitoring runs that detected drift, all time"),
    "clv_drift_status": ("gauge", ("drift_type",), "1 if the latest check found this drift, else 0"),
    "clv_drift_score": (
        "gauge",
        ("feature",),
        "feature=dataset: share of drifted columns; a column: its drift statistic, latest check",
    ),
    "clv_drifted_columns_count": ("gauge", (), "Drifted columns in the latest check"),
    "clv_model_performance": (
        "gauge",
        ("metric",),
        "The checked model on the newest matured window (r2, mae, rmse, spearman)",
    ),
    "clv_model_reference_performance": (
        "gauge",
        ("metric",),
        "The champion's held-out quality recorded when it was trained (r2, mae, rmse, spearman)",
    ),
    "clv_monitoring_runs_total": ("counter", ("status",), "Monitoring runs by final status, all time"),
    "clv_monitoring_last_run_timestamp_seconds": ("gauge", (), "Unix time the latest run finished"),
    "clv_monitoring_last_run_duration_seconds": ("gauge", (), "Duration of the latest run"),
    "clv_monitoring_last_run_success": ("gauge", (), "1: latest run did not fail; 0: failed"),
    "clv_monitoring_last_success_timestamp_seconds": (
        "gauge",
        (),
        "Unix time of the latest run that did not fail",
    ),
    "clv_retrains_total": ("counter", (), "Retrains decided by monitoring runs, all time"),
    "clv_promotions_total": ("counter", (), "Challengers promoted by the gate, all time"),
    "clv_challengers_rejected_total": ("counter", (), "Challengers rejected by the gate, all time"),
    "clv_champion_info": ("gauge", (), "Always 1: the current champion is model_version"),
    "clv_rows_processed": ("gauge", (), "Transaction rows checked by the latest check"),
    "clv_quarantined_files_total": ("counter", (), "Input files quarantined (failed validation), all time"),
    "clv_monitoring_last_run_files": (
        "gauge",
        ("status",),
        "Files of current_dir by outcome in the latest run (processed, quarantined, unreadable, waiting, …)",
    ),
    "clv_customers_processed": ("gauge", (), "Customers checked by the latest check"),
}
"""Every exported metric: name → (type, labels besides ``model_version``, help). The deploy contract."""

PERFORMANCE_METRICS: tuple[str, ...] = ("r2", "mae", "rmse", "spearman")
DRIFT_TYPES: tuple[str, ...] = ("data", "model")
RUN_STATUSES: tuple[str, ...] = FINAL_STATUSES
FILE_STATUSES: tuple[str, ...] = (
    "processed",
    "unchanged",
    "recheck",
    "seen before",
    "quarantined",
    "unreadable",
    "waiting",
    "ignored",
)
"""The outcomes of a file in a run (``clvdrift.pipeline.intake``), each exported, 0 when absent."""


@dataclass(frozen=True)
class CheckSummary:
    """What one drift check measured, as stored in its run's ``details["check"]``.

    The pipeline builds it from its detection result; this module reads it back from the store.
    """

    model_version: str
    data_drift: bool
    model_drift: bool
    drift_share: float
    drifted_columns: int
    column_scores: dict[str, float | None]
    performance: dict[str, float | None] = field(default_factory=dict)
    rows: int = 0
    customers: int = 0
    reference_performance: dict[str, float | None] = field(default_factory=dict)
    """The champion's reference quality the check compared ``performance`` with (its evaluation through
    time, or its held-out customers' figures when the batch overlapped its training labels)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckSummary:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class MetricsSnapshot:
    """The numbers one publish exports, read from the store at one moment."""

    champion_version: str | None
    totals: dict[str, int]
    last_run: RunRecord | None
    last_success_at: datetime | None
    check: CheckSummary | None
    quarantined_files: int = 0
    reference: Mapping[str, Any] = field(default_factory=dict)
    """The champion's registered ``metrics["model"]`` (its held-out quality when it was trained), what
    the rules compare ``clv_model_performance`` with (``CLVModelPerformanceLow``). Empty when unknown:
    then no ``clv_model_reference_performance`` series."""

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """Every series of this snapshot: (metric name, labels including ``model_version``, value)."""
        out: list[tuple[str, dict[str, str], float]] = []

        def add(name: str, value: float | None, version: str, **labels: str) -> None:
            if value is not None and math.isfinite(value):
                out.append((name, {**labels, "model_version": version}, float(value)))

        current = self.champion_version or NO_MODEL
        t = self.totals
        add("clv_champion_info", 1, current)
        if self.champion_version is not None:
            for metric in PERFORMANCE_METRICS:
                add(
                    "clv_model_reference_performance",
                    _number(self.reference.get(metric)),
                    current,
                    metric=metric,
                )
        for status in RUN_STATUSES:
            add("clv_monitoring_runs_total", t[status], current, status=status)
        add("clv_retrains_total", t["retrains"], current)
        add("clv_promotions_total", t["promotions"], current)
        add("clv_challengers_rejected_total", t["rejections"], current)
        check = self.check
        checked = check.model_version if check else current
        for drift_type in DRIFT_TYPES:
            add("clv_drift_detected_total", t[f"{drift_type}_drift"], checked, drift_type=drift_type)
        add("clv_quarantined_files_total", self.quarantined_files, current)
        run = self.last_run
        if run is not None and run.finished_at is not None:
            files = run.details.get("files") if isinstance(run.details, dict) else None
            statuses = [f.get("status") for f in files or [] if isinstance(f, dict)]
            for status in FILE_STATUSES:
                add("clv_monitoring_last_run_files", statuses.count(status), current, status=status)
            add("clv_monitoring_last_run_timestamp_seconds", run.finished_at.timestamp(), current)
            duration = (run.finished_at - run.started_at).total_seconds()
            add("clv_monitoring_last_run_duration_seconds", duration, current)
            add("clv_monitoring_last_run_success", 0 if run.status == "failed" else 1, current)
        if self.last_success_at is not None:
            add("clv_monitoring_last_success_timestamp_seconds", self.last_success_at.timestamp(), current)
        if check is not None:
            v = check.model_version
            for drift_type, drifted in (("data", check.data_drift), ("model", check.model_drift)):
                add("clv_drift_status", int(drifted), v, drift_type=drift_type)
            add("clv_drift_score", check.drift_share, v, feature="dataset")
            for column, score in check.column_scores.items():
                add("clv_drift_score", score, v, feature=column)
            add("clv_drifted_columns_count", check.drifted_columns, v)
            for metric in PERFORMANCE_METRICS:
                add("clv_model_performance", check.performance.get(metric), v, metric=metric)
            add("clv_rows_processed", check.rows, v)
            add("clv_customers_processed", check.customers, v)
        return out

    def registry(self) -> CollectorRegistry:
        """A fresh Prometheus registry holding exactly this snapshot's series."""
        registry = CollectorRegistry()
        registry.register(_Collector(self.samples()))
        return registry

    def render(self) -> str:
        """The Prometheus text exposition format of :meth:`registry`."""
        return generate_latest(self.registry()).decode()


def _number(value: Any) -> float | None:
    """A stored metric as a float; ``None`` for null (a non-finite number in the store) or a non-number."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class _Collector(Collector):
    """Exposes fixed samples with the types and help of :data:`METRICS` (values counted by the store)."""

    def __init__(self, samples: list[tuple[str, dict[str, str], float]]) -> None:
        self._samples = samples

    def collect(self) -> Iterator[Metric]:
        for name, (kind, labels, text) in METRICS.items():
            family: Metric
            if kind == "counter":
                family = CounterMetricFamily(name, text, labels=[*labels, "model_version"])
            else:
                family = GaugeMetricFamily(name, text, labels=[*labels, "model_version"])
            for sample_name, sample_labels, value in self._samples:
                if sample_name == name:
                    family.add_metric([sample_labels[k] for k in (*labels, "model_version")], value)
            yield family


def snapshot(engine: Engine, champion_version: str | None) -> MetricsSnapshot:
    """The metrics as the store holds them now (``champion_version``: the registry's champion)."""
    from clvdrift.store.ledger import Ledger

    runs = RunStore(engine)
    last_check = runs.latest_with_check()
    check = CheckSummary.from_dict(last_check.details["check"]) if last_check else None
    reference = registered_quality(engine, champion_version)
    if check is not None and check.model_version == champion_version and check.reference_performance:
        reference = dict(check.reference_performance)  # what the latest check of this champion compared with
    return MetricsSnapshot(
        quarantined_files=Ledger(engine).count("quarantined"),
        champion_version=champion_version,
        totals=runs.totals(),
        last_run=runs.latest_finished(),
        last_success_at=runs.latest_success_time(),
        check=check,
        reference=reference,
    )


def registered_quality(engine: Engine, version: str | None) -> dict[str, Any]:
    """``metrics["model"]`` of the registered model ``version`` (its held-out quality when it was
    trained, :class:`clvdrift.model.registry.ModelVersion`); empty when there is no such version or it
    recorded none. Read from the registry's table: this module may not import the model layer."""
    if version is None:
        return {}
    with session_scope(engine) as session:
        metrics = session.scalar(select(ModelVersionRow.metrics).where(ModelVersionRow.version == version))
    quality = metrics.get("model") if isinstance(metrics, dict) else None
    return dict(quality) if isinstance(quality, Mapping) else {}


@dataclass(frozen=True)
class PublishOutcome:
    """Where a snapshot went, or why it did not."""

    target: str  # "pushgateway" | "textfile"
    destination: str  # the URL with its password hidden (clvdrift.urls.mask_url), or the file
    ok: bool
    series: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def publish(snapshot: MetricsSnapshot, *, pushgateway_url: str | None, textfile: Path) -> PublishOutcome:
    """Push to the Pushgateway when ``pushgateway_url`` is set, else write the node-exporter ``textfile``.

    Never raises for a network or file error: the outcome says what failed.
    """
    registry = snapshot.registry()
    series = sum(len(m.samples) for m in registry.collect())
    if pushgateway_url:
        try:
            push_to_gateway(pushgateway_url, job=JOB, registry=registry, timeout=PUSH_TIMEOUT_SECONDS)
        except Exception as exc:  # any transport error is an outcome, not a crash
            reason = mask_url(f"{type(exc).__name__}: {exc}".strip().splitlines()[0])
            return PublishOutcome("pushgateway", mask_url(pushgateway_url), False, series, reason)
        return PublishOutcome("pushgateway", mask_url(pushgateway_url), True, series)
    try:
        textfile.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(textfile), registry)  # temp file + rename: never half-written
    except OSError as exc:
        return PublishOutcome("textfile", str(textfile), False, series, f"{type(exc).__name__}: {exc}")
    return PublishOutcome("textfile", str(textfile), True, series)
