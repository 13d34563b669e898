"""Class 6: damaged parts of the transaction history: one truncated to 1000 bytes, one missing.

A cycle that reads the history stops with exit 3 and one line naming the part and its batch; `history
verify` lists both (exit 3); `history drop BATCH` of each, then their source files put back, and the
next cycle takes them in and checks them; each repair is a run of kind ``repair``.
"""

from __future__ import annotations

import os

from faults.invariants import assert_invariants
from helpers import synthetic_history  # type: ignore[import-not-found]


def _one_error_line(result, *words: str) -> str:
    lines = result.error_lines()
    assert len(lines) == 1, result.describe()
    for word in words:
        assert word in lines[0], (word, result.describe())
    return lines[0]


def test_damaged_parts_stop_the_cycle_and_drop_plus_redelivery_repairs_them(new_ws, tmp_path):
    ws = new_ws(mode="append")
    sources = {}
    for name, seed in (("c.csv", 7), ("b.csv", 9)):
        sources[name] = tmp_path / name
        synthetic_history(sources[name], seed=seed)
    first = ws.drop(ws.inputs / "drift.csv", "a.csv")
    ws.monitor()
    second = ws.drop(sources["c.csv"], "c.csv")
    ws.monitor()
    ws.remove("a.csv")  # the deliveries were cleaned up; backups are kept
    ws.remove("c.csv")
    truncated, missing = ws.history().batches()
    assert (truncated.sha256, missing.sha256) == (first.sha256, second.sha256)
    os.truncate(ws.history_dir / truncated.part_file, 1000)
    (ws.history_dir / missing.part_file).unlink()

    # docs/operations.md: "A missing, truncated or modified part stops every cycle with exit 3";
    # this cycle has no new file (checked at the end, so the repair below is checked whatever it did)
    quiet = ws.monitor(expect=(0, 3))

    ws.drop(sources["b.csv"], "b.csv")  # dates overlap the damaged batches: the append reads them
    stopped = ws.monitor(expect=3)
    _one_error_line(stopped, "error:", truncated.part_file, truncated.batch_id, "history drop")
    run = ws.latest_monitor_run()
    assert run.status == "failed" and truncated.batch_id in (run.error or ""), (run.status, run.error)

    verify = ws.run("history", "verify", "--json", expect=3).json()
    assert not verify["ok"]
    problems = {p["batch_id"]: (p["part_file"], p["problem"]) for p in verify["problems"]}
    assert set(problems) == {truncated.batch_id, missing.batch_id}, problems
    assert "corrupted" in problems[truncated.batch_id][1] and "missing" in problems[missing.batch_id][1]
    table = ws.run("history", "verify", expect=3)
    assert "2 part(s) damaged" in table.stdout, table.describe()
    ws.run("history", "drop", truncated.batch_id)
    ws.run("history", "drop", missing.batch_id)
    ws.run("history", "verify")
    ws.drop(first.copy, "a.csv")  # the source files put back
    ws.drop(second.copy, "c.csv")
    doc = ws.monitor().json()
    files = {f["path"].rsplit("/", 1)[-1]: f["status"] for f in doc["new_data"]["files"]}
    assert files == {"a.csv": "processed", "b.csv": "processed", "c.csv": "processed"}, files
    assert doc["status"] == "success", doc["status"]
    for d in (first, second):
        assert ws.ledger().get(d.sha256).checked_by == doc["run_id"]

    runs = ws.run("runs", "list", "--json").json()["runs"]
    repairs = [r for r in runs if r["kind"] == "repair"]
    assert sorted(r["details"]["batch"]["batch_id"] for r in repairs) == sorted(
        [truncated.batch_id, missing.batch_id]
    ), repairs
    assert {r["status"] for r in repairs} == {"success"}, repairs
    assert_invariants(ws)
    assert quiet.code == 3, f"a cycle ran on a damaged history without a word: {quiet.describe()}"
    _one_error_line(quiet, truncated.part_file, truncated.batch_id)
