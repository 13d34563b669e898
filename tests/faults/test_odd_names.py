"""Class 5: odd file names in the current folder: not UTF-8, spaces, a trailing space, unsupported
extensions, a folder. None is a bug (exit 4); each is listed with a printable path; the ledger records
the ones taken in or quarantined."""

from __future__ import annotations

import os
from pathlib import Path

from faults.harness import BAD_CSV
from faults.invariants import assert_invariants, display
from helpers import synthetic_history  # type: ignore[import-not-found]

GOOD = [b"h\xff.csv", b"with space.csv", b"trailing.csv "]
BAD = [b"q\xfe.csv"]
IGNORED = [b"x.tsv", b"x.xls", b"x.CSV.bz2"]
FOLDER = b"folder.csv"


def test_odd_names_are_each_listed_printably_and_none_is_a_bug(new_ws, tmp_path):
    ws = new_ws()
    sources = {}
    for i, name in enumerate(GOOD):
        sources[name] = tmp_path / f"good{i}.csv"
        synthetic_history(sources[name], seed=11 + i)
    # the intake takes the snapshots in the order of their names: drop them in that order
    for name in sorted(GOOD, key=lambda n: Path(os.fsdecode(n))):
        ws.drop(sources[name], name)
    for name in BAD:
        ws.drop(BAD_CSV, name)
    for name in IGNORED:
        ws.drop(b"InvoiceNo\tStockCode\n1\t2\n", name)
    (ws.current_dir / os.fsdecode(FOLDER)).mkdir()
    ws.remember(FOLDER)

    text = ws.run("monitor", "--mode", ws.mode)  # the table output prints every path
    for name in [*GOOD, *BAD, *IGNORED, FOLDER]:
        assert display(name) in text.stdout, (display(name), text.stdout)
    doc = ws.run("runs", "list", "--limit", "1", "--json").json()
    (run,) = doc["runs"]
    assert run["status"] == "partial", (run["status"], run["error"])
    files = {f["path"].rsplit("/", 1)[-1]: f for f in run["details"]["files"]}
    for f in run["details"]["files"]:
        assert f["path"].isprintable() and f["path"].encode("utf-8"), f
        assert f["reason"] is None or f["reason"].isprintable(), f
    assert set(files) == {display(n) for n in [*GOOD, *BAD, *IGNORED, FOLDER]}, sorted(files)
    assert "tab-delimited" in files["x.tsv"]["reason"] and "gzip" in files["x.CSV.bz2"]["reason"], files
    ledger = ws.ledger()
    for d in ws.dropped:
        if d.name in GOOD or d.name in BAD:
            entry = ledger.get(d.sha256)
            assert entry is not None, display(d.name)
            assert entry.path.endswith(display(d.name)) and entry.path.isprintable(), entry.path
    for name in BAD:
        assert not (ws.current_dir / os.fsdecode(name)).exists(), "the bad file was not moved"
    ws.run("runs", "list")  # the table of runs prints too
    ws.monitor()  # a second cycle: every file seen before or ignored again
    assert_invariants(ws)
    # last, so that everything above is checked whatever the outcome of each name: a valid export is
    # taken in whatever its name ("case and surrounding spaces in the name do not matter")
    want = {
        **{display(n): "processed" for n in GOOD},
        **{display(n): "quarantined" for n in BAD},
        **{display(n): "ignored" for n in [*IGNORED, FOLDER]},
    }
    got = {k: f["status"] for k, f in files.items()}
    wrong = {k: (got.get(k), files.get(k, {}).get("reason")) for k in want if got.get(k) != want[k]}
    assert not wrong, f"expected {want}; wrong: {wrong}"


def test_names_with_control_characters_are_listed_printably_one_line_each(new_ws):
    """A newline, a tab or a carriage return is a legal byte of a file name: the listing must still be one
    printable line per file (the run history, the ledger and the command's output)."""
    ws = new_ws()
    good = ws.drop(ws.inputs / "drift.csv", b"new\nline.csv")
    bad = ws.drop(BAD_CSV, b"bad\tname\r.csv")
    text = ws.run("monitor", "--mode", ws.mode)
    run = ws.latest_monitor_run()
    statuses = sorted(f["status"] for f in run.details["files"])
    assert statuses == ["processed", "quarantined"], run.details["files"]
    assert_invariants(ws)
    problems = []
    for f in run.details["files"]:
        if not f["path"].isprintable():
            problems.append(f"run details path {f['path']!r}")
    for d in (good, bad):
        entry = ws.ledger().get(d.sha256)
        if not entry.path.isprintable():
            problems.append(f"ledger path {entry.path!r}")
    listed_lines = [
        line for line in text.stdout.splitlines() if line.startswith(("processed:", "quarantined:"))
    ]
    if len(listed_lines) != 2 or not all(".csv" in line for line in listed_lines):
        problems.append(f"output lines per file: {listed_lines!r}")
    assert not problems, "\n".join(problems)
