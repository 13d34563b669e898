"""The CLI as a user runs it: a subprocess in an empty folder, settings from CLVDRIFT_* variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import BUNDLED  # type: ignore[import-not-found]


def run(args, cwd, check=True, timeout=300):
    env = {**os.environ, "CLVDRIFT_RAW_DATA": str(BUNDLED), "DO_NOT_TRACK": "1"}
    proc = subprocess.run([sys.executable, "-m", "clvdrift", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_help_does_not_import_heavy_libraries(tmp_path):
    code = ("import sys; from clvdrift.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('sklearn', 'evidently', 'airflow', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [["train"], ["simulate"], ["demo"], ["models", "list"]])
def test_each_command_has_help(tmp_path, command):
    proc = run([*command, "--help"], tmp_path)
    assert "Usage" in proc.stdout


def test_bad_input_exits_nonzero_with_one_line_reason(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("InvoiceNo,StockCode\n1,2\n")
    proc = run(["train", "--data", str(bad)], tmp_path, check=False)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing required column" in lines[0] and "bad.csv" in lines[0]
    assert "Traceback" not in proc.stderr
    proc = run(["train", "--data", str(tmp_path / "missing.csv")], tmp_path, check=False)
    assert proc.returncode == 2 and "not found" in proc.stderr
    proc = run(["simulate", "--scenario", "wild"], tmp_path, check=False)
    assert proc.returncode != 0


def test_models_list_before_any_training(tmp_path):
    assert "no model registered" in run(["models", "list"], tmp_path).stdout


def test_train_simulate_and_list_end_to_end(tmp_path):
    result = json.loads(run(["train", "--json", "--horizon-days", "91"], tmp_path).stdout)
    assert result["champion"] is True and result["evaluation"]["beats_baseline"] is True
    assert (tmp_path / "models" / "clv_model_latest.joblib").is_file()
    assert (tmp_path / "data" / "reference" / "reference_data.csv").is_file()
    versions = json.loads(run(["models", "list", "--json"], tmp_path).stdout)
    assert [v["version"] for v in versions] == [result["version"]] and versions[0]["is_champion"]
    table = run(["models", "list"], tmp_path).stdout
    assert result["version"] in table and "*" in table
    out = run(["simulate", "--scenario", "model-drift", "--seed", "3"], tmp_path).stdout
    assert "model-drift" in out and (tmp_path / "data" / "current" / "current_data.csv").is_file()


def test_demo_prints_the_scenario_table(tmp_path):
    proc = run(["demo"], tmp_path)
    for word in ("none", "data-drift", "model-drift", "both", "persistence baseline"):
        assert word in proc.stdout
    assert "registered version" in proc.stdout
