"""The Loki and Promtail configs, checked statically, and Promtail's pipeline run on real-shaped log lines.

Loki and Promtail cannot run on the test machine (no package in any reachable registry, no Docker
engine). So the Loki config is held to the seed's values, and the Promtail pipeline stages we use
(json, regex, labels, timestamp) are applied by a small evaluator below that follows Promtail's
documented semantics, to:

- clvdrift's JSON log lines (``clvdrift_log_lines()``; the lead replaces it by lines the real logger
  writes), and
- Airflow 3 task log lines written by Airflow's own task-log writer (the supervisor's file logger that
  writes ``dag_id=…/run_id=…/task_id=…/attempt=N.log``), in a temporary ``AIRFLOW_HOME``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LOKI_YML = ROOT / "deploy" / "loki" / "loki-config.yml"
PROMTAIL_YML = ROOT / "deploy" / "promtail" / "promtail-config.yml"

# Go's time.RFC3339Nano as a parse layout: fractional seconds optional (any number of digits), "T"
# required, "Z" or a numeric offset.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def load_yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def scrape_config(job_name: str) -> dict[str, Any]:
    (scrape,) = [s for s in load_yaml(PROMTAIL_YML)["scrape_configs"] if s["job_name"] == job_name]
    return scrape


# --- a tiny Promtail pipeline evaluator -----------------------------------------------------------------


@dataclass
class Entry:
    """A log entry after the pipeline: labels sent to Loki and the timestamp (None: Promtail's read time)."""

    labels: dict[str, str]
    timestamp: datetime | None = None
    extracted: dict[str, Any] = field(default_factory=dict)


def parse_rfc3339nano(value: str) -> datetime:
    """``time.Parse(time.RFC3339Nano, value)``; ValueError when Go would fail too."""
    if not _RFC3339.fullmatch(value):
        raise ValueError(f"not RFC3339: {value!r}")
    # fromisoformat keeps microseconds (Go keeps nanoseconds: enough for the assertions here).
    return datetime.fromisoformat(value)


def run_pipeline(stages: list[dict[str, Any]], line: str, labels: dict[str, str]) -> Entry:
    """Apply Promtail stages to one line, as Promtail does.

    - The extracted map starts as the entry's labels (Promtail: "initialized with the same set of
      initial labels that were scraped along with the log line", e.g. ``filename``).
    - ``json``: a line that is not a JSON object leaves the extracted map unchanged; only plain-key
      JMESPath expressions are supported (all we use); a key the line lacks is not extracted.
    - ``regex``: Go RE2 ``FindStringSubmatch`` = unanchored search; named groups go to the extracted
      map. Python's ``re`` accepts the RE2 subset we use (``(?P<name>…)``, classes, ``$``).
    - ``labels``: each listed extracted value becomes a label; missing ones are skipped.
    - ``timestamp`` with ``RFC3339Nano``: on failure the entry keeps its read time
      (``action_on_failure: fudge``).
    """
    entry = Entry(labels=dict(labels), extracted=dict(labels))
    for stage in stages:
        ((kind, config),) = stage.items()
        if kind == "json":
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if not isinstance(document, dict):
                continue
            for name, expression in config["expressions"].items():
                expression = expression or name
                if not _PLAIN_KEY.fullmatch(expression):
                    raise NotImplementedError(
                        f"json stage: only plain keys are evaluated here, not {expression!r}"
                    )
                if document.get(expression) is not None:
                    entry.extracted[name] = document[expression]
        elif kind == "regex":
            source = entry.extracted.get(config["source"]) if "source" in config else line
            if not isinstance(source, str):
                continue
            match = re.search(config["expression"], source)
            if match:
                entry.extracted.update({k: v for k, v in match.groupdict().items() if v is not None})
        elif kind == "labels":
            for name, source_name in config.items():
                value = entry.extracted.get(source_name or name)
                if value is not None:
                    entry.labels[name] = str(value)
        elif kind == "timestamp":
            assert config["format"] == "RFC3339Nano", "the evaluator knows RFC3339Nano only"
            value = entry.extracted.get(config["source"])
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    entry.timestamp = parse_rfc3339nano(value)
        else:
            raise NotImplementedError(f"stage {kind!r} is not evaluated by this test")
    return entry


def static_labels(job_name: str) -> dict[str, str]:
    (static,) = scrape_config(job_name)["static_configs"]
    return {k: v for k, v in static["labels"].items() if not k.startswith("__")}


# --- the log lines --------------------------------------------------------------------------------------


@functools.cache
def clvdrift_log_lines() -> list[str]:
    """Lines the real CLI writes: ``clvdrift monitor`` in an empty workspace (a skipped run, info)
    whose metrics push fails (nothing listens at the Pushgateway URL: a warning)."""
    import socket
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="clvdrift-logs-"))
    closed = socket.socket()  # bound, not listening: refused, and no other process can take the port
    closed.bind(("127.0.0.1", 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLVDRIFT_")}
    env |= {
        "CLVDRIFT_LOG_LEVEL": "info",
        "CLVDRIFT_LOG_FILE": str(work / "logs" / "clvdrift.log"),
        "CLVDRIFT_PUSHGATEWAY_URL": f"http://127.0.0.1:{closed.getsockname()[1]}",
        "CLVDRIFT_DATABASE_URL": f"sqlite:///{work / 'clvdrift.db'}",
    }
    clvdrift = Path(sys.executable).parent / "clvdrift"
    try:
        subprocess.run([str(clvdrift), "monitor"], cwd=work, env=env, check=True, capture_output=True)
        lines = (work / "logs" / "clvdrift.log").read_text().splitlines()
    finally:
        closed.close()
        shutil.rmtree(work, ignore_errors=True)
    assert {json.loads(line)["level"] for line in lines} >= {"info", "warning"}, lines
    return lines


# What a task process sends to Airflow's supervisor, which renders it into the task log file with
# Airflow's own processors (the same code path as under a scheduler). The supervisor's API is internal:
# pinned by constraints/airflow-3.3.2.txt.
_AIRFLOW_WRITER = textwrap.dedent(
    """
    import json, sys
    from airflow.sdk.execution_time.supervisor import _configure_logging, process_log_messages_from_subprocess

    logger, fd = _configure_logging(sys.argv[1], None)
    writer = process_log_messages_from_subprocess((logger,))
    next(writer)
    for event in json.loads(sys.argv[2]):
        writer.send(json.dumps(event).encode())
    fd.close()
    """
)

AIRFLOW_EVENTS = [
    {
        "timestamp": "2026-11-30T19:14:58.865199Z",
        "level": "info",
        "event": "::group::Pre Execute",
        "logger": "task",
        "filename": "task_runner.py",
        "lineno": 2412,
    },
    {
        "timestamp": "2026-11-30T19:14:59.120004Z",
        "level": "warning",
        "event": "No new transaction files; skipping the cycle",
        "logger": "clvdrift.pipeline.tasks",
        "filename": "tasks.py",
        "lineno": 88,
    },
    {
        "timestamp": "2026-11-30T19:14:59.400512Z",
        "level": "error",
        "event": "Task failed with exception",
        "logger": "task",
        "filename": "task_runner.py",
        "lineno": 1102,
    },
]


@pytest.fixture(scope="module")
def airflow_task_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow 3 task log file, written by Airflow itself (about 3 s)."""
    home = tmp_path_factory.mktemp("airflow-home")
    path = home / "logs/dag_id=clv_drift_monitoring/run_id=scheduled__2026-11-30T00:00:00+00:00"
    path = path / "task_id=check_new_data/attempt=1.log"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    result = subprocess.run(
        [sys.executable, "-c", _AIRFLOW_WRITER, str(path), json.dumps(AIRFLOW_EVENTS)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"Airflow's task-log writer failed (is .[airflow] installed?):\n{result.stdout}"
    )
    return path


# --- Loki -------------------------------------------------------------------------------------------------


def test_loki_config_has_the_seed_values() -> None:
    loki = load_yaml(LOKI_YML)
    assert loki["auth_enabled"] is False
    assert loki["server"]["http_listen_port"] == 3100
    assert loki["limits_config"]["retention_period"] == "168h"
    assert loki["limits_config"]["ingestion_rate_mb"] == 10
    assert loki["limits_config"]["ingestion_burst_size_mb"] == 20
    assert loki["compactor"]["compaction_interval"] == "10m"
    assert loki["compactor"]["retention_enabled"] is True
    assert loki["compactor"]["delete_request_store"] == "filesystem"
    assert "filesystem" in loki["common"]["storage"]
    (schema,) = loki["schema_config"]["configs"]
    assert (schema["store"], schema["schema"], schema["object_store"]) == ("tsdb", "v13", "filesystem")
    assert schema["index"]["period"] == "24h"


def test_loki_without_auth_listens_on_loopback_only() -> None:
    """auth_enabled: false (the seed's) lets anyone who reaches the port push and read every log line:
    the file binds HTTP and gRPC to 127.0.0.1, and says how to widen it and how to expose it safely."""
    loki = load_yaml(LOKI_YML)
    assert loki["auth_enabled"] is False
    assert loki["server"]["http_listen_address"] == "127.0.0.1"
    assert loki["server"]["grpc_listen_address"] == "127.0.0.1"
    assert loki["common"]["instance_addr"] == "127.0.0.1"
    comments = LOKI_YML.read_text(encoding="utf-8")
    assert "-server.http-listen-address=0.0.0.0" in comments and "Exposing Loki" in comments


def test_promtail_and_grafana_reach_loki_as_the_doc_says() -> None:
    """They reach Loki by its service name, not over loopback: the doc's "Exposing Loki" section widens
    the bind address by a flag inside the private network only, and names the ways to put auth in front."""
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    start = doc.index("\n## Exposing Loki\n")
    end = doc.find("\n## ", start + 1)
    section = doc[start : end if end > 0 else len(doc)]
    assert "http://loki:3100" in {
        c["url"].removesuffix("/loki/api/v1/push") for c in load_yaml(PROMTAIL_YML)["clients"]
    }
    assert "loki -config.file=/etc/loki/loki-config.yml -server.http-listen-address=0.0.0.0" in section
    for words in ("basic auth", "X-Scope-OrgID", "auth_enabled: true", "no `ports:` entry"):
        assert words in section, words


# --- Promtail ---------------------------------------------------------------------------------------------


def test_promtail_pushes_to_loki_and_tails_both_sources() -> None:
    promtail = load_yaml(PROMTAIL_YML)
    assert [c["url"] for c in promtail["clients"]] == ["http://loki:3100/loki/api/v1/push"]
    paths = {s["job_name"]: s["static_configs"][0]["labels"]["__path__"] for s in promtail["scrape_configs"]}
    assert paths == {
        "clvdrift": "/var/log/clvdrift/*.log",
        "airflow": "/opt/airflow/logs/dag_id=*/run_id=*/task_id=*/*.log",
    }


def test_high_cardinality_fields_are_not_labels() -> None:
    for job in ("clvdrift", "airflow"):
        labelled = set()
        for stage in scrape_config(job)["pipeline_stages"]:
            labelled |= set(stage.get("labels") or {})
        assert labelled.isdisjoint({"run_id", "request_id", "model_version", "message", "event", "timestamp"})


def test_clvdrift_lines_get_level_and_logger_labels_and_their_timestamp() -> None:
    stages = scrape_config("clvdrift")["pipeline_stages"]
    labels = {**static_labels("clvdrift"), "filename": "/var/log/clvdrift/clvdrift.log"}
    lines = clvdrift_log_lines()
    entries = [run_pipeline(stages, line, labels) for line in lines]
    for line, entry in zip(lines, entries, strict=True):
        written = json.loads(line)
        assert entry.labels == {**labels, "level": written["level"], "logger": written["logger"]}
        stamp = datetime.strptime(written["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert entry.timestamp == stamp
        assert entry.extracted["run_id"] == written["run_id"]
        assert entry.extracted["message"] == written["message"]
    assert {e.labels["level"] for e in entries} >= {"info", "warning"}


def test_airflow_task_log_lines_get_dag_task_level_logger_and_timestamp(airflow_task_log: Path) -> None:
    lines = airflow_task_log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(AIRFLOW_EVENTS)
    written = [json.loads(line) for line in lines]
    assert {"timestamp", "level", "event", "logger"} <= set(written[0])  # Airflow 3's task-log keys
    assert written[0]["filename"] == "task_runner.py"  # the source file: must not shadow the path

    stages = scrape_config("airflow")["pipeline_stages"]
    labels = {**static_labels("airflow"), "filename": str(airflow_task_log)}
    entries = [run_pipeline(stages, line, labels) for line in lines]
    for entry, event in zip(entries, AIRFLOW_EVENTS, strict=True):
        assert entry.labels == {
            **labels,
            "dag_id": "clv_drift_monitoring",
            "task_id": "check_new_data",
            "level": event["level"],
            "logger": event["logger"],
        }
        assert entry.timestamp == datetime.fromisoformat(str(event["timestamp"]))
    assert entries[2].labels["level"] == "error"  # what the dashboard's "Airflow Error Logs" selects


def test_extracting_the_lines_filename_key_would_lose_dag_and_task(airflow_task_log: Path) -> None:
    """Why the airflow json stage leaves out Airflow's "filename" key (the source file of the call)."""
    stages = copy.deepcopy(scrape_config("airflow")["pipeline_stages"])
    stages[0]["json"]["expressions"]["filename"] = "filename"
    line = airflow_task_log.read_text(encoding="utf-8").splitlines()[0]
    entry = run_pipeline(stages, line, {**static_labels("airflow"), "filename": str(airflow_task_log)})
    assert "dag_id" not in entry.labels


def test_malformed_lines_get_no_labels_and_keep_the_read_time() -> None:
    clvdrift = scrape_config("clvdrift")["pipeline_stages"]
    labels = {**static_labels("clvdrift"), "filename": "/var/log/clvdrift/clvdrift.log"}
    for line in ["2026-11-30 19:12:03 INFO data drift detected", '["not", "an", "object"]', "{truncated"]:
        entry = run_pipeline(clvdrift, line, labels)
        assert entry.labels == labels
        assert entry.timestamp is None
    # JSON with a timestamp Go's RFC3339Nano rejects (space, no zone): labelled, read time kept.
    bad_time = json.dumps({"timestamp": "2026-11-30 19:12:03", "level": "info", "logger": "clvdrift.cli"})
    entry = run_pipeline(clvdrift, bad_time, labels)
    assert entry.labels["level"] == "info"
    assert entry.timestamp is None

    airflow = scrape_config("airflow")["pipeline_stages"]
    outside = {**static_labels("airflow"), "filename": "/opt/airflow/logs/scheduler/latest/scheduler.log"}
    entry = run_pipeline(airflow, json.dumps(AIRFLOW_EVENTS[0]), outside)
    assert "dag_id" not in entry.labels and "task_id" not in entry.labels


def test_rfc3339nano_parsing_follows_go() -> None:
    assert parse_rfc3339nano("2026-11-30T19:12:03Z") == datetime(2026, 11, 30, 19, 12, 3, tzinfo=UTC)
    assert parse_rfc3339nano("2026-11-30T20:12:03.606+01:00") == datetime(
        2026, 11, 30, 19, 12, 3, 606000, tzinfo=UTC
    )
    for bad in ["2026-11-30T19:12:03", "2026-11-30 19:12:03Z", "30/11/2026", ""]:
        with pytest.raises(ValueError):
            parse_rfc3339nano(bad)
