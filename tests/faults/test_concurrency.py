"""Class 2: several `clvdrift monitor` at once on one new file, on SQLite and PostgreSQL.

Without ``--wait``: the cycle that takes the lock stops itself at ``cycle.started`` (so it certainly
holds the lock while the others try), the others exit 5 with one line; resumed, it takes the file in.
With ``--wait 60``: all of them end 0 and the file is taken in once.
"""

from __future__ import annotations

import time

import pytest

from faults.invariants import assert_invariants

N = 4
STORES = ["sqlite", "postgresql"]


@pytest.mark.parametrize("store", STORES)
def test_concurrent_cycles_one_takes_the_file_in_the_others_exit_5(new_ws, store):
    ws = new_ws(store)
    good = ws.drop(ws.inputs / "drift.csv", "export.csv")
    procs = [ws.start("monitor", "--json", stop_at="cycle.started") for _ in range(N)]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ended = [p for p in procs if p.proc.poll() is not None]
        stopped = [p for p in procs if p.state() == "T"]
        if len(ended) == N - 1 and len(stopped) == 1:
            break
        if len(ended) == N:
            break
        time.sleep(0.05)
    holders = [p for p in procs if p.proc.poll() is None]
    assert len(holders) == 1, f"{len(holders)} cycles hold the lock or still run"
    (holder,) = holders
    holder.wait_stopped()
    for p in procs:
        if p is holder:
            continue
        busy = p.finish(expect=5)
        lines = busy.error_lines()
        assert len(lines) == 1, busy.describe()
        assert lines[0].startswith("error: another monitoring cycle is running"), busy.describe()
        assert "nothing was taken in" in lines[0], busy.describe()
    holder.resume()
    result = holder.finish(expect=0)
    doc = result.json()
    assert [f["status"] for f in doc["new_data"]["files"]] == ["processed"], doc["new_data"]
    batches = [b for b in ws.history().batches() if b.sha256 == good.sha256]
    assert len(batches) == 1, batches
    monitor_runs = [r for r in ws.runs() if r.kind == "monitor"]
    assert len(monitor_runs) == 1, [(r.run_id, r.status) for r in monitor_runs]  # the busy ones start none
    ws.monitor()  # an ordinary cycle afterwards: nothing new
    assert_invariants(ws)


@pytest.mark.parametrize("store", STORES)
def test_concurrent_cycles_with_wait_all_succeed_and_take_the_file_in_once(new_ws, store):
    ws = new_ws(store)
    good = ws.drop(ws.inputs / "drift.csv", "export.csv")
    procs = [ws.start("monitor", "--json", "--wait", "60") for _ in range(N)]
    docs = [p.finish(expect=0).json() for p in procs]
    statuses = sorted(d["status"] for d in docs)
    assert statuses == ["skipped"] * (N - 1) + ["success"], statuses
    taken = [d for d in docs if d["status"] == "success"]
    assert [f["status"] for f in taken[0]["new_data"]["files"]] == ["processed"], taken[0]["new_data"]
    for d in docs:
        if d["status"] == "skipped":
            assert [f["status"] for f in d["new_data"]["files"]] == ["seen before"], d["new_data"]
    batches = [b for b in ws.history().batches() if b.sha256 == good.sha256]
    assert len(batches) == 1, batches
    assert_invariants(ws)
