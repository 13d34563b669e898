"""Is every expected series there? Reads the Pushgateway (and Prometheus, when given) over HTTP.

The expected series are :data:`clvdrift.observability.metrics.METRICS` under the job
``clv_drift_monitoring``. The drift series appear once a monitoring run has checked a batch.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from clvdrift.errors import ConfigError
from clvdrift.jsonable import dataclass_dict
from clvdrift.observability.metrics import JOB, METRICS

TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class SeriesCheck:
    """One expected metric at one source: its samples (labels without ``job``/``instance``, value)."""

    source: str  # "pushgateway" | "prometheus"
    metric: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return bool(self.samples)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclass_dict(self), "present": self.present}


def _get(url: str, what: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(f"cannot read the {what} at {url}: {reason}") from exc


def _strip(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in ("job", "instance", "__name__")}


def check_pushgateway(url: str) -> list[SeriesCheck]:
    """The expected metrics as the Pushgateway at ``url`` holds them for job ``clv_drift_monitoring``."""
    text = _get(url.rstrip("/") + "/metrics", "Pushgateway").decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in METRICS}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in found and sample.labels.get("job") == JOB:
                found[sample.name].append((_strip(sample.labels), sample.value))
    return [SeriesCheck("pushgateway", name, samples) for name, samples in found.items()]


def check_prometheus(url: str) -> list[SeriesCheck]:
    """The expected metrics as Prometheus at ``url`` answers an instant query for each."""
    out = []
    for name in METRICS:
        query = urllib.parse.urlencode({"query": f'{name}{{job="{JOB}"}}'})
        body = json.loads(_get(f"{url.rstrip('/')}/api/v1/query?{query}", "Prometheus API"))
        if body.get("status") != "success":
            raise ConfigError(f"Prometheus at {url} refused the query for {name}: {body.get('error')}")
        samples = [(_strip(r["metric"]), float(r["value"][1])) for r in body["data"]["result"]]
        out.append(SeriesCheck("prometheus", name, samples))
    return out


def validate(pushgateway_url: str, prometheus_url: str | None = None) -> list[SeriesCheck]:
    """Every expected metric at the Pushgateway, then at Prometheus when ``prometheus_url`` is given."""
    checks = check_pushgateway(pushgateway_url)
    if prometheus_url:
        checks += check_prometheus(prometheus_url)
    return checks
