"""The tasks every adapter calls (CLI, Airflow DAGs, service): explicit inputs and config objects in,
a typed result out.

- :func:`train` (``pipeline/train.py``): load → validate → clean → features → check → train → evaluate →
  write artifacts → register → publish the champion's files.
- :func:`simulate` (``pipeline/simulate.py``): write a drift scenario to ``current_data.csv``.
- :func:`detect` / :func:`detect_transactions` (``pipeline/detect.py``): data drift and model drift of a
  batch against the champion, the decision, the JSON result and the Evidently reports.
- :func:`check_scenarios`: :func:`detect_transactions` on each drift scenario (the demo).
"""

from clvdrift.pipeline.common import load_champion, new_version
from clvdrift.pipeline.detect import (
    CURRENT_FILE,
    DRIFT_COLUMNS,
    LATEST_REPORT,
    Batch,
    Decision,
    DetectResult,
    ScoringScope,
    check_scenarios,
    choose_cutoff,
    detect,
    detect_transactions,
)
from clvdrift.pipeline.simulate import SimulateResult, simulate, write_transactions_csv
from clvdrift.pipeline.train import TrainResult, train

__all__ = [
    "CURRENT_FILE",
    "DRIFT_COLUMNS",
    "LATEST_REPORT",
    "Batch",
    "Decision",
    "DetectResult",
    "ScoringScope",
    "SimulateResult",
    "TrainResult",
    "check_scenarios",
    "choose_cutoff",
    "detect",
    "detect_transactions",
    "load_champion",
    "new_version",
    "simulate",
    "train",
    "write_transactions_csv",
]
