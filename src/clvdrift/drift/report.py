"""Evidently (0.7 API) HTML reports. The only module of clvdrift that imports Evidently.

Evidently is an optional extra (``pip install -e '.[reports]'``); without it :func:`render_reports`
returns no paths and a hint, and the JSON results are still written by the caller.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from clvdrift.config import DriftConfig

INSTALL_HINT = "HTML reports need Evidently: pip install -e '.[reports]'"


def evidently_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("evidently") is not None


def render_reports(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out_dir: Path,
    *,
    numerical_columns: Sequence[str],
    categorical_columns: Sequence[str],
    target: str | None,
    prediction: str | None,
    drift_share: float = DriftConfig().drift_share,
) -> dict[str, Any]:
    """Write ``data_drift.html`` (drift preset + missing values + correlations) and, when ``target``
    is given, ``regression.html`` into ``out_dir``. Returns ``{"data_drift_html", "regression_html",
    "note"}`` with paths relative to nothing (as given) or None."""
    if not evidently_available():
        return {"data_drift_html": None, "regression_html": None, "note": INSTALL_HINT}
    os.environ.setdefault("DO_NOT_TRACK", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Regression, Report
        from evidently.metrics import DatasetCorrelations, DatasetMissingValueCount
        from evidently.presets import DataDriftPreset, RegressionPreset

        out_dir.mkdir(parents=True, exist_ok=True)
        numeric = [*numerical_columns, *(c for c in (target, prediction) if c)]
        columns = [*numeric, *categorical_columns]
        regression = [Regression(target=target, prediction=prediction)] if target and prediction else None
        definition = DataDefinition(
            numerical_columns=numeric, categorical_columns=list(categorical_columns), regression=regression
        )
        ref = Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition)
        cur = Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition)
        data_path = out_dir / "data_drift.html"
        report = Report(
            [DataDriftPreset(drift_share=drift_share), DatasetMissingValueCount(), DatasetCorrelations()],
            include_tests=True,
        )
        report.run(cur, ref).save_html(str(data_path))  # save_html writes nothing when given a Path
        regression_path = None
        if regression:
            regression_path = out_dir / "regression.html"
            Report([RegressionPreset()]).run(cur, ref).save_html(str(regression_path))
    return {
        "data_drift_html": str(data_path),
        "regression_html": str(regression_path) if regression_path else None,
        "note": None if regression_path else "no regression report: current labels are not available",
    }
