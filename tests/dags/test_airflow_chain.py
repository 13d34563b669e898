"""One real run of the whole chain: Airflow's own scheduler, DAG processor and API server, no ``dag.test()``.

The three Airflow processes start on 127.0.0.1 (the API server on a free port; the scheduler with
``--skip-serve-logs``, because Airflow's log server always binds every interface) with a temporary
AIRFLOW_HOME and the repo's ``dags/``. The test unpauses both DAGs, drops a drifted export into
``data/current/``, triggers ``clv_drift_monitoring`` through the REST API and waits for the scheduler to
run it, its ``trigger_retraining`` task, and the ``clv_model_training`` run that task created; then it
reads the training result from XCom (REST API) and the registry and run history from clvdrift's store.
Every process is stopped by the PID of its process group. Both DAGs get the schedule ``none`` so the
only runs are the ones the test asks for.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import synthetic_history, workspace_env  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MONITORING = "clv_drift_monitoring"
TRAINING = "clv_model_training"
TIMEOUT = 300.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Airflow:
    """A running Airflow: its REST API and the folders the test reads."""

    url: str
    home: Path
    work: Path
    env: dict[str, str]
    password: str
    token: str = ""

    def sign_in(self) -> str:
        """A JWT of the admin user from the simple auth manager (``POST /auth/token``), as
        docs/operations.md does with curl."""
        body = json.dumps({"username": "admin", "password": self.password}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            token: str = json.loads(response.read())["access_token"]
        return token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        request = urllib.request.Request(
            f"{self.url}/api/v2{path}", data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def wait_for_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """The DAG run once it is finished (success or failed), or a failure with every task's state."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            run = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return dict(run)
            time.sleep(1)
        states = self.task_states(dag_id, run_id)
        pytest.fail(f"{dag_id} run {run_id} did not finish in {TIMEOUT:.0f} s: {states}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def task_logs(self) -> str:
        """Every task log of this Airflow, for the failure message."""
        logs = sorted((self.home / "logs").rglob("*.log"))
        return "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in logs)


def _environment(home: Path, work: Path, port: int) -> dict[str, str]:
    """The processes' environment: nothing from the test process's Airflow settings (tests/dags/conftest)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CLVDRIFT_", "CLV_"))}
    url = f"http://127.0.0.1:{port}"
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            # as deploy/docker-compose.yml: an admin user whose password is in a file, API calls with a token
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API_AUTH__JWT_SECRET": "clvdrift-chain-test-only",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "CLV_MONITORING_SCHEDULE": "none",
            "CLV_TRAINING_SCHEDULE": "none",
            **workspace_env(work, work / "history.csv"),
            "CLVDRIFT_LOG_LEVEL": "info",
            "CLVDRIFT_LOG_FILE": str(work / "logs" / "clvdrift.log"),
            "CLVDRIFT_METRICS_TEXTFILE": str(work / "metrics" / "clvdrift.prom"),
        }
    )
    return env


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group, SIGKILL what is left after 30 s."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(ProcessLookupError):  # the group's children (task runners) go too
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    """Airflow's API server, scheduler and DAG processor, with a champion in clvdrift's store."""
    from clvdrift import pipeline
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store import connect

    home, work = tmp_path_factory.mktemp("airflow-home"), tmp_path_factory.mktemp("clvdrift-work")
    synthetic_history(work / "history.csv", customers=180, seed=3)
    registry = ModelRegistry(connect(f"sqlite:///{work / 'store.db'}"))
    pipeline.train(
        work / "history.csv", registry=registry, models_dir=work / "models", reference_dir=work / "reference"
    )

    port = _free_port()
    env = _environment(home, work, port)
    password = secrets.token_urlsafe(16)
    (home / "passwords.json").write_text(json.dumps({"admin": password}))
    migrate = [str(BIN / "airflow"), "db", "migrate"]
    subprocess.run(migrate, env=env, check=True, capture_output=True, cwd=home)
    commands = {
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        "scheduler": ["scheduler", "--skip-serve-logs"],
        "dag-processor": ["dag-processor"],
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in commands.items():
            log = (home / f"{name}.out").open("wb")
            procs.append(
                subprocess.Popen(
                    [str(BIN / "airflow"), *args],
                    env=env,
                    cwd=home,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopped with its children by its PID
                )
            )
        running = Airflow(url=f"http://127.0.0.1:{port}", home=home, work=work, env=env, password=password)
        _wait_until_parsed(running, procs)
        yield running
    finally:
        _stop(procs)
    assert all(p.poll() is not None for p in procs)


def _wait_until_parsed(airflow: Airflow, procs: list[subprocess.Popen[bytes]]) -> None:
    """The API answers and both DAGs are in the metadata database."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        dead = [p.args for p in procs if p.poll() is not None]
        if dead:
            outs = "\n".join(p.read_text()[-2000:] for p in sorted(airflow.home.glob("*.out")))
            pytest.fail(f"an Airflow process exited at start: {dead}\n{outs}")
        try:
            airflow.token = airflow.token or airflow.sign_in()
            ids = {d["dag_id"] for d in airflow.call("GET", "/dags")["dags"]}
            if {MONITORING, TRAINING} <= ids:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    pytest.fail(f"Airflow did not parse both DAGs in {TIMEOUT:.0f} s")


def test_real_airflow_runs_monitoring_trigger_and_training(airflow: Airflow) -> None:
    from clvdrift import pipeline
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.pipeline.tasks import run_marker
    from clvdrift.store import connect
    from clvdrift.store.runs import RunStore

    unsigned = urllib.request.Request(f"{airflow.url}/api/v2/dags", method="GET")
    with pytest.raises(urllib.error.HTTPError) as refused:  # the REST API needs the token
        urllib.request.urlopen(unsigned, timeout=30)
    assert refused.value.code in (401, 403)
    engine = connect(airflow.env["CLVDRIFT_DATABASE_URL"])
    before = {v.version for v in ModelRegistry(engine).list_versions()}
    work = airflow.work
    pipeline.simulate(work / "history.csv", "data-drift", seed=2, current_dir=work / "current")
    for dag_id in (MONITORING, TRAINING):
        assert airflow.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})["is_paused"] is False

    run = airflow.call("POST", f"/dags/{MONITORING}/dagRuns", {"logical_date": None, "conf": {}})
    monitoring = airflow.wait_for_run(MONITORING, run["dag_run_id"])
    states = airflow.task_states(MONITORING, run["dag_run_id"])
    assert monitoring["state"] == "success", f"{states}\n{airflow.task_logs()}"
    assert states["trigger_retraining"] == "success" and states["no_retraining_needed"] == "skipped"

    created = [
        r
        for r in airflow.call("GET", f"/dags/{TRAINING}/dagRuns")["dag_runs"]
        if (r.get("conf") or {}).get("monitoring_run_id") == run["dag_run_id"]
    ]
    assert len(created) == 1, "trigger_retraining created no clv_model_training run for this monitoring run"
    training = airflow.wait_for_run(TRAINING, created[0]["dag_run_id"])
    assert training["state"] == "success", airflow.task_logs()
    assert training["conf"]["reason"], "the monitoring run passed no reason"

    xcom = airflow.call(
        "GET",
        f"/dags/{TRAINING}/dagRuns/{created[0]['dag_run_id']}/taskInstances/train_clv_model/xcomEntries/return_value",
    )
    result = xcom["value"] if isinstance(xcom["value"], dict) else json.loads(xcom["value"])
    registry = ModelRegistry(engine)
    added = {v.version for v in registry.list_versions()} - before
    assert added == {result["version"]}, f"registry gained {added}, XCom says {result}"
    assert result["outcome"] in ("promoted", "rejected") and result["reason"] and result["gate"]
    if result["outcome"] == "promoted":
        assert registry.champion().version == result["version"]

    row = RunStore(engine).get(run_marker(run["dag_run_id"]))
    assert (row.trigger, row.status, row.decision, row.data_drift) == ("airflow", "success", "retrain", True)

    # clvdrift's logs reach Airflow's task log (JSON lines, Airflow's keys) and clvdrift's own log file
    task_logs = (airflow.home / "logs" / f"dag_id={MONITORING}").rglob("task_id=log_retraining_trigger/*.log")
    lines = [json.loads(line) for path in task_logs for line in path.read_text().splitlines()]
    ours = [x for x in lines if x.get("logger") == "clvdrift.pipeline.cycle"]
    assert any("drift detected" in x["event"] and x["level"] == "warning" for x in ours), lines
    written = [json.loads(x) for x in (work / "logs" / "clvdrift.log").read_text().splitlines()]
    marker = run_marker(run["dag_run_id"])
    assert any(x.get("run_id") == marker and "drift detected" in x["message"] for x in written)
    # and every finished run and training refreshed the metrics textfile from the store
    text = (work / "metrics" / "clvdrift.prom").read_text()
    assert 'clv_retrains_total{model_version="' in text
    promoted = 1.0 if result["outcome"] == "promoted" else 0.0
    assert f'clv_promotions_total{{model_version="{registry.champion().version}"}} {promoted}' in text
