"""Class 1: a drift cycle killed (SIGKILL) or stopped (SIGTERM) at every fault point, then recovered by
the next `clvdrift monitor`.

The data-drift scenario makes the cycle retrain; ``CLVDRIFT_GATE__TOLERANCE=1`` makes the gate promote
the challenger, so the kills at ``cycle.retraining``/``cycle.registered`` happen around a champion
change. The full matrix runs on SQLite, a representative subset on PostgreSQL.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from clvdrift.faults import FAULT_POINTS
from faults.harness import BAD_CSV
from faults.invariants import assert_invariants

CYCLE_POINTS = [p for p in FAULT_POINTS if p != "intake.quarantine_recorded"]
SIGNALS = ("SIGKILL", "SIGTERM")
PG_POINTS = ("intake.history_added", "cycle.detected", "cycle.registered")
CASES = [
    pytest.param("sqlite", [(point, how) for how in SIGNALS], id=f"sqlite-{point}") for point in FAULT_POINTS
] + [pytest.param("postgresql", [(point, "SIGKILL") for point in PG_POINTS], id="postgresql-SIGKILL")]
"""Each test runs its cases side by side (two at a time, each in a workspace of its own): the cases are
independent, and the machine has two cores."""


def test_every_fault_point_lists_the_cycle_points():
    assert set(CYCLE_POINTS) | {"intake.quarantine_recorded"} == set(FAULT_POINTS)
    assert CYCLE_POINTS == [
        "cycle.started",
        "intake.history_added",
        "cycle.taken_in",
        "cycle.detected",
        "cycle.retraining",
        "cycle.registered",
        "cycle.finished",
    ]


@pytest.mark.parametrize(("store", "cases"), CASES)
def test_a_cycle_killed_at_a_fault_point_is_recovered_by_the_next_cycle(new_ws, store, cases):
    workspaces = [new_ws(store) for _ in cases]
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(_kill_and_recover, ws, point, how)
            for ws, (point, how) in zip(workspaces, cases, strict=True)
        ]
    failures = [
        f"{point} {how}: {type(exc).__name__}: {exc}"
        for (point, how), future in zip(cases, futures, strict=True)
        if (exc := future.exception()) is not None
    ]
    assert not failures, "\n\n".join(failures)


def _kill_and_recover(ws, point: str, how: str) -> None:
    ws.extra_env["CLVDRIFT_GATE__TOLERANCE"] = "1"  # the challenger wins: a champion change is killed too
    good = ws.drop(ws.inputs / "drift.csv", "export.csv")
    bad = ws.drop(BAD_CSV, "a_bad.csv") if point == "intake.quarantine_recorded" else None

    proc = ws.start("monitor", "--json", "--mode", ws.mode, stop_at=point)
    proc.wait_stopped()
    killed = proc.kill(how)
    run = ws.latest_monitor_run()
    if point == "cycle.finished":  # the run had finished: a kill now does not undo it
        assert run.status == "success", (run.status, run.error)
    elif how == "SIGTERM":
        assert run.status == "failed", (run.status, killed.describe())
        assert (run.error or "").startswith("stopped: signal SIGTERM"), run.error
    else:
        assert run.status == "running", (run.status, run.error)
    if bad is not None:  # recorded before the kill, so never lost
        entry = ws.ledger().get(bad.sha256)
        assert entry is not None and entry.status == "quarantined" and entry.reason, entry

    recovery = ws.monitor()
    doc = recovery.json()
    after = ws.run_record(run.run_id)
    if how == "SIGKILL" and point != "cycle.finished":
        assert run.run_id in (doc["new_data"]["reaped"] or []), doc["new_data"]
        assert after.status == "failed" and "is gone" in (after.error or ""), (after.status, after.error)
    if point == "cycle.finished":
        assert doc["status"] == "skipped", doc["status"]
    else:
        assert doc["status"] == "success", (doc["status"], doc["new_data"])
        statuses = {f["path"].rsplit("/", 1)[-1]: f["status"] for f in doc["new_data"]["files"]}
        assert statuses["export.csv"] in ("processed", "recheck"), statuses
        entry = ws.ledger().get(good.sha256)
        assert entry is not None and entry.checked_by == doc["run_id"], entry
    if bad is not None:
        assert not (ws.current_dir / "a_bad.csv").exists(), "the quarantined file was not moved"
    assert_invariants(ws)
