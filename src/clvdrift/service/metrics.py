"""``GET /metrics``: the service's own series and the run-history series the batch side already exports.

Service series (this process): ``clv_http_requests_total{method,route,status}``,
``clv_http_request_duration_seconds{method,route}`` (histogram), ``clv_predictions_total{model_version,
kind}``, ``clv_online_drift_score{feature,model_version}`` and ``clv_online_drift_severity{model_version}``
(0 ok, 1 warning, 2 critical) of the newest online drift check, ``clv_serving_champion_info{model_version}``.
The run-history series (``clv_runs_total``, ``clv_data_drift_detected``, …;
:mod:`clvdrift.observability.metrics`) are read from the store at each scrape, at most once every
:data:`STORE_SERIES_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from clvdrift.observability import metrics as run_metrics

if TYPE_CHECKING:
    from clvdrift.pipeline.serving import OnlineDrift
    from clvdrift.service.deps import ServiceState

STORE_SERIES_SECONDS = 5.0
_SEVERITY = {"ok": 0, "warning": 1, "critical": 2}
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StoreSeries(Collector):
    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self._cached: tuple[float, list[Metric]] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > STORE_SERIES_SECONDS:
                try:
                    loaded = self.state.champion.loaded
                    snap = run_metrics.snapshot(self.state.engine, loaded.version if loaded else None)
                    families = list(snap.registry().collect())
                except Exception:  # the store is down: /ready says so; /metrics keeps the service's series
                    families = []
                self._cached = (now, families)
            yield from self._cached[1]


class ServiceMetrics:
    def __init__(self, state: ServiceState) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "clv_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "clv_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "clv_predictions",
            "customers predicted, by champion and kind (row, customer)",
            ["model_version", "kind"],
            registry=r,
        )
        self.drift_score = Gauge(
            "clv_online_drift_score",
            "score of each feature in the newest online drift check (PSI, or the test's effect size)",
            ["feature", "model_version"],
            registry=r,
        )
        self.drift_severity = Gauge(
            "clv_online_drift_severity",
            "severity of the newest online drift check: 0 ok, 1 warning, 2 critical",
            ["model_version"],
            registry=r,
        )
        self.champion = Gauge(
            "clv_serving_champion_info",
            "the champion this server holds in memory",
            ["model_version"],
            registry=r,
        )
        self._state = state
        r.register(_StoreSeries(state))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def predicted(self, version: str, kind: str, count: int) -> None:
        self.predictions.labels(version, kind).inc(count)

    def drift(self, result: OnlineDrift) -> None:
        for f in result.features:
            if f.score is not None:
                self.drift_score.labels(f.feature, result.model_version).set(f.score)
        self.drift_severity.labels(result.model_version).set(_SEVERITY[result.severity])

    def render(self) -> bytes:
        self.champion.clear()
        loaded = self._state.champion.loaded
        if loaded is not None:
            self.champion.labels(loaded.version).set(1)
        return generate_latest(self.registry)
