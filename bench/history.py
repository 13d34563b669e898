"""Benchmark the transaction history at 10M rows: time of each add, of a full read and of an as_of read.

Builds synthetic transactions in the loader's dtypes (issue 7 point 1): 10 append batches of 1M rows on
consecutive date ranges, then one overlapping batch (the newest half of the last batch again, plus as
many new rows), into a temporary folder and SQLite store. Targets: an add of 1M rows ≤ ~5 s, a full
read of 10M rows ≤ ~15 s (2 cores). Prints a table and the peak RSS of this process; ``--json PATH``
also writes the numbers. It is a measurement, not a test: it exits 1 only when deduplication is wrong.

    python bench/history.py [--batches 10] [--rows 1000000] [--json bench/results/history.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from clvdrift.data import TransactionHistory, schema
from clvdrift.store import connect

ROWS_PER_DAY = 20_000
START = pd.Timestamp("2030-01-01")


def _categorical(codes: np.ndarray, prefix: str) -> pd.Categorical:
    uniques, inverse = np.unique(codes, return_inverse=True)
    return pd.Categorical.from_codes(inverse.astype(np.int32), categories=[f"{prefix}{u}" for u in uniques])


def synthetic(first: int, n: int) -> pd.DataFrame:
    """Rows ``first .. first+n`` of one long synthetic export: row k is the same in every call, no two alike.

    20 lines per invoice, 4,000 products, 50,000 customers, 38 countries, ``ROWS_PER_DAY`` lines a day.
    """
    k = np.arange(first, first + n, dtype=np.int64)
    products = pa.array([f"PRODUCT {p} {'X' * (p % 23)}" for p in range(4_000)])
    seconds = (k * 86_400) // ROWS_PER_DAY
    return pd.DataFrame(
        {
            schema.INVOICE: _categorical(k // 20, "I"),
            schema.STOCK_CODE: _categorical((k * 7919) % 4_000, "S"),
            schema.DESCRIPTION: pd.arrays.ArrowExtensionArray(products.take(pa.array((k * 7919) % 4_000))),
            schema.QUANTITY: ((k * 31) % 48 - 4).astype(np.float64),
            schema.INVOICE_DATE: START + pd.to_timedelta(seconds, unit="s"),
            schema.UNIT_PRICE: ((k * 104_729) % 100_000) / 100.0,
            schema.CUSTOMER: _categorical((k // 20 * 2_654_435_761) % 50_000, "C"),
            schema.COUNTRY: _categorical((k // 20) % 38, "Country "),
        }
    )


def run(batches: int, rows: int) -> dict:
    timings: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        history = TransactionHistory(Path(tmp) / "history", connect(f"sqlite:///{tmp}/store.db"))
        plan = [(i * rows, rows) for i in range(batches)] + [(batches * rows - rows // 2, rows)]
        for i, (first, n) in enumerate(plan):
            frame = synthetic(first, n)
            start = time.perf_counter()
            added = history.add(frame, source=f"batch-{i}", sha256=f"{i:064x}", mode="append")
            timings.append(
                {"batch": i, "rows_in": n, "rows_added": added.rows_added, "s": time.perf_counter() - start}
            )
        start = time.perf_counter()
        full = history.read()
        read_s = time.perf_counter() - start
        total = len(full)
        del full
        start = time.perf_counter()
        half = len(history.read(as_of=START + pd.Timedelta(days=batches * rows / ROWS_PER_DAY / 2)))
        as_of_s = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in (Path(tmp) / "history").glob("part-*.parquet")) / 1e6
    return {
        "adds": timings,
        "rows": total,
        "read_s": read_s,
        "as_of_rows": half,
        "as_of_read_s": as_of_s,
        "parts_mb": size_mb,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.batches, args.rows)
    for add in result["adds"]:
        print(
            f"add {add['batch']:>2}: {add['rows_in']:>9,} rows in, {add['rows_added']:>9,} added "
            f"{add['s']:6.2f} s"
        )
    print(f"read():       {result['rows']:>11,} rows  {result['read_s']:6.2f} s")
    print(f"read(as_of):  {result['as_of_rows']:>11,} rows  {result['as_of_read_s']:6.2f} s")
    print(f"parts on disk: {result['parts_mb']:.0f} MB; peak RSS {result['peak_rss_mb']:.0f} MB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    expected = (args.batches + 1) * args.rows - args.rows // 2
    if result["rows"] != expected:
        sys.exit(f"history holds {result['rows']:,} rows, expected {expected:,}")


if __name__ == "__main__":
    main()
