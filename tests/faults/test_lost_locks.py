"""Findings of an independent check of the loop, each reproduced with the real command:

- the database session holding a PostgreSQL cycle lock ends while its cycle runs (a failover, an idle
  timeout, a DBA's ``pg_terminate_backend``): another cycle can take the lock, so the first one must stop
  before it retrains or finishes, and its files are checked by a later cycle;
- a burst of SIGTERMs (a scheduler repeating itself) while a cycle stops: it exits 143 with its run
  recorded, never hangs holding the cycle lock (the handler deadlocked on a ``threading.Event``);
- a killed cycle left as a zombie (a parent that never reaps it, as PID 1 of some containers) is dead:
  its run is reaped and its file rechecked.
"""

from __future__ import annotations

import os
import signal
import time

import sqlalchemy as sa

from clvdrift.store.locks import lock_key
from faults.invariants import assert_invariants


def _terminate_lock_session(ws) -> int:
    key = lock_key("monitoring-cycle")
    query = sa.text(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid::bigint = :hi AND objid::bigint = :lo "
        # this workspace's database only: a test running beside it holds the same key in its own
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with ws.engine.connect() as conn:
        ended = conn.execute(query, {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}).all()
        conn.commit()
    return len(ended)


def test_a_cycle_whose_postgresql_lock_session_ended_stops_before_retraining(new_ws):
    ws = new_ws("postgresql")
    ws.extra_env["CLVDRIFT_GATE__TOLERANCE"] = "1"
    good = ws.drop(ws.inputs / "drift.csv", "export.csv")
    proc = ws.start("monitor", "--json", "--mode", ws.mode, stop_at="cycle.detected")
    proc.wait_stopped()
    assert _terminate_lock_session(ws) == 1
    versions = len(ws.versions())
    proc.resume()
    stopped = proc.finish(expect=3)
    assert any("lost the monitoring-cycle lock" in line for line in stopped.error_lines()), stopped.describe()
    run = ws.latest_monitor_run()
    assert run.status == "failed" and "lost the monitoring-cycle lock" in (run.error or ""), run.error
    assert run.data_drift is True  # what it found before it stopped stays recorded
    assert len(ws.versions()) == versions, "a cycle that lost its lock retrained"
    doc = ws.monitor().json()
    assert doc["status"] == "success" and ws.ledger().get(good.sha256).checked_by == doc["run_id"]
    assert_invariants(ws)


def test_a_burst_of_sigterms_ends_the_cycle_and_records_it(new_ws):
    ws = new_ws("sqlite")
    ws.drop(ws.inputs / "drift.csv", "export.csv")
    proc = ws.start("monitor", "--json", "--mode", ws.mode, stop_at="cycle.detected")
    proc.wait_stopped()
    os.kill(proc.pid, signal.SIGTERM)
    os.kill(proc.pid, signal.SIGCONT)
    for _ in range(200):
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            break
    proc.finish(expect=143, timeout=60)
    run = ws.latest_monitor_run()
    assert run.status == "failed" and (run.error or "").startswith("stopped: signal SIGTERM"), run.error
    ws.monitor()  # the lock is free: the next cycle runs and checks the file
    assert_invariants(ws)


def test_a_killed_cycle_left_a_zombie_is_reaped(new_ws):
    ws = new_ws("sqlite")
    good = ws.drop(ws.inputs / "drift.csv", "export.csv")
    proc = ws.start("monitor", "--json", "--mode", ws.mode, stop_at="cycle.taken_in")
    proc.wait_stopped()
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while proc.state() != "Z" and time.monotonic() < deadline:  # not waited for: a zombie
        time.sleep(0.05)
    assert proc.state() == "Z"
    doc = ws.monitor().json()
    assert ws.latest_monitor_run().run_id == doc["run_id"]
    run_ids = doc["new_data"]["reaped"] or []
    assert len(run_ids) == 1, doc["new_data"]
    assert ws.ledger().get(good.sha256).checked_by == doc["run_id"]
    proc.proc.wait()  # reaped now
    assert_invariants(ws)
