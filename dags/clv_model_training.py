"""clv_model_training: retrain on the transaction history and gate the challenger against the champion.

Wiring only: the work is :func:`clvdrift.pipeline.tasks.train_clv_model`, imported inside the task.
Accepts ``conf`` (e.g. ``reason`` and ``monitoring_run_id`` from clv_drift_monitoring).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, get_current_context, task

# Not CLVDRIFT_*: clvdrift's settings refuse unknown names. "none": triggered runs only.
_SCHEDULE = os.environ.get("CLV_TRAINING_SCHEDULE", "@weekly")
SCHEDULE = None if _SCHEDULE.lower() == "none" else _SCHEDULE
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "clvdrift",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}

with DAG(
    dag_id="clv_model_training",
    schedule=SCHEDULE,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["clv", "training"],
    doc_md=__doc__,
):

    @task
    def train_clv_model() -> dict[str, Any]:
        """Retrain and gate (first training without a champion); the result goes to XCom."""
        from clvdrift.pipeline import tasks
        from clvdrift.settings import get_settings

        context = get_current_context()
        dag_run = context["dag_run"]
        return tasks.train_clv_model(get_settings(), context["run_id"], dict(dag_run.conf or {}))

    train_clv_model()
