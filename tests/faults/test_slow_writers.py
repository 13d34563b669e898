"""Class 3: a file still being written when the cycle looks at it.

A writer process copies a valid export into the current folder chunk by chunk while `clvdrift monitor`
runs: keeping the file open (64 KB every 0.1 s; the last chunk held until the test lets it go), or
opening, appending and closing it for each chunk (512 bytes every 0.05 s, far below the settle time;
the rest at once when the test lets it go). The cycle must list it ``waiting``: never quarantine it,
never take a prefix in. Once the writer is done, the next cycle takes it in whole. And the
``name.part`` → rename convention.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from faults.harness import WAIT_TIMEOUT
from faults.invariants import assert_invariants, file_rows, listed, rows

WRITER = r"""
import os, sys, time
src, dst, mode, chunk, interval, flag = sys.argv[1:]
data = open(src, "rb").read()
chunk, interval = int(chunk), float(interval)
pos = 0
fh = open(dst, "ab") if mode == "open" else None
while pos < len(data):
    last = pos + chunk >= len(data)
    if mode == "open" and last:  # hold the end back (the file open) until the test says so
        while not os.path.exists(flag):
            time.sleep(0.02)
    piece = data[pos:] if os.path.exists(flag) else data[pos : pos + chunk]
    if fh is not None:
        fh.write(piece)
        fh.flush()
    else:
        with open(dst, "ab") as f:
            f.write(piece)
    pos += len(piece)
    if pos < len(data):
        time.sleep(interval)
if fh is not None:
    fh.close()
"""


@pytest.mark.parametrize(
    ("mode", "chunk", "interval"),
    [("open", 64 * 1024, 0.1), ("close", 512, 0.05)],
    ids=["kept-open", "closed-between-chunks"],
)
def test_a_file_being_written_waits_and_is_taken_in_whole_later(new_ws, mode, chunk, interval):
    ws = new_ws()
    source = ws.inputs / "drift.csv"
    target = ws.current_dir / "export.csv"
    flag = ws.root / "writer.finish"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(source), str(target), mode, str(chunk), str(interval), str(flag)]
    )
    try:
        deadline = time.monotonic() + 30
        while not (target.exists() and target.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        during = ws.monitor().json()
        assert writer.poll() is None, "the writer ended before the cycle looked: the case proves nothing"
    finally:
        flag.touch()
        writer.wait(timeout=WAIT_TIMEOUT)
    assert writer.returncode == 0
    assert target.read_bytes() == source.read_bytes()
    files = {f["path"].rsplit("/", 1)[-1]: f for f in during["new_data"]["files"]}
    assert files["export.csv"]["status"] == "waiting", files
    assert during["status"] == "skipped", during["status"]
    assert ws.ledger().list() == [], "a file still being written reached the ledger"
    assert ws.history().batches() == [], "a prefix was taken into the history"
    assert not ws.quarantine_dir.exists() or not any(ws.quarantine_dir.iterdir())

    good = ws.remember("export.csv")
    after = ws.monitor().json()  # the file is fresh: this cycle waits out the settle time, then takes it
    files = {f["path"].rsplit("/", 1)[-1]: f for f in after["new_data"]["files"]}
    assert files["export.csv"]["status"] == "processed", files
    assert files["export.csv"]["rows_added"] == sum(file_rows(source).values())
    assert rows(ws.history().read()) == file_rows(source)
    assert ws.ledger().get(good.sha256).checked_by == after["run_id"]
    assert_invariants(ws)


def test_a_part_file_waits_until_it_is_renamed(new_ws):
    ws = new_ws()
    ws.drop(ws.inputs / "drift.csv", "export.csv.part")
    before = ws.monitor().json()
    files = listed(ws.run_record(before["run_id"]))
    assert [f["status"] for f in files["export.csv.part"]] == ["waiting"], files
    assert "temporary name" in files["export.csv.part"][0]["reason"]
    assert ws.history().batches() == [] and ws.ledger().list() == []
    ws.dropped[-1].gone = True
    (ws.current_dir / "export.csv.part").rename(ws.current_dir / "export.csv")
    good = ws.remember("export.csv")
    after = ws.monitor().json()
    assert [f["status"] for f in after["new_data"]["files"]] == ["processed"], after["new_data"]
    assert rows(ws.history().read()) == file_rows(ws.inputs / "drift.csv")
    assert ws.ledger().get(good.sha256).checked_by == after["run_id"]
    assert_invariants(ws)
