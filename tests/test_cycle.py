"""The monitoring cycle (`clvdrift monitor`, `clvdrift runs list`) in-process on a small synthetic history:
ledger, quarantine, history, drift decision, retrain → gate → register, and the run history."""

from __future__ import annotations

import json
import os
import time

import pytest

from clvdrift import cli
from helpers import synthetic_history  # type: ignore[import-not-found]


@pytest.fixture
def workdir(cli_workdir):
    """The user's working folder (conftest) with a champion trained on its small history."""
    assert cli.run(["train"]) == 0
    return cli_workdir


def monitor(capsys) -> dict:
    code = cli.run(["monitor", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_no_new_data_ends_the_cycle_cleanly(workdir, capsys):
    capsys.readouterr()
    result = monitor(capsys)
    assert result["status"] == "skipped" and result["decision"] == "no_new_data" and result["detect"] is None
    assert cli.run(["runs", "list", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in runs["runs"]] == ["skipped"]


def test_a_file_is_processed_once_and_drift_triggers_a_gated_retraining(workdir, capsys):
    assert cli.run(["simulate", "--scenario", "none"]) == 0
    capsys.readouterr()
    first = monitor(capsys)
    assert [f["status"] for f in first["new_data"]["files"]] == ["processed"]
    assert first["decision"] == "no_retrain" and first["challenger"] is None
    again = monitor(capsys)  # same file, same content: the ledger has it
    assert again["status"] == "skipped" and again["new_data"]["files"][0]["status"] == "seen before"

    assert cli.run(["simulate", "--scenario", "data-drift", "--seed", "3"]) == 0
    capsys.readouterr()
    drifted = monitor(capsys)
    assert drifted["decision"] == "retrain" and drifted["detect"]["decision"]["data_drift_detected"]
    challenger = drifted["challenger"]
    assert challenger["outcome"] in ("promoted", "rejected") and challenger["reason"]
    assert cli.run(["models", "list", "--json"]) == 0
    versions = {v["version"]: v for v in json.loads(capsys.readouterr().out)}
    assert challenger["version"] in versions
    assert versions[challenger["version"]]["training"]["gate"]["promote"] == (
        challenger["outcome"] == "promoted"
    )
    assert versions[challenger["version"]]["is_champion"] == (challenger["outcome"] == "promoted")

    assert cli.run(["runs", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["decision"] for r in doc["runs"]] == ["retrain", "no_new_data", "no_retrain"]
    assert doc["runs"][0]["challenger"]["version"] == challenger["version"]
    assert cli.run(["runs", "list"]) == 0
    assert "runs (monitoring cycles" in capsys.readouterr().out


def test_a_bad_file_is_quarantined_while_a_good_one_goes_through(workdir, capsys):
    current = workdir / "data" / "current"
    current.mkdir(parents=True)
    synthetic_history(current / "good.csv", seed=4)
    (current / "bad.csv").write_text("InvoiceNo,StockCode\n1,2\n")
    capsys.readouterr()
    fresh = monitor(capsys)  # invalid and just written: a writer may be pausing, so it waits
    status = {os.path.basename(f["path"]): f["status"] for f in fresh["new_data"]["files"]}
    assert status == {"bad.csv": "waiting", "good.csv": "processed"}
    assert "it is invalid, and it changed" in next(
        f["reason"] for f in fresh["new_data"]["files"] if f["status"] == "waiting"
    )
    then = time.time() - 60  # unchanged for longer than CLVDRIFT_LOOP__SUSPECT_SETTLE_SECONDS (20 s)
    os.utime(current / "bad.csv", (then, then))
    result = monitor(capsys)
    status = {os.path.basename(f["path"]): f["status"] for f in result["new_data"]["files"]}
    assert status == {"bad.csv": "quarantined", "good.csv": "seen before"}
    assert not (current / "bad.csv").exists()
    assert [p.name.endswith("-bad.csv") for p in (workdir / "data" / "quarantine").iterdir()] == [True]
    bad = next(f for f in result["new_data"]["files"] if f["status"] == "quarantined")
    assert "missing required column" in bad["reason"]


def test_models_rollback_restores_the_previous_champion_and_is_recorded(workdir, capsys):
    assert cli.run(["train", "--promote", "--horizon-days", "60"]) == 0
    capsys.readouterr()
    assert cli.run(["models", "list", "--json"]) == 0
    versions = json.loads(capsys.readouterr().out)  # newest first
    second, first = versions[0]["version"], versions[1]["version"]
    assert versions[0]["is_champion"]
    reference = workdir / "data" / "reference" / "reference_data.csv"
    promoted_reference = reference.read_bytes()
    assert cli.run(["models", "rollback"]) == 0
    assert cli.run(["models", "list", "--json"]) == 0
    now = {v["version"]: v["is_champion"] for v in json.loads(capsys.readouterr().out.split("\n", 1)[1])}
    assert now == {first: True, second: False}
    assert reference.read_bytes() != promoted_reference  # the files follow the champion back
    meta = json.loads((workdir / "models" / "metadata_latest.json").read_text())
    assert meta["version"] == first
    assert cli.run(["runs", "list", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert {k: run["details"][k] for k in ("action", "from", "to")} == {
        "action": "rollback",
        "from": second,
        "to": first,
    }
    assert run["kind"] == "rollback" and run["details"]["metrics"]["ok"]
    assert run["champion_version"] == first


def test_a_crash_between_register_and_publish_is_healed_by_the_next_cycle(workdir, capsys):
    """The registry is the source of truth: a champion registered by a process killed before it
    published its files gets them at the next monitoring cycle."""
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.store import connect

    assert cli.run(["train", "--no-promote", "--horizon-days", "60"]) == 0
    registry = ModelRegistry(connect("sqlite:///clvdrift.db"))
    challenger = next(v for v in registry.list_versions() if not v.is_champion)
    registry.promote(challenger.version)  # registered as champion, files never published
    latest = workdir / "models" / "metadata_latest.json"
    assert json.loads(latest.read_text())["version"] != challenger.version
    capsys.readouterr()
    monitor(capsys)
    assert json.loads(latest.read_text())["version"] == challenger.version


def test_a_training_killed_at_any_point_leaves_the_champion_loadable_and_the_lock_free(workdir, capsys):
    """SIGKILL a `clvdrift train --promote` at several moments (loading, fitting, writing, registering,
    publishing): every time the champion and its reference still load, detect works, the lock is free."""
    import signal
    import subprocess
    import sys
    import time

    from clvdrift.model.artifacts import verify_artifacts
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.pipeline import load_champion
    from clvdrift.store import connect
    from clvdrift.store.locks import training_lock

    assert cli.run(["simulate"]) == 0
    engine = connect("sqlite:///clvdrift.db")
    registry = ModelRegistry(engine)
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    for delay in (0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.8):
        child = subprocess.Popen(
            [sys.executable, "-m", "clvdrift", "train", "--promote"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        champions = [v for v in registry.list_versions() if v.is_champion]
        assert len(champions) == 1, delay
        champion, _ = load_champion(registry, workdir / "models")
        verify_artifacts(workdir / "models", {k: champion.artifacts[k] for k in ("profile", "reference")})
        with training_lock(engine):  # free again: released with its holder
            pass
        capsys.readouterr()
        assert cli.run(["detect", "--no-html", "--json"]) == 0, (delay, capsys.readouterr().err)
    capsys.readouterr()
    assert cli.run(["train", "--promote"]) == 0


def test_demo_shows_the_scenarios_and_the_loop_in_a_workspace_of_its_own(workdir, capsys):
    capsys.readouterr()
    assert cli.run(["demo", "--no-html"]) == 0
    out = capsys.readouterr().out
    for word in ("none", "data-drift", "model-drift", "both", "monitoring cycles", "no_retrain", "retrain"):
        assert word in out
    # the training table: the default model judged through time next to persistence (on the bundled file
    # it is ahead on every metric: test_pipeline; on this small synthetic shop, on ranking)
    assert "through time" in out and "total: uncalibrated" in out
    header = next(line for line in out.splitlines() if "persistence" in line and "gbm" in line)
    cells = [c.strip() for c in header.strip("┃│ ").split("┃" if "┃" in header else "│")]
    assert cells[1:3] == ["gbm", "persistence"], cells
    rows = {}
    for line in out.splitlines():
        parts = [c.strip() for c in line.strip("│ ").split("│")]
        if len(parts) >= 3 and parts[0] in ("spearman", "gini_normalized", "mae", "rmse", "r2"):
            rows.setdefault(parts[0], (float(parts[1].replace(",", "")), float(parts[2].replace(",", ""))))
    assert set(rows) == {"spearman", "gini_normalized", "mae", "rmse", "r2"}, rows
    for metric in ("spearman", "gini_normalized"):
        model, persistence = rows[metric]
        assert model > persistence, (metric, model, persistence)
    loops = list((workdir / "monitoring" / "demo_loop").iterdir())
    assert len(loops) == 1 and (loops[0] / "clvdrift.db").is_file()
    assert cli.run(["runs", "list"]) == 0  # the user's own store has no monitoring run from the demo
    assert "no monitoring run recorded yet" in capsys.readouterr().out


def test_a_failed_metrics_push_is_logged_and_recorded_and_the_cycle_still_succeeds(
    workdir, capsys, monkeypatch
):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens there once closed
    log_file = workdir / "logs" / "clvdrift.log"
    monkeypatch.setenv("CLVDRIFT_PUSHGATEWAY_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("CLVDRIFT_LOG_FILE", str(log_file))
    assert cli.run(["simulate", "--scenario", "none"]) == 0
    capsys.readouterr()
    result = monitor(capsys)
    assert result["status"] == "success"
    assert result["metrics"]["ok"] is False and "Connection refused" in result["metrics"]["error"]
    assert cli.run(["runs", "list", "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert run["details"]["metrics"] == result["metrics"]
    warnings = [json.loads(x) for x in log_file.read_text().splitlines()]
    assert next(w["message"] for w in warnings if w["level"] == "warning").startswith("metrics not published")
    assert not (workdir / "monitoring" / "metrics" / "clvdrift.prom").exists()  # the push was the target


def test_without_a_pushgateway_every_run_writes_the_textfile(workdir, capsys):
    capsys.readouterr()
    result = monitor(capsys)  # even a skipped run refreshes the metrics (last run time, totals)
    assert result["metrics"]["ok"] and result["metrics"]["target"] == "textfile"
    text = (workdir / "monitoring" / "metrics" / "clvdrift.prom").read_text()
    assert 'clv_monitoring_runs_total{model_version="' in text and 'status="skipped"} 1.0' in text


def test_files_taken_in_by_a_failed_run_are_checked_by_the_next_run(workdir, capsys, monkeypatch):
    from clvdrift.errors import ArtifactError
    from clvdrift.pipeline import cycle

    def broken(*args, **kwargs):
        raise ArtifactError("champion model file unreadable (injected)")

    assert cli.run(["simulate", "--scenario", "data-drift", "--seed", "5"]) == 0
    real = cycle.detect_history
    monkeypatch.setattr(cycle, "detect_history", broken)
    assert cli.run(["monitor", "--json"]) == 3
    capsys.readouterr()
    monkeypatch.setattr(cycle, "detect_history", real)
    result = monitor(capsys)  # the file is in the ledger, yet it is checked, not skipped
    assert result["status"] == "success" and result["detect"] is not None
    (file,) = result["new_data"]["files"]
    assert file["status"] == "recheck" and "did not finish its check" in file["reason"]
    assert result["detect"]["decision"]["data_drift_detected"]
    assert monitor(capsys)["status"] == "skipped"  # once checked, it is not checked again


def test_a_text_file_cut_mid_line_waits_until_it_stays_unchanged(workdir, capsys):
    """A writer that closes the file between chunks and pauses longer than the settle time leaves a
    valid-looking prefix whose last line is cut (e.g. Country "United Ki"): it is not taken in while
    it changed recently; once unchanged for CLVDRIFT_LOOP__SUSPECT_SETTLE_SECONDS it is (found by an
    independent check: the prefix was taken in and a corrupt row stayed in the history)."""
    current = workdir / "data" / "current"
    current.mkdir(parents=True)
    whole = workdir / "whole.csv"
    synthetic_history(whole, seed=4)
    data = whole.read_bytes()
    cut = data.rfind(b"\n", 0, len(data) // 2) - 2  # inside the last column: the prefix parses
    (current / "feed.csv").write_bytes(data[:cut])  # as a paused writer leaves it
    capsys.readouterr()
    first = monitor(capsys)
    (feed,) = first["new_data"]["files"]
    assert feed["status"] == "waiting" and "last line has no line break" in feed["reason"]
    assert first["status"] == "skipped"
    (current / "feed.csv").write_bytes(data)  # the writer finished
    then = time.time() - 60
    os.utime(current / "feed.csv", (then, then))
    done = monitor(capsys)
    assert [f["status"] for f in done["new_data"]["files"]] == ["processed"]
    assert done["new_data"]["files"][0]["rows_added"] == len(data.splitlines()) - 1
