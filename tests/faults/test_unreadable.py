"""Class 4: a file the cycle cannot read beside a good one, and a quarantine folder that is a file.

As root, ``chmod 000`` does not stop reads: the cycle runs under ``setpriv`` without CAP_DAC_OVERRIDE
and CAP_DAC_READ_SEARCH (bounding and inheritable sets), so the kernel refuses it the file.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from faults.harness import BAD_CSV
from faults.invariants import assert_invariants, listed
from helpers import synthetic_history  # type: ignore[import-not-found]

SETPRIV = [
    "setpriv",
    "--bounding-set",
    "-dac_override,-dac_read_search",
    "--inh-caps",
    "-dac_override,-dac_read_search",
]


def _unprivileged(probe: str) -> list[str]:
    """A command prefix under which ``probe`` (mode 000) cannot be read; skips when there is none."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv is not installed: chmod 000 cannot make a file unreadable")
    tried = subprocess.run([*SETPRIV, "cat", probe], capture_output=True, text=True)
    if tried.returncode == 0:
        pytest.skip(f"setpriv could not drop CAP_DAC_OVERRIDE here: {' '.join(SETPRIV)} still reads mode 000")
    if "Permission denied" not in tried.stderr:
        pytest.skip(f"setpriv is not permitted here: {tried.stderr.strip()}")
    return SETPRIV


def test_an_unreadable_file_is_listed_and_the_good_one_is_checked(new_ws, tmp_path):
    ws = new_ws()
    ws.drop(ws.inputs / "drift.csv", "good.csv")
    other = tmp_path / "other.csv"
    synthetic_history(other, seed=5)
    locked = ws.drop(other, "locked.csv")
    path = ws.current_dir / "locked.csv"
    os.chmod(path, 0)
    try:
        wrapper = _unprivileged(str(path))
        doc = ws.monitor(wrapper=wrapper).json()
        files = {f["path"].rsplit("/", 1)[-1]: f for f in doc["new_data"]["files"]}
        assert files["good.csv"]["status"] == "processed", files
        assert files["locked.csv"]["status"] == "unreadable", files
        assert "Permission denied" in files["locked.csv"]["reason"], files
        assert doc["status"] == "partial" and doc["decision"] in ("retrain", "no_retrain"), doc["status"]
        assert ws.ledger().get(locked.sha256) is None
        again = ws.monitor("--fail-on-quarantine", wrapper=wrapper, expect=6).json()
        files = {f["path"].rsplit("/", 1)[-1]: f["status"] for f in again["new_data"]["files"]}
        assert files == {"good.csv": "seen before", "locked.csv": "unreadable"}, files
        assert again["status"] == "rejected", again["status"]
        assert_invariants(ws)
    finally:
        os.chmod(path, 0o644)


def test_a_quarantine_folder_that_is_a_file_leaves_the_bad_file_in_place(new_ws):
    ws = new_ws()
    blocker = ws.root / "data" / "quarantine-is-a-file"
    blocker.write_text("not a folder\n")
    ws.extra_env["CLVDRIFT_QUARANTINE_DIR"] = str(blocker)
    ws.drop(ws.inputs / "drift.csv", "good.csv")
    bad = ws.drop(BAD_CSV, "bad.csv")
    doc = ws.monitor().json()
    files = {f["path"].rsplit("/", 1)[-1]: f for f in doc["new_data"]["files"]}
    assert files["good.csv"]["status"] == "processed", files
    assert files["bad.csv"]["status"] == "quarantined", files
    assert "cannot move it" in files["bad.csv"]["reason"], files["bad.csv"]
    assert doc["status"] == "partial", doc["status"]
    assert (ws.current_dir / "bad.csv").exists() and blocker.read_text() == "not a folder\n"
    entry = ws.ledger().get(bad.sha256)
    assert entry.status == "quarantined" and "missing required column" in entry.reason, entry
    again = ws.monitor("--fail-on-quarantine").json()  # seen before: nothing new to fail on
    assert {f["path"].rsplit("/", 1)[-1]: f["status"] for f in again["new_data"]["files"]} == {
        "good.csv": "seen before",
        "bad.csv": "seen before",
    }
    assert "cannot move it" in listed(ws.run_record(again["run_id"]))["bad.csv"][0]["reason"]
    assert_invariants(ws)
