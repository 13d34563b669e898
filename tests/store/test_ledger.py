"""The file ledger: keyed by content, idempotent, first writer wins, also across processes."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from clvdrift.errors import RegistryError
from clvdrift.store import Ledger, connect
from store.processes import run_at_once  # type: ignore[import-not-found]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _rows(url: str) -> list[tuple[str, str, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r) for r in conn.execute(sa.text("SELECT sha256, path, status FROM processed_files"))
            ]
    finally:
        engine.dispose()


def test_recording_the_same_content_twice_keeps_the_first_entry(store_url):
    ledger = Ledger(connect(store_url))
    digest = _sha("Invoice,StockCode\n536365,85123A\n")
    assert ledger.get(digest) is None
    first = ledger.record(digest, "/in/current/week_07.csv", "processed", run_id="cycle_1")
    again = ledger.record(digest, "/in/current/renamed copy.csv", "quarantined", reason="later", run_id="c2")
    assert again == first
    assert (first.path, first.status, first.reason, first.run_id) == (
        "/in/current/week_07.csv",
        "processed",
        None,
        "cycle_1",
    )
    assert first.processed_at.utcoffset() is not None
    assert ledger.get(digest) == first
    assert _rows(store_url) == [(digest, "/in/current/week_07.csv", "processed")]


def test_list_filters_by_status_and_keeps_the_reason(store_url):
    ledger = Ledger(connect(store_url))
    ledger.record(_sha("a"), "a.csv", "processed")
    ledger.record(_sha("b"), "b.xlsx", "quarantined", reason="DataError: column 'Quantity' missing in b.xlsx")
    ledger.record(_sha("c"), "c.csv", "processed")
    assert [r.path for r in ledger.list()] == ["a.csv", "b.xlsx", "c.csv"]
    assert [r.path for r in ledger.list("processed")] == ["a.csv", "c.csv"]
    (bad,) = ledger.list("quarantined")
    assert bad.reason == "DataError: column 'Quantity' missing in b.xlsx"


def test_an_unknown_status_is_refused_in_one_line(tmp_path):
    ledger = Ledger(connect(f"sqlite:///{tmp_path / 'store.db'}"))
    with pytest.raises(RegistryError, match=r"ledger status 'done' for x.csv is not one of") as info:
        ledger.record(_sha("x"), "x.csv", "done")  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert ledger.list() == []


def _record_same_content(index: int, url: str, digest: str) -> tuple[str, str]:
    engine = connect(url)
    try:
        entry = Ledger(engine).record(digest, f"/drop/{index}/file.csv", "processed", run_id=f"run_{index}")
        return entry.path, entry.run_id or ""
    finally:
        engine.dispose()


def test_four_processes_recording_the_same_content_at_once_leave_one_row(store_url):
    connect(store_url).dispose()  # schema first: this test is about the ledger, not concurrent migrations
    digest = _sha("the same bytes dropped four times")
    results = run_at_once(_record_same_content, 4, store_url, digest)
    assert [status for status, _ in results] == ["ok"] * 4, results
    returned = {value for _, value in results}
    assert len(returned) == 1  # every process reads the one stored entry: the first writer's
    ((path, run_id),) = returned
    assert path == f"/drop/{run_id.removeprefix('run_')}/file.csv"
    assert _rows(store_url) == [(digest, path, "processed")]
