"""The Airflow DAGs: structure through DagBag, behaviour through ``dag.test()`` on a synthetic history.

The env vars of ``conftest.py`` are set before airflow is imported; all ``dag.test()`` calls share one
process and one metadata database (the first is slow, later ones are fast).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from helpers import synthetic_history, workspace_env  # type: ignore[import-not-found]

DAGS = Path(__file__).resolve().parents[2] / "dags"
MONITORING = "clv_drift_monitoring"
TRAINING = "clv_model_training"


@pytest.fixture(scope="module")
def dagbag() -> Any:
    """The parsed DAG folder, after a fresh Airflow metadata database (once per module)."""
    from airflow.models.dagbag import DagBag
    from airflow.utils.db import resetdb

    resetdb()
    return DagBag(dag_folder=str(DAGS))


def test_dagbag_loads_both_dags_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert {MONITORING, TRAINING} <= set(dagbag.dag_ids)


def test_monitoring_dag_shape(dagbag: Any) -> None:
    dag = dagbag.dags[MONITORING]
    assert set(dag.tags) == {"clv", "monitoring", "drift"}
    assert dag.max_active_runs == 1
    assert dag.schedule == "@daily"
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == {
        ("check_new_data", "detect_drift"),
        ("detect_drift", "check_retraining_needed"),
        ("detect_drift", "log_retraining_trigger"),
        ("detect_drift", "no_retraining_needed"),
        ("check_retraining_needed", "log_retraining_trigger"),
        ("check_retraining_needed", "no_retraining_needed"),
        ("log_retraining_trigger", "trigger_retraining"),
    }
    trigger = dag.get_task("trigger_retraining")
    assert trigger.trigger_dag_id == TRAINING
    check = dag.get_task("check_new_data")
    assert check.retries >= 1 and check.retry_exponential_backoff


def test_training_dag_shape(dagbag: Any) -> None:
    dag = dagbag.dags[TRAINING]
    assert set(dag.tags) == {"clv", "training"}
    assert dag.schedule == "@weekly"
    assert [t.task_id for t in dag.tasks] == ["train_clv_model"]


@pytest.mark.parametrize(
    ("dag_file", "variable", "value", "expected"),
    [
        ("clv_drift_monitoring.py", "CLV_MONITORING_SCHEDULE", "0 */6 * * *", "0 */6 * * *"),
        ("clv_drift_monitoring.py", "CLV_MONITORING_SCHEDULE", "none", "None"),
        ("clv_model_training.py", "CLV_TRAINING_SCHEDULE", "@daily", "@daily"),
        ("clv_model_training.py", "CLV_TRAINING_SCHEDULE", "None", "None"),
    ],
)
def test_schedule_is_configurable_at_parse_time(
    dag_file: str, variable: str, value: str, expected: str
) -> None:
    """The schedule comes from the environment ("none": triggered runs only); parsing imports no clvdrift."""
    code = (
        "import sys, runpy; ns = runpy.run_path(sys.argv[1]); "
        "heavy = sorted(m for m in sys.modules if m.startswith('clvdrift')); "
        "print(ns['SCHEDULE'], heavy)"
    )
    env = {**os.environ, variable: value}
    out = subprocess.run(
        [sys.executable, "-c", code, str(DAGS / dag_file)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip().splitlines()[-1] == f"{expected} []"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A clvdrift working folder with a champion, found by the tasks through CLVDRIFT_* variables."""
    from clvdrift import pipeline
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store import connect

    root = tmp_path_factory.mktemp("work")
    history = root / "history.csv"
    synthetic_history(history, customers=180, seed=3)
    env = workspace_env(root, history)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    registry = ModelRegistry(connect(env["CLVDRIFT_DATABASE_URL"]))
    pipeline.train(history, registry=registry, models_dir=root / "models", reference_dir=root / "reference")
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _states(dagrun: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dagrun.get_task_instances()}


def _run_monitoring(dagbag: Any, day: int) -> Any:
    return dagbag.dags[MONITORING].test(logical_date=datetime(2025, 1, day, tzinfo=UTC))


def _simulate(workdir: Path, scenario: str, seed: int) -> None:
    from clvdrift import pipeline

    pipeline.simulate(workdir / "history.csv", scenario, seed=seed, current_dir=workdir / "current")


def _run_row(dagrun: Any) -> Any:
    from clvdrift.pipeline.tasks import run_marker
    from clvdrift.store import connect
    from clvdrift.store.runs import RunStore

    return RunStore(connect(os.environ["CLVDRIFT_DATABASE_URL"])).get(run_marker(dagrun.run_id))


def test_monitoring_without_drift_takes_the_no_retraining_branch(dagbag: Any, workdir: Path) -> None:
    _simulate(workdir, "none", seed=1)
    dagrun = _run_monitoring(dagbag, 1)
    states = _states(dagrun)
    assert states["detect_drift"] == "success"
    assert states["no_retraining_needed"] == "success"
    assert states["log_retraining_trigger"] == "skipped" and states["trigger_retraining"] == "skipped"
    row = _run_row(dagrun)
    assert (row.trigger, row.status, row.decision) == ("airflow", "success", "no_retrain")


def test_monitoring_with_drift_triggers_training(dagbag: Any, workdir: Path) -> None:
    from airflow.models.dagrun import DagRun

    _simulate(workdir, "data-drift", seed=2)
    dagrun = _run_monitoring(dagbag, 2)
    states = _states(dagrun)
    assert states["log_retraining_trigger"] == "success" and states["trigger_retraining"] == "success"
    assert states["no_retraining_needed"] == "skipped"
    assert DagRun.find(dag_id=TRAINING), "the trigger created no clv_model_training run"
    row = _run_row(dagrun)
    assert (row.status, row.decision, row.data_drift) == ("success", "retrain", True)


def test_monitoring_without_new_data_skips_cleanly(dagbag: Any, workdir: Path) -> None:
    dagrun = _run_monitoring(dagbag, 3)  # the files of current_dir were all processed by earlier runs
    states = _states(dagrun)
    assert str(dagrun.state) == "success"
    assert states["check_new_data"] == "skipped"
    assert {s for t, s in states.items() if t != "check_new_data"} == {"skipped"}
    row = _run_row(dagrun)
    assert (row.status, row.decision) == ("skipped", "no_new_data")


def test_training_dag_registers_and_gates_a_model(dagbag: Any, workdir: Path) -> None:
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store import connect

    registry = ModelRegistry(connect(os.environ["CLVDRIFT_DATABASE_URL"]))
    before = {v.version for v in registry.list_versions()}
    dagrun = dagbag.dags[TRAINING].test(
        logical_date=datetime(2025, 1, 4, tzinfo=UTC), run_conf={"reason": "test", "monitoring_run_id": "m1"}
    )
    assert _states(dagrun) == {"train_clv_model": "success"}
    new = [v for v in registry.list_versions() if v.version not in before]
    assert len(new) == 1 and new[0].training["gate"]["reason"]
    result = dagrun.get_task_instance("train_clv_model").xcom_pull(task_ids="train_clv_model")
    assert result["version"] == new[0].version
    assert result["outcome"] in {"promoted", "rejected"} and result["conf"]["reason"] == "test"


def test_retried_tasks_record_one_run_and_register_one_version(workdir: Path) -> None:
    """A retried task (same Airflow run id) reuses the run row, finishes it once, trains once."""
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.observability.metrics import CheckSummary
    from clvdrift.pipeline import tasks
    from clvdrift.settings import get_settings
    from clvdrift.store import connect
    from clvdrift.store.runs import RunStore

    settings = get_settings()
    engine = connect(os.environ["CLVDRIFT_DATABASE_URL"])
    run_id = tasks.run_marker("manual__retry")
    assert tasks.start_monitoring_run(settings, run_id) is True
    assert tasks.start_monitoring_run(settings, run_id) is False
    detected = {
        "retraining_required": True,
        "model_version": "v0",
        "data_drift": True,
        "model_drift": False,
        "report": "r.json",
        "reasons": ["shift"],
        "check": CheckSummary("v0", True, False, 0.6, 6, {"Recency": 0.4}).to_dict(),
    }
    assert tasks.finish_with_decision(settings, run_id, detected) is True
    assert tasks.finish_with_decision(settings, run_id, {**detected, "retraining_required": False}) is False
    assert RunStore(engine).get(run_id).decision == "retrain"
    registry = ModelRegistry(engine)
    before = len(registry.list_versions())
    first = tasks.train_clv_model(settings, "manual__train_retry", {"reason": "a"})
    again = tasks.train_clv_model(settings, "manual__train_retry", {"reason": "a"})
    assert again["version"] == first["version"] and len(registry.list_versions()) == before + 1
