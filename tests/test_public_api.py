"""The public API is exactly what __all__ says, and the report module degrades without Evidently."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pandas as pd
import pytest

import clvdrift.drift
import clvdrift.pipeline
from clvdrift.drift import report


@pytest.mark.parametrize("package", [clvdrift.drift, clvdrift.pipeline])
def test_public_names_are_exactly_all(package):
    public = {n for n in dir(package) if not n.startswith("_")}
    # submodules are not public names, unless a public function shares the name (pipeline.train)
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)} - set(package.__all__)
    assert public - modules == set(package.__all__)  # its order is ruff's RUF022, checked by `make lint`


def test_drift_public_names():
    for name in (
        "build_profile",
        "ReferenceProfile",
        "detect_data_drift",
        "DataDriftResult",
        "ColumnDriftResult",
        "detect_model_drift",
        "ModelDriftResult",
    ):
        assert name in clvdrift.drift.__all__, name


def test_importing_drift_does_not_import_evidently_or_sklearn():
    code = (
        "import sys, clvdrift.drift; print(sorted(m for m in ('evidently', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_reports_without_evidently_give_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(report, "evidently_available", lambda: False)
    frame = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]})
    out = report.render_reports(
        frame,
        frame,
        tmp_path / "r",
        numerical_columns=["x"],
        categorical_columns=["c"],
        target=None,
        prediction=None,
    )
    assert out["data_drift_html"] is None and "pip install 'clvdrift[reports]'" in out["note"]
    assert not (tmp_path / "r").exists()
