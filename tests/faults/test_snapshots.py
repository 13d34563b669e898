"""Class 8: re-exports that add no row (CRLF line endings, then a UTF-8 byte-order mark) are
``unchanged``: the run is skipped, no retraining, no new model version; in snapshot and append mode.

Class 9: the snapshot guard: a snapshot whose rows are all dated 2099 and a one-row snapshot are
quarantined, the run is ``rejected``, the history unchanged.
"""

from __future__ import annotations

import pandas as pd
import pytest

from faults.invariants import assert_invariants, file_rows, rows


def _versions(ws) -> list[tuple[str, bool]]:
    return [(v.version, v.is_champion) for v in ws.versions()]


@pytest.mark.parametrize("mode", ["snapshot", "append"])
def test_a_re_export_with_crlf_or_a_bom_adds_nothing(new_ws, mode):
    ws = new_ws(mode=mode)
    source = ws.inputs / "drift.csv"
    ws.drop(source, "export.csv")
    first = ws.monitor().json()
    assert first["status"] == "success", first["status"]
    history = rows(ws.history().read())
    batches = ws.history().batches()
    versions = _versions(ws)
    lf = source.read_bytes()
    assert b"\r\n" not in lf
    for name, content in (
        ("export-crlf.csv", lf.replace(b"\n", b"\r\n")),
        ("export-bom.csv", b"\xef\xbb\xbf" + lf),
    ):
        again = ws.drop(content, name)
        doc = ws.monitor().json()
        files = {f["path"].rsplit("/", 1)[-1]: f for f in doc["new_data"]["files"]}
        assert files[name]["status"] == "unchanged", files
        assert doc["status"] == "skipped" and doc["decision"] == "no_new_data", (
            doc["status"],
            doc["decision"],
        )
        assert doc["challenger"] is None and doc["detect"] is None
        entry = ws.ledger().get(again.sha256)
        assert entry.status == "processed" and entry.reason == "no new row", entry
        assert _versions(ws) == versions, "a re-export made a new model version"
        assert ws.history().batches() == batches and rows(ws.history().read()) == history
    listed = ws.run("models", "list", "--json").json()
    assert [(v["version"], v["is_champion"]) for v in listed] == versions
    assert_invariants(ws)


def test_snapshots_that_would_empty_or_gut_the_history_are_quarantined(new_ws, tmp_path):
    ws = new_ws()
    source = ws.inputs / "drift.csv"
    ws.drop(source, "export.csv")
    ws.monitor()
    batches = ws.history().batches()
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    future = frame.copy()
    future["InvoiceDate"] = "2099-06-01 10:00"
    future.to_csv(tmp_path / "future.csv", index=False)
    frame.head(1).to_csv(tmp_path / "one.csv", index=False)
    ws.drop(tmp_path / "future.csv", "future.csv")
    ws.drop(tmp_path / "one.csv", "one-row.csv")
    doc = ws.monitor("--fail-on-quarantine", expect=6).json()
    files = {f["path"].rsplit("/", 1)[-1]: f for f in doc["new_data"]["files"]}
    assert files["future.csv"]["status"] == "quarantined", files
    assert files["one-row.csv"]["status"] == "quarantined", files
    assert "replace a history of" in files["one-row.csv"]["reason"], files["one-row.csv"]
    assert doc["status"] == "rejected" and doc["decision"] == "no_new_data", doc["status"]
    assert ws.history().batches() == batches
    assert rows(ws.history().read()) == file_rows(source)
    for name in ("future.csv", "one-row.csv"):
        assert not (ws.current_dir / name).exists()
    assert_invariants(ws)
