"""clv_drift_monitoring: new data → drift check → retrain decision → trigger clv_model_training.

Wiring only: the work is :mod:`clvdrift.pipeline.tasks`, imported inside the tasks, so parsing this
file touches no database, file or network. Each DAG run is one row of clvdrift's run history.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

# Not CLVDRIFT_*: clvdrift's settings refuse unknown names. "none": triggered runs only.
_SCHEDULE = os.environ.get("CLV_MONITORING_SCHEDULE", "@daily")
SCHEDULE = None if _SCHEDULE.lower() == "none" else _SCHEDULE
TRAINING_DAG_ID = "clv_model_training"
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "clvdrift",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def _run_id() -> str:
    """The clvdrift run id of the current Airflow DAG run."""
    from clvdrift.pipeline.tasks import run_marker

    return run_marker(get_current_context()["run_id"])


with DAG(
    dag_id="clv_drift_monitoring",
    schedule=SCHEDULE,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["clv", "monitoring", "drift"],
    doc_md=__doc__,
):

    @task
    def check_new_data() -> dict[str, Any]:
        """New files of current_dir into the history; none → skip the rest of the run."""
        from clvdrift.pipeline import tasks
        from clvdrift.settings import get_settings

        found = tasks.check_new_data(get_settings(), _run_id())
        if not found["new_files"]:
            raise AirflowSkipException("no new transaction files")
        return found

    @task
    def detect_drift(found: dict[str, Any]) -> dict[str, Any]:
        """The history against the champion."""
        from clvdrift.pipeline import tasks
        from clvdrift.settings import get_settings

        return tasks.detect_drift(get_settings(), _run_id())

    @task.branch
    def check_retraining_needed(detected: dict[str, Any]) -> str:
        """Retrain on data or model drift."""
        return "log_retraining_trigger" if detected["retraining_required"] else "no_retraining_needed"

    @task
    def log_retraining_trigger(detected: dict[str, Any]) -> str:
        """Record the run as 'retrain' and pass the reason to the training DAG."""
        from clvdrift.pipeline import tasks
        from clvdrift.settings import get_settings

        tasks.finish_with_decision(get_settings(), _run_id(), detected)
        return "; ".join(detected["reasons"]) or "drift detected"

    @task
    def no_retraining_needed(detected: dict[str, Any]) -> None:
        """Record the run as 'no_retrain'."""
        from clvdrift.pipeline import tasks
        from clvdrift.settings import get_settings

        tasks.finish_with_decision(get_settings(), _run_id(), detected)

    found = check_new_data()
    detected = detect_drift(found)
    branch = check_retraining_needed(detected)
    reason = log_retraining_trigger(detected)
    trigger = TriggerDagRunOperator(
        task_id="trigger_retraining",
        trigger_dag_id=TRAINING_DAG_ID,
        conf={"reason": reason, "monitoring_run_id": "{{ run_id }}"},
    )
    done = no_retraining_needed(detected)
    branch >> [reason, done]
    reason >> trigger
