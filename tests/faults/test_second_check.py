"""Findings of a second independent check of the loop, each reproduced with the real command or the
Airflow task functions (in-process, as the DAG calls them):

- a file recovered as "in the history already" (its run was killed between the history and the ledger)
  keeps the snapshot size guard on for the files after it in the same cycle;
- a check task re-run for an Airflow run that has finished takes nothing in (its files would have been
  marked checked by a run that never checked them);
- a retried check task keeps the earlier attempt's quarantine: the run ends ``partial``;
- a cut-off or invalid file whose mtime is in the future is judged now, not years from now.
"""

from __future__ import annotations

import os
import time

from faults.harness import BAD_CSV
from faults.invariants import assert_invariants


def test_a_recovered_snapshot_keeps_the_size_guard_on_for_the_files_after_it(new_ws):
    ws = new_ws("sqlite")
    whole = ws.inputs / "drift.csv"
    ws.drop(whole, "a_export.csv")
    lines = whole.read_bytes().splitlines(keepends=True)
    ws.drop(b"".join(lines[: len(lines) // 5]), "b_small.csv")  # a fifth of the rows: refused by the guard
    proc = ws.start("monitor", "--json", "--mode", ws.mode, stop_at="intake.history_added")
    proc.wait_stopped()
    proc.kill("SIGKILL")
    doc = ws.monitor(expect=(0, 6)).json()
    files = {f["path"].rsplit("/", 1)[-1]: f for f in doc["new_data"]["files"]}
    assert files["a_export.csv"]["status"] == "processed", files
    assert files["a_export.csv"]["rows_added"] == len(lines) - 1, files["a_export.csv"]
    assert files["b_small.csv"]["status"] == "quarantined", files["b_small.csv"]
    assert "snapshot" in files["b_small.csv"]["reason"], files["b_small.csv"]
    assert doc["status"] == "partial", doc["status"]
    assert_invariants(ws)


def _settings(ws):
    """The settings the DAG would read, for this workspace."""
    from clvdrift.settings import get_settings

    old = dict(os.environ)
    os.environ.update(ws.env)
    try:
        return get_settings()
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_a_check_task_re_run_after_its_run_finished_takes_nothing_in(new_ws):
    from clvdrift.pipeline import tasks

    ws = new_ws("sqlite")
    settings = _settings(ws)
    first = tasks.check_new_data(settings, "airflow:run2")  # nothing new: the run ends skipped
    assert first["new_files"] == 0 and ws.run_record("airflow:run2").status == "skipped"
    ws.drop(ws.inputs / "drift.csv", "export.csv")
    again = tasks.check_new_data(settings, "airflow:run2")  # the task cleared and re-run
    assert again == {"new_files": 0, "files": [], "finished": "skipped"}, again
    doc = ws.monitor().json()  # the file is the next cycle's, and checked by it
    assert [f["status"] for f in doc["new_data"]["files"]] == ["processed"], doc["new_data"]
    assert doc["status"] == "success"
    assert_invariants(ws)


def test_a_retried_check_task_keeps_the_earlier_attempts_quarantine(new_ws):
    from clvdrift.pipeline import tasks

    ws = new_ws("sqlite")
    settings = _settings(ws)
    ws.drop(ws.inputs / "drift.csv", "export.csv")
    ws.drop(BAD_CSV, "zbad.csv")
    tasks.check_new_data(settings, "airflow:run4")
    retry = tasks.check_new_data(settings, "airflow:run4")  # the bad file moved away by the first try
    assert retry["new_files"] == 1
    detected = tasks.detect_drift(settings, "airflow:run4")
    assert tasks.finish_with_decision(settings, "airflow:run4", detected)
    run = ws.run_record("airflow:run4")
    assert run.status == "partial", (run.status, run.details.get("not_taken_in"))
    listed = {f["path"].rsplit("/", 1)[-1]: f["status"] for f in run.details["files"]}
    assert listed["zbad.csv"] == "quarantined" and listed["export.csv"] in ("processed", "recheck"), listed
    assert_invariants(ws)


def test_a_cut_off_file_dated_in_the_future_is_judged_now(new_ws):
    ws = new_ws("sqlite")
    data = (ws.inputs / "drift.csv").read_bytes()
    cut = data.rfind(b"\n", 0, len(data) // 2) - 2
    future = time.time() + 3 * 365 * 86400
    for name, content in (("feed.csv", data[:cut]), ("zbad.csv", BAD_CSV)):
        ws.drop(content, name)
        os.utime(ws.current_dir / name, (future, future))
    doc = ws.monitor(expect=(0, 6)).json()
    files = {f["path"].rsplit("/", 1)[-1]: f["status"] for f in doc["new_data"]["files"]}
    assert files == {"feed.csv": "processed", "zbad.csv": "quarantined"}, doc["new_data"]["files"]
    assert_invariants(ws)
