"""The transaction history on SQLite and a fresh PostgreSQL database: modes, dedup, as_of, crashes, races."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from clvdrift.data import TransactionHistory, load_transactions, schema
from clvdrift.data.history import ORPHAN_AGE_SECONDS
from clvdrift.errors import ConfigError, DataError, HistoryIntegrityError
from clvdrift.io import host_tag
from clvdrift.store import connect
from helpers import dead_pid  # type: ignore[import-not-found]
from store.processes import run_at_once  # type: ignore[import-not-found]

COLUMNS = list(schema.CANONICAL_COLUMNS)


@pytest.fixture
def history(store_url: str, tmp_path: Path) -> Iterator[TransactionHistory]:
    engine = connect(store_url)
    yield TransactionHistory(tmp_path / "history", engine)
    engine.dispose()


def frame(start: int, n: int, *, day0: str = "2031-03-05 23:30") -> pd.DataFrame:
    """``n`` transactions numbered from ``start``, one per 6 hours from ``day0``, in the loader's dtypes.

    Unlike the bundled file: dates in 2031, prices up to 10⁶, string customer ids, missing descriptions
    and customers, negative quantities.
    """
    i = np.arange(start, start + n)
    return pd.DataFrame(
        {
            schema.INVOICE: pd.Categorical([f"X{k // 3:07d}" for k in i]),
            schema.STOCK_CODE: pd.Categorical([f"SKU-{k % 17}" for k in i]),
            schema.DESCRIPTION: pd.array(
                [None if k % 5 == 0 else f"item {k}" for k in i], dtype=pd.ArrowDtype(pa.string())
            ),
            schema.QUANTITY: ((i % 7) - 2).astype(np.float64),
            schema.INVOICE_DATE: pd.Timestamp(day0) + pd.to_timedelta(i * 6, unit="h"),
            schema.UNIT_PRICE: (i * 1234.5) % 1_000_000.0,
            schema.CUSTOMER: pd.Categorical([None if k % 11 == 0 else f"cust-{k % 23}" for k in i]),
            schema.COUNTRY: pd.Categorical(["Atlantis" if k % 2 else "Lemuria" for k in i]),
        }
    )


def same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal rows in the same order; categoricals compared by value (their category sets may differ)."""

    def plain(f: pd.DataFrame) -> pd.DataFrame:
        return f[COLUMNS].astype({c: object for c in COLUMNS if isinstance(f[c].dtype, pd.CategoricalDtype)})

    pd.testing.assert_frame_equal(
        plain(actual).reset_index(drop=True), plain(expected).reset_index(drop=True)
    )


def kinds(f: pd.DataFrame) -> dict[str, object]:
    """Column dtypes, categoricals as just "category" (their categories are data)."""
    return {c: "category" if isinstance(t, pd.CategoricalDtype) else t for c, t in f.dtypes.items()}


def write_export(path: Path, rows: pd.DataFrame) -> Path:
    out = rows.copy()
    out[schema.INVOICE_DATE] = out[schema.INVOICE_DATE].dt.strftime("%Y-%m-%d %H:%M:%S")
    out.to_csv(path, index=False)
    return path


def test_empty_history_reads_as_an_empty_frame_in_the_canonical_dtypes(history):
    out = history.read()
    assert list(out.columns) == COLUMNS and len(out) == 0
    assert history.batches() == []


def test_snapshot_then_append_then_a_newer_snapshot_replaces_everything_before_it(history, tmp_path):
    snap = frame(0, 40)
    first = history.add(snap, source="data/current/a.csv", sha256="a" * 64, mode="snapshot")
    assert (first.rows_in, first.rows_added, first.mode) == (40, 40, "snapshot")
    # an append overlapping the snapshot's last 10 rows adds only the 15 new ones
    appended = history.add(frame(30, 25), source="api", sha256="b" * 64, mode="append")
    assert (appended.rows_in, appended.rows_added) == (25, 15)
    same(history.read(), frame(0, 55))
    # the newer snapshot is the whole history again; an append after it is added to it
    history.add(frame(100, 8), source="c.csv", sha256="c" * 64, mode="snapshot")
    history.add(frame(105, 6), source="d.csv", sha256="d" * 64, mode="append")
    same(history.read(), frame(100, 11))
    assert [b.sha256[0] for b in history.batches()] == ["a", "b", "c", "d"]
    assert history.batches()[0].first_date == snap[schema.INVOICE_DATE].min()
    assert history.batches()[0].last_date == snap[schema.INVOICE_DATE].max()
    # the loader's dtypes come back unchanged
    loaded = load_transactions(write_export(tmp_path / "e.csv", frame(0, 3)))
    assert kinds(history.read()) == kinds(loaded)


def test_two_overlapping_exports_give_the_same_history_as_one_export(history, tmp_path):
    """Through the loader, with a row duplicated inside the source in the overlap (kept twice, once)."""
    full = frame(0, 60)
    full = pd.concat([full.iloc[:35], full.iloc[[33]], full.iloc[35:]], ignore_index=True)  # row 33 twice
    dates = full[schema.INVOICE_DATE]
    cut_a, cut_b = pd.Timestamp("2031-03-12"), pd.Timestamp("2031-03-15")  # overlap of three days
    one = load_transactions(write_export(tmp_path / "one.csv", full))
    early = write_export(tmp_path / "early.csv", full[dates < cut_b])
    late = write_export(tmp_path / "late.csv", full[dates >= cut_a])
    assert cut_a <= dates[33] < cut_b  # the in-source duplicate lies in the overlap

    history.add(load_transactions(early), source=str(early), sha256="e", mode="append")
    added = history.add(load_transactions(late), source=str(late), sha256="l", mode="append")
    assert added.rows_added == int((dates >= cut_b).sum()) < added.rows_in
    same(history.read(), one)
    assert len(one) == 61


def test_duplicates_within_a_new_batch_are_kept_and_counted(history):
    history.add(frame(0, 10), source="a", sha256="a", mode="append")
    batch = pd.concat([frame(8, 4), frame(20, 1), frame(20, 1)], ignore_index=True)  # 2 old, 2 new, 1 twice
    added = history.add(batch, source="b", sha256="b", mode="append")
    assert (added.rows_in, added.rows_added) == (6, 4)
    same(history.read(), pd.concat([frame(0, 12), frame(20, 1), frame(20, 1)]))


def test_a_genuine_repeat_of_an_overlapping_row_is_kept_as_a_multiset(history):
    """Export 1 holds row X once, the overlapping export 2 holds it twice (a customer bought the same
    thing twice in the same minute): the history holds it twice, as export 2 says, not once (a row
    already in the history was dropped however often a batch repeated it; independent check)."""
    history.add(frame(0, 10), source="a", sha256="a", mode="append")
    batch = pd.concat([frame(5, 8), frame(7, 1)], ignore_index=True)  # rows 5-12, row 7 twice
    added = history.add(batch, source="b", sha256="b", mode="append")
    assert added is not None and added.rows_added == 4  # 10, 11, 12 and the second 7
    same(history.read(), pd.concat([frame(0, 13), frame(7, 1)]))
    assert history.add(batch, source="b-again", sha256="b2", mode="append") is None  # nothing beyond now


def test_a_batch_of_no_new_rows_is_not_recorded(history):
    history.add(frame(0, 12), source="a", sha256="a", mode="append")
    assert history.add(frame(3, 5), source="a-again", sha256="a2", mode="append") is None
    assert [b.rows_added for b in history.batches()] == [12]
    assert len(list(history.root.glob("part-*"))) == 1
    same(history.read(), frame(0, 12))


def test_a_snapshot_of_the_same_rows_is_not_recorded_another_is(history):
    """The same multiset of rows (a re-export with other line endings loads to equal rows) adds nothing;
    the same rows with one duplicated line more, or in another order, are judged as multisets."""
    snap = frame(0, 12)
    history.add(snap, source="a", sha256="a", mode="snapshot")
    shuffled = snap.iloc[::-1].reset_index(drop=True)
    assert history.add(shuffled, source="a-crlf", sha256="a2", mode="snapshot") is None
    doubled = pd.concat([snap, snap.iloc[[3]]], ignore_index=True)
    added = history.add(doubled, source="a-dup", sha256="a3", mode="snapshot")
    assert added is not None and added.rows_added == 13
    assert len(history.batches()) == 2


def test_rows_without_a_date_are_deduplicated_among_themselves(history):
    undated = frame(0, 6)
    undated.loc[[1, 4], schema.INVOICE_DATE] = pd.NaT
    history.add(undated, source="a", sha256="a", mode="append")
    assert history.add(undated.iloc[[1, 4, 5]], source="b", sha256="b", mode="append") is None
    same(history.read(), undated)
    assert len(history.read(as_of=pd.Timestamp("2040-01-01"))) == 4  # undated rows have no day


def test_as_of_keeps_the_whole_day_and_nothing_after_it(history):
    edge = frame(0, 3)
    edge[schema.INVOICE_DATE] = pd.to_datetime(
        ["2031-06-01 23:59:59.999", "2031-06-02 00:00", "2031-05-31"], format="ISO8601"
    )
    history.add(edge, source="a", sha256="a", mode="snapshot")
    assert len(history.read(as_of=pd.Timestamp("2031-06-01"))) == 2
    assert len(history.read(as_of=pd.Timestamp("2031-06-01 08:00"))) == 2  # the day counts, not the hour
    assert len(history.read(as_of=pd.Timestamp("2031-05-30"))) == 0
    assert len(history.read(as_of=pd.Timestamp("2031-06-02"))) == 3
    # a timezone-aware day is taken in UTC, as the loader stores dates
    assert len(history.read(as_of=pd.Timestamp("2031-06-02 01:00", tz="+03:00"))) == 2
    same(history.read(as_of=pd.Timestamp("2031-06-01")), edge.iloc[[0, 2]])


def test_orphan_parts_are_ignored_by_read_and_removed_by_add_once_their_writer_is_gone(history):
    history.add(frame(0, 5), source="a", sha256="a", mode="append")
    recorded = history.batches()[0].part_file
    parts = history.root
    dead = parts / f"part-20310101T000000000000Z-deadbeef.{dead_pid()}-{host_tag()}.parquet"
    live_young = parts / f"part-20310101T000000000000Z-0000beef.{os.getpid()}-{host_tag()}.parquet"
    live_old = parts / f"part-20310101T000000000000Z-1111beef.{os.getpid()}-{host_tag()}.parquet"
    other_host = parts / "part-20310101T000000000000Z-2222beef.1-zzzzzz.parquet"
    for orphan in (dead, live_young, live_old, other_host):
        orphan.write_bytes((parts / recorded).read_bytes())  # valid Parquet that would double the rows
    stale = time.time() - ORPHAN_AGE_SECONDS - 60
    os.utime(live_old, (stale, stale))
    same(history.read(), frame(0, 5))

    history.add(frame(5, 1), source="b", sha256="b", mode="append")
    assert not dead.exists() and not live_old.exists()
    assert live_young.exists() and other_host.exists()  # a live writer, or one this host cannot see
    assert (parts / recorded).exists()
    same(history.read(), frame(0, 6))


CRASH_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import pandas as pd
    from clvdrift.data import history as h
    from clvdrift.store import connect

    record = h.TransactionHistory._record

    def record_then_die(self, session, row):
        record(self, session, row)  # the row is sent to the store, not committed
        os.kill(os.getpid(), signal.SIGKILL)

    h.TransactionHistory._record = record_then_die
    url, root, parquet = sys.argv[1:]
    history = h.TransactionHistory(root, connect(url))
    history.add(pd.read_parquet(parquet), source="x", sha256="x", mode="append")
    """
)


def test_a_writer_killed_between_rename_and_commit_leaves_the_history_as_it_was(history, store_url, tmp_path):
    history.add(frame(0, 10), source="a", sha256="a", mode="append")
    before = history.read()
    batch = tmp_path / "batch.parquet"
    frame(5, 20).to_parquet(batch)
    child = subprocess.run(
        [sys.executable, "-c", CRASH_CHILD, store_url, str(history.root), str(batch)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    parts = sorted(p.name for p in history.root.glob("part-*.parquet"))
    assert len(parts) == 2  # the killed writer's part reached its final name
    assert [b.sha256 for b in history.batches()] == ["a"]
    pd.testing.assert_frame_equal(history.read(), before)

    added = history.add(frame(5, 20), source="retry", sha256="x", mode="append")
    assert added.rows_added == 15
    assert sorted(p.name for p in history.root.glob("part-*.parquet")) == sorted(
        b.part_file for b in history.batches()
    )
    same(history.read(), frame(0, 25))


def _append_own_and_shared(index: int, url: str, root: str) -> int:
    """Append 3,000 rows shared by every process plus 7 rows of this process's own."""
    engine = connect(url)
    batch = pd.concat([frame(0, 3000), frame(10_000 + 100 * index, 7)], ignore_index=True)
    added = TransactionHistory(Path(root), engine).add(
        batch, source=f"p{index}", sha256=str(index), mode="append"
    )
    engine.dispose()
    return added.rows_added


def test_concurrent_overlapping_appends_add_the_overlap_once(history, store_url):
    """Without the lock, several processes find the shared rows new (this test then fails most runs)."""
    history.batches()  # the store exists before the processes start
    results = run_at_once(_append_own_and_shared, 6, store_url, str(history.root))
    assert all(status == "ok" for status, _ in results), results
    assert sorted(value for _, value in results) == [7] * 5 + [3007]
    out = history.read()
    assert len(out) == 3000 + 6 * 7
    assert not out.duplicated().any()
    assert len({b.part_file for b in history.batches()}) == 6
    assert len(list(history.root.glob("part-*.parquet"))) == 6


def test_bad_input_raises_one_line_errors_naming_what_is_wrong(history):
    with pytest.raises(ConfigError, match=r"mode 'replace' is not one of \['snapshot', 'append'\]"):
        history.add(frame(0, 2), source="a", sha256="a", mode="replace")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"history batch from f\.csv: missing column\(s\) \['UnitPrice'\]"):
        history.add(frame(0, 2).drop(columns=schema.UNIT_PRICE), source="f.csv", sha256="a", mode="append")
    with pytest.raises(DataError, match=r"history batch source '/x+'\.\.\.: 1500 characters, at most 1024"):
        history.add(frame(0, 2), source="/" + "x" * 1499, sha256="a", mode="append")
    assert history.batches() == [] and not list(history.root.glob("part-*"))
    added = history.add(frame(0, 2), source="a", sha256="a", mode="append")
    (history.root / added.part_file).unlink()
    with pytest.raises(
        HistoryIntegrityError, match=rf"part {added.part_file} of batch {added.batch_id} .*missing"
    ):
        history.read()


def test_hand_made_frames_in_other_dtypes_hash_like_loaded_ones(history):
    """Object columns and integer quantities are stored in the loader's dtypes, so they deduplicate."""
    loaded = frame(0, 8)
    loaded[schema.CUSTOMER] = pd.Categorical(
        [f"{12000 + k % 3}" for k in range(8)]
    )  # as the loader reads ids
    hand = loaded.astype({c: object for c in (schema.INVOICE, schema.DESCRIPTION)})
    hand[schema.CUSTOMER] = pd.Categorical([12000 + k % 3 for k in range(8)])  # integer categories
    hand[schema.QUANTITY] = hand[schema.QUANTITY].astype(int)
    hand[schema.COUNTRY] = hand[schema.COUNTRY].astype("string").astype("category")  # string-dtype categories
    history.add(hand, source="hand", sha256="h", mode="append")
    assert history.add(loaded, source="load", sha256="l", mode="append") is None
    same(history.read(), loaded)
