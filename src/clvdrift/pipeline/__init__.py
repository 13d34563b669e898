"""The tasks every adapter calls (CLI, Airflow DAGs, service): explicit inputs and config objects in,
a typed result out.

- :func:`train` (``pipeline/train.py``): load → validate → clean → features → check → train → evaluate →
  write artifacts → register → publish the champion's files.
- :func:`simulate` (``pipeline/simulate.py``): write a drift scenario to ``current_data.csv``.
- :func:`check_batch` (``pipeline/detect.py``): data drift and model drift of a batch against the
  champion and the decision, writing nothing; :func:`write_reports`: its JSON result and Evidently
  reports; :func:`detect` / :func:`detect_transactions`: both.
- :func:`check_scenarios`: :func:`detect_transactions` on each drift scenario (the demo).
- :func:`retrain_and_gate` (``pipeline/retrain.py``): challenger on a time split, gated against the champion.
- :func:`monitor_cycle` (``pipeline/cycle.py``): one monitoring cycle; :func:`take_in_files`
  (``pipeline/intake.py``): which files of a folder are ready, and what happened to each.
"""

from clvdrift.pipeline.champion import ChampionChange, promote, rollback
from clvdrift.pipeline.common import load_champion, new_version
from clvdrift.pipeline.cycle import CycleResult, monitor_cycle
from clvdrift.pipeline.detect import (
    CURRENT_FILE,
    DRIFT_COLUMNS,
    LATEST_REPORT,
    Batch,
    Decision,
    DetectResult,
    ScoringScope,
    check_batch,
    check_scenarios,
    choose_cutoff,
    detect,
    detect_transactions,
    write_reports,
)
from clvdrift.pipeline.intake import FileOutcome, NewData, take_in_files
from clvdrift.pipeline.predict import PredictResult, predict, predict_input
from clvdrift.pipeline.retrain import RetrainOutcome, retrain_and_gate
from clvdrift.pipeline.simulate import SimulateResult, simulate, write_transactions_csv
from clvdrift.pipeline.train import FittedModel, TrainResult, fit_version, register_version, train

__all__ = [
    "CURRENT_FILE",
    "DRIFT_COLUMNS",
    "LATEST_REPORT",
    "Batch",
    "ChampionChange",
    "CycleResult",
    "Decision",
    "DetectResult",
    "FileOutcome",
    "FittedModel",
    "NewData",
    "PredictResult",
    "RetrainOutcome",
    "ScoringScope",
    "SimulateResult",
    "TrainResult",
    "check_batch",
    "check_scenarios",
    "choose_cutoff",
    "detect",
    "detect_transactions",
    "fit_version",
    "load_champion",
    "monitor_cycle",
    "new_version",
    "predict",
    "predict_input",
    "promote",
    "register_version",
    "retrain_and_gate",
    "rollback",
    "simulate",
    "take_in_files",
    "train",
    "write_reports",
    "write_transactions_csv",
]
