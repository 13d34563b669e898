"""The monitoring stack for real: Pushgateway, Prometheus and Alertmanager from Debian's packages.

The three servers run on 127.0.0.1 free ports with the repo's own ``deploy/`` files; only addresses
and intervals are substituted (scrape and evaluation every second, the Pushgateway and Alertmanager
targets, the webhook URL pointing at a receiver in this test process). ``clvdrift monitor`` runs as a
subprocess, the way cron runs it, with ``CLVDRIFT_PUSHGATEWAY_URL`` set: a clean cycle, then the
``data-drift`` scenario, then ``model-drift``. The test reads the result through Prometheus's HTTP API
(series values, the counter at 2 after two drift runs, the alert state) and Alertmanager's API, then
stops every server by its PID. ``make tools`` installs the binaries (``make test`` runs it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clvdrift.observability.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CLVDRIFT = Path(sys.executable).parent / "clvdrift"
BINARIES = ("prometheus", "prometheus-pushgateway", "prometheus-alertmanager")
WAIT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait(what: str, probe: Callable[[], Any], timeout: float = WAIT) -> Any:
    """``probe()``'s first truthy result, polled every 0.5 s; a failure naming ``what`` after ``timeout``."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    pytest.fail(f"{what}: not after {timeout:.0f} s (last: {last!r})")


@dataclass
class Webhook:
    """Alertmanager's webhook receiver: the notifications it posted, in order."""

    received: list[dict[str, Any]] = field(default_factory=list)

    def notified(self, alert: str, model_version: str) -> list[dict[str, Any]]:
        """Notifications about ``alert`` for ``model_version``."""
        return [
            n
            for n in self.received
            if any(a["labels"]["alertname"] == alert for a in n["alerts"])
            and n["commonLabels"].get("model_version") == model_version
        ]


@dataclass
class Stack:
    pushgateway: str
    prometheus: str
    alertmanager: str
    webhook: Webhook

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        body = _get(url)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def alertmanager_alerts(self, alert: str) -> list[dict[str, Any]]:
        return [a for a in _get(f"{self.alertmanager}/api/v2/alerts") if a["labels"]["alertname"] == alert]

    def firing(self, alert: str) -> list[dict[str, Any]]:
        alerts = _get(f"{self.prometheus}/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == alert and a["state"] == "firing"]


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def _prometheus_config(tmp: Path, pushgateway: int, alertmanager: int, port: int) -> Path:
    """The repo's prometheus.yml and rules.yml with only addresses and intervals substituted."""
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    substitutions = {
        "scrape_interval: 15s": "scrape_interval: 1s",
        "evaluation_interval: 15s": "evaluation_interval: 1s",
        "'pushgateway:9091'": f"'127.0.0.1:{pushgateway}'",
        "'alertmanager:9093'": f"'127.0.0.1:{alertmanager}'",
        "'localhost:9090'": f"'127.0.0.1:{port}'",
    }
    for old, new in substitutions.items():
        assert text.count(old) == 1, f"deploy/prometheus/prometheus.yml: expected {old!r} once"
        text = text.replace(old, new)
    folder = tmp / "prometheus"
    folder.mkdir()
    (folder / "prometheus.yml").write_text(text)
    shutil.copy(DEPLOY / "prometheus" / "rules.yml", folder / "rules.yml")
    return folder / "prometheus.yml"


def _alertmanager_config(tmp: Path, webhook_url: str) -> Path:
    text = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    for old, new in (
        ("'http://clvdrift:8000/alerts'", f"'{webhook_url}'"),
        ("group_wait: 30s", "group_wait: 1s"),
    ):
        assert text.count(old) == 1, f"deploy/alertmanager/alertmanager.yml: expected {old} once"
        text = text.replace(old, new)
    folder = tmp / "alertmanager"
    folder.mkdir()
    (folder / "alertmanager.yml").write_text(text)
    return folder / "alertmanager.yml"


def _webhook_server(webhook: Webhook) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            webhook.received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = [b for b in BINARIES if shutil.which(b) is None]
    assert not missing, f"{', '.join(missing)} not installed: run `make tools` (make test does)"
    tmp = tmp_path_factory.mktemp("stack")
    webhook = Webhook()
    server = _webhook_server(webhook)
    ports = {name: _free_port() for name in ("pushgateway", "prometheus", "alertmanager", "cluster")}
    am_config = _alertmanager_config(tmp, f"http://127.0.0.1:{server.server_address[1]}/alerts")
    prom_config = _prometheus_config(tmp, ports["pushgateway"], ports["alertmanager"], ports["prometheus"])
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            _start(
                [
                    "prometheus-pushgateway",
                    f"--web.listen-address=127.0.0.1:{ports['pushgateway']}",
                    # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: a
                    # shared file that would carry series from one run into the next
                    f"--persistence.file={tmp / 'pushgateway.data'}",
                ],
                tmp / "pushgateway.log",
            )
        )
        procs.append(
            _start(
                [
                    "prometheus-alertmanager",
                    f"--config.file={am_config}",
                    f"--storage.path={tmp / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                    "--cluster.listen-address=",
                ],
                tmp / "alertmanager.log",
            )
        )
        procs.append(
            _start(
                [
                    "prometheus",
                    f"--config.file={prom_config}",
                    f"--storage.tsdb.path={tmp / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                ],
                tmp / "prometheus.log",
            )
        )
        running = Stack(
            pushgateway=f"http://127.0.0.1:{ports['pushgateway']}",
            prometheus=f"http://127.0.0.1:{ports['prometheus']}",
            alertmanager=f"http://127.0.0.1:{ports['alertmanager']}",
            webhook=webhook,
        )
        for name, url in (
            ("pushgateway", f"{running.pushgateway}/-/ready"),
            ("prometheus", f"{running.prometheus}/-/ready"),
            ("alertmanager", f"{running.alertmanager}/-/ready"),
        ):
            _wait(f"{name} ready", lambda url=url: urllib.request.urlopen(url, timeout=2).status == 200)
        yield running
    finally:
        _stop(procs)
        server.shutdown()
    assert all(p.poll() is not None for p in procs)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, stack: Stack) -> tuple[Path, dict[str, str]]:
    """A clvdrift working folder with a champion of a small synthetic history (seeded: the "none" scenario
    is clean there, "data-drift" and "model-drift" drift); the environment of its CLI runs."""
    from helpers import synthetic_history  # type: ignore[import-not-found]

    work = tmp_path_factory.mktemp("work")
    synthetic_history(work / "history.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLVDRIFT_")}
    env.update(
        {
            "CLVDRIFT_DATABASE_URL": f"sqlite:///{work / 'store.db'}",
            "CLVDRIFT_RAW_DATA": str(work / "history.csv"),
            "CLVDRIFT_PUSHGATEWAY_URL": stack.pushgateway,
            # the metrics, rules and alerts are tested here, not the model: 50 boosted trees, not 200
            "CLVDRIFT_TRAIN__GBM__MAX_ITER": "50",
        }
    )
    _clvdrift(work, env, "train")
    return work, env


def _clvdrift(work: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(CLVDRIFT), *args, "--json"], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode in (0, 1), f"clvdrift {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}"
    return dict(json.loads(proc.stdout))


def _cycle(stack: Stack, workdir: tuple[Path, dict[str, str]], scenario: str, seed: int) -> dict[str, Any]:
    """Simulate ``scenario``, run one monitoring cycle, wait until Prometheus scraped its push."""
    work, env = workdir
    subprocess.run(
        [str(CLVDRIFT), "simulate", "--scenario", scenario, "--seed", str(seed)],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )
    result = _clvdrift(work, env, "monitor")
    finished = _get_run_finish_time(work, env, result["run_id"])
    _wait(
        f"Prometheus scraped the push of run {result['run_id']}",
        lambda: (stack.value('clv_monitoring_last_run_timestamp_seconds{job="clv_drift_monitoring"}') or 0)
        >= finished - 1e-3,
    )
    time.sleep(3)  # three rule evaluations at 1 s
    return result


def _get_run_finish_time(work: Path, env: dict[str, str], run_id: str) -> float:
    from clvdrift.store import connect
    from clvdrift.store.runs import RunStore

    finished = RunStore(connect(env["CLVDRIFT_DATABASE_URL"])).get(run_id).finished_at
    assert finished is not None
    return finished.timestamp()


def _data_drift(result: dict[str, Any]) -> bool:
    assert result["metrics"]["ok"] and result["metrics"]["target"] == "pushgateway", result["metrics"]
    return bool(result["detect"]["decision"]["data_drift_detected"])


def test_cycles_reach_prometheus_fire_the_alert_and_alertmanager_gets_it(
    stack: Stack, workdir: tuple[Path, dict[str, str]]
) -> None:
    job = '{job="clv_drift_monitoring"}'
    data_total = 'sum(clv_drift_detected_total{job="clv_drift_monitoring",drift_type="data"})'

    work, env = workdir
    before = _validate(work, env, stack)
    assert before.returncode == 1, before.stdout[:3000]  # nothing pushed yet: every series missing
    assert json.loads(before.stdout)["missing"] == 2 * len(METRICS)

    clean = _cycle(stack, workdir, "none", seed=1)
    assert _data_drift(clean) is False
    assert stack.value(data_total) == 0
    assert stack.value("clv_drift_status{drift_type='data',job='clv_drift_monitoring'}") == 0
    assert stack.value(f"clv_monitoring_last_run_success{job}") == 1
    assert stack.firing("CLVDataDriftDetected") == []

    drifted = _cycle(stack, workdir, "data-drift", seed=2)
    assert _data_drift(drifted) is True
    assert stack.value(data_total) == 1
    assert stack.value(f"clv_drifted_columns_count{job}") >= 1
    assert (stack.value('clv_drift_score{feature="dataset",job="clv_drift_monitoring"}') or 0) > 0
    firing = _wait("CLVDataDriftDetected firing", lambda: stack.firing("CLVDataDriftDetected"))
    assert firing[0]["labels"]["severity"] == "warning"
    assert firing[0]["labels"]["model_version"] == drifted["detect"]["model_version"]
    # With model drift too (the scenario degrades the model), the critical CLVModelDriftDetected of the
    # same model inhibits the warning: then the webhook is told about the critical one only. Prometheus
    # may send the two alerts apart and Alertmanager's inhibitor learns of a critical asynchronously, so
    # wait until the warning's state is the one the cycle's decision implies.
    model_drift = bool(drifted["detect"]["decision"]["model_drift_detected"])
    held = _wait(
        f"Alertmanager holds CLVDataDriftDetected, {'inhibited' if model_drift else 'not inhibited'}",
        lambda: [
            a
            for a in stack.alertmanager_alerts("CLVDataDriftDetected")
            if bool(a["status"]["inhibitedBy"]) == model_drift
        ],
    )
    assert held[0]["annotations"]["runbook_url"].endswith("operations.md#clvdatadriftdetected")
    expected = "CLVModelDriftDetected" if model_drift else "CLVDataDriftDetected"
    checked = drifted["detect"]["model_version"]
    notified = _wait(f"the webhook got {expected}", lambda: stack.webhook.notified(expected, checked))
    assert notified[0]["status"] == "firing"

    model = _cycle(stack, workdir, "model-drift", seed=3)
    assert _data_drift(model) is True
    assert stack.value(data_total) == 2, "the counter must add up across runs (2), not restart at 1"
    assert stack.value('sum(clv_monitoring_runs_total{job="clv_drift_monitoring",status="success"})') == 3
    retrains = stack.value(f"sum(clv_retrains_total{job})")
    assert retrains == 2

    after = _validate(work, env, stack)
    assert after.returncode == 0, after.stdout
    checks = json.loads(after.stdout)["checks"]
    assert {(c["source"], c["metric"]) for c in checks if c["present"]} == {
        (source, name) for source in ("pushgateway", "prometheus") for name in METRICS
    }
    pushed = {c["metric"]: c["samples"] for c in checks if c["source"] == "pushgateway"}
    data = [value for labels, value in pushed["clv_drift_detected_total"] if labels["drift_type"] == "data"]
    assert data == [2.0]


def _validate(work: Path, env: dict[str, str], stack: Stack) -> subprocess.CompletedProcess[str]:
    """``clvdrift validate-metrics`` against this stack's Pushgateway and Prometheus."""
    command = [str(CLVDRIFT), "validate-metrics", "--prometheus", stack.prometheus, "--json"]
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=60)
