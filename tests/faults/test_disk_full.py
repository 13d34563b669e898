"""Class 7: a full disk. The history folder (or the reports folder) is a 2 MB tmpfs filled up but for a
few KB, so the cycle runs out of space writing there: exit 3 (not 4) with one line, the run recorded
``failed``, no half-written part and no temporary file left; unmounted, the next cycle recovers.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from faults.invariants import assert_invariants

LEFT_FREE = 16 * 1024


def _mount_tmpfs(where: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.decode().strip()}")


def _fill(where: Path) -> None:
    st = os.statvfs(where)
    free = st.f_bavail * st.f_frsize
    with open(where / "filler", "wb") as fh:
        fh.write(b"\0" * max(free - LEFT_FREE, 0))


@pytest.mark.parametrize("folder", ["history", "reports"])
def test_a_full_disk_fails_the_cycle_cleanly_and_the_next_one_recovers(new_ws, folder):
    ws = new_ws()
    mount = ws.root / f"{folder}-on-tmpfs"
    _mount_tmpfs(mount)
    try:
        _fill(mount)
        ws.extra_env[f"CLVDRIFT_{folder.upper()}_DIR"] = str(mount)
        good = ws.drop(ws.inputs / "drift.csv", "export.csv")
        full = ws.monitor(expect=3)
        lines = full.error_lines()
        assert len(lines) == 1 and lines[0].startswith("error: disk full"), full.describe()
        run = ws.latest_monitor_run()
        assert run.status == "failed" and run.error, (run.status, run.error)
        left = sorted(p.name for p in mount.iterdir())
        assert not [n for n in left if n.endswith(".tmp")], f"temporary files left behind: {left}"
        if folder == "history":
            parts = [n for n in left if n.startswith("part-")]
            assert parts == [], f"part files no batch names: {left}"
            assert ws.history().batches() == [] and ws.ledger().get(good.sha256) is None
        else:  # taken in before the check ran out of space: checked again by the next cycle
            entry = ws.ledger().get(good.sha256)
            assert entry is not None and entry.checked_by is None, entry
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    doc = ws.monitor().json()
    assert doc["status"] == "success", doc["status"]
    assert ws.ledger().get(good.sha256).checked_by == doc["run_id"]
    assert_invariants(ws)
