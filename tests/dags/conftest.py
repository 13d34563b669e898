"""Airflow for the DAG tests: set before anything imports airflow (design NOTES, "Airflow 3.3.2").

A temporary AIRFLOW_HOME with its own SQLite metadata database, the repo's ``dags/`` as the DAG folder,
and a clvdrift working folder (store, models, data) that the tasks find through CLVDRIFT_* variables.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(tempfile.mkdtemp(prefix="clvdrift-airflow-"))
os.environ["AIRFLOW_HOME"] = str(HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
