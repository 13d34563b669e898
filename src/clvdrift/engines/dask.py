"""The cluster engine: a ``dask.distributed`` cluster runs the pandas definition per customer.

The raw rows are read on the workers, piece by piece (a history part, or a slice of a loaded frame).
Only small summaries come back to this process: the rows whose amounts are out of bounds, how many rows
have each date (the ``date_outlier`` rule needs the whole input's dates) and the first outlier rows.
Then every piece splits its rows by a hash of the customer id into buckets, each bucket gathers its
customers' rows from every piece in input order, and cleans them with
:func:`clvdrift.data.clean.clean_rows` (every rule after the date rule looks at one customer's rows
only). Each bucket keeps its :class:`~clvdrift.features.TransactionLines` on its worker; an aggregate is
computed per bucket and the disjoint results are concatenated, so the numbers are the pandas engine's,
bit for bit. Raw rows never travel to this process.

``scheduler`` is the address of a running scheduler (``CLVDRIFT_DASK_SCHEDULER``); without one a
``LocalCluster`` of two worker processes on 127.0.0.1 is started and closed with the lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clvdrift.data import schema
from clvdrift.data.clean import (
    RULES,
    CleaningReport,
    clean_rows,
    date_bounds,
    describe_outliers,
    nothing_left,
)
from clvdrift.data.load import validate_amounts
from clvdrift.engines import OpenLines, Source
from clvdrift.errors import ConfigError
from clvdrift.features import AggregateQuery, TransactionLines

if TYPE_CHECKING:
    from distributed import Client, Future

_NAT = np.iinfo(np.int64).min
_MAX_EXAMPLES = 3
_CATEGORICAL = (schema.INVOICE, schema.STOCK_CODE, schema.CUSTOMER, schema.COUNTRY)
LOCAL_WORKERS = 2


def _read_part(path: str, as_of: pd.Timestamp | None) -> pd.DataFrame:
    from pathlib import Path

    from clvdrift.data.history import read_parts

    return read_parts([Path(path)], as_of=as_of)


def _length(frame: pd.DataFrame) -> int:
    return len(frame)


def _ns(frame: pd.DataFrame) -> np.ndarray:
    return frame[schema.INVOICE_DATE].to_numpy(dtype="datetime64[ns]").view(np.int64)


def _summary(frame: pd.DataFrame, offset: int) -> dict[str, Any]:
    """A piece's out-of-bounds amounts (positions, Quantity, UnitPrice) and its dates' counts."""
    qty = frame[schema.QUANTITY].to_numpy(dtype=np.float64)
    price = frame[schema.UNIT_PRICE].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = (
            (np.abs(qty) > schema.MAX_ABS_QUANTITY)
            | (np.abs(price) > schema.MAX_ABS_UNIT_PRICE)
            | (np.abs(qty * price) > schema.MAX_ABS_LINE_VALUE)
        )
    ns = _ns(frame)
    values, counts = np.unique(ns[ns != _NAT], return_counts=True)
    idx = np.flatnonzero(bad)
    return {"bad": (idx + offset, qty[idx], price[idx]), "values": values, "counts": counts}


def _split(frame: pd.DataFrame, offset: int, bounds: tuple[int, int], buckets: int) -> dict[str, Any]:
    """A piece's rows split into customer buckets (with their date-rule mask), the rule counts of its
    rows without a customer, and its first outlier rows on each side."""
    ns = _ns(frame)
    dated = ns != _NAT
    after, before = dated & (ns > bounds[1]), dated & (ns < bounds[0])
    outlier = after | before
    no_customer = frame[schema.CUSTOMER].isna().to_numpy()
    examples = {
        side: [(int(i) + offset, int(ns[i])) for i in np.flatnonzero(mask)[:_MAX_EXAMPLES]]
        for side, mask in (("after", after), ("before", before))
    }
    keep = ~no_customer
    rows = frame.loc[keep].assign(_outlier=outlier[keep])
    ids = rows[schema.CUSTOMER].astype(str).to_numpy(dtype=object)
    bucket = pd.util.hash_array(ids) % np.uint64(buckets) if len(ids) else np.zeros(0, dtype=np.uint64)
    return {
        "parts": [rows.loc[bucket == b] for b in range(buckets)],
        "date_outlier": int((no_customer & outlier).sum()),
        "missing_customer": int((no_customer & ~outlier).sum()),
        "examples": examples,
    }


def _meta(split: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in split.items() if k != "parts"}


def _bucket_rows(split: dict[str, Any], bucket: int) -> pd.DataFrame:
    return split["parts"][bucket]


def _clean_bucket(*pieces: pd.DataFrame) -> tuple[TransactionLines | None, dict[str, int], int]:
    """One bucket's rows (pieces in input order) cleaned: its lines, rule counts and customers."""
    frame = pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame()
    if frame.empty:
        return None, {}, 0
    for name in _CATEGORICAL:  # pieces' categories differ; the rules need one categorical per column
        frame[name] = frame[name].astype(object).astype("category")
    outliers = frame.pop("_outlier").to_numpy(dtype=bool)
    clean, counts = clean_rows(frame, outliers)
    if clean.empty:
        return None, counts, 0
    return TransactionLines.from_frame(clean), counts, int(clean[schema.CUSTOMER].nunique())


def _lines_of(result: tuple[TransactionLines | None, dict[str, int], int]) -> TransactionLines | None:
    return result[0]


def _counts_of(result: tuple[TransactionLines | None, dict[str, int], int]) -> tuple[dict[str, int], int]:
    return result[1], result[2]


def _bounds_of(lines: TransactionLines | None) -> tuple[int, int] | None:
    return None if lines is None or lines.empty else (int(lines.seconds[0]), int(lines.seconds[-1]))


def _aggregate(lines: TransactionLines | None, query: AggregateQuery) -> pd.DataFrame | None:
    return None if lines is None else lines.aggregate(query)


def _revenue(
    lines: TransactionLines | None, start: pd.Timestamp | None, end: pd.Timestamp, ids: pd.Index
) -> np.ndarray:
    return np.zeros(len(ids), dtype=np.int64) if lines is None else lines.revenue(start, end, ids)


class DaskLines:
    """Clean lines as one :class:`TransactionLines` per customer bucket, held on the cluster's workers."""

    def __init__(self, client: Client, buckets: list[Future], source: str, first_s: int, last_s: int) -> None:
        self.client = client
        self.buckets = buckets
        self.source = source
        self._first, self._last = first_s, last_s

    @property
    def empty(self) -> bool:
        return not self.buckets

    def first_day(self) -> pd.Timestamp:
        return pd.Timestamp(self._first, unit="s").normalize()

    def last_day(self) -> pd.Timestamp:
        return pd.Timestamp(self._last, unit="s").normalize()

    def aggregate(self, query: AggregateQuery) -> pd.DataFrame:
        parts = self.client.gather(
            [self.client.submit(_aggregate, b, query, pure=False) for b in self.buckets]
        )
        frames = [p for p in parts if p is not None]
        return pd.concat(frames).sort_index()

    def revenue(self, start: pd.Timestamp | None, end: pd.Timestamp, ids: pd.Index) -> np.ndarray:
        futures = [self.client.submit(_revenue, b, start, end, ids, pure=False) for b in self.buckets]
        total = np.zeros(len(ids), dtype=np.int64)
        for part in self.client.gather(futures):
            total += part  # each customer is in one bucket; the others give 0
        return total


def _connect(scheduler: str | None) -> tuple[Client, Callable[[], None]]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            "engine dask needs dask.distributed: pip install 'clvdrift[dask]' (or engine pandas, duckdb)"
        ) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler {scheduler} ({exc})") from None
        except ValueError as exc:  # e.g. no port: not an address at all
            raise ConfigError(
                f"CLVDRIFT_DASK_SCHEDULER {scheduler!r} is not a scheduler address, e.g. "
                f"tcp://scheduler:8786 ({exc})"
            ) from None
        return client, client.close
    cluster = LocalCluster(
        n_workers=LOCAL_WORKERS,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.CRITICAL,  # a failed task is raised here in one line, not with its traceback
    )
    client = Client(cluster)

    def close() -> None:
        client.close()
        cluster.close()

    return client, close


def open_lines(
    source: Source, *, today: pd.Timestamp | None, reason: str, rows: int, scheduler: str | None
) -> OpenLines:
    client, close = _connect(scheduler)
    try:
        return _open(client, close, source, today, reason, rows)
    except BaseException:
        close()
        raise


def _open(
    client: Client,
    close: Callable[[], None],
    source: Source,
    today: pd.Timestamp | None,
    reason: str,
    rows: int,
) -> OpenLines:
    if source.frame is not None:
        attrs = dict(source.frame.attrs)
        step = max(1, -(-len(source.frame) // (LOCAL_WORKERS * 2)))
        chunks = [source.frame.iloc[i : i + step] for i in range(0, max(len(source.frame), 1), step)]
        pieces = client.scatter(chunks)
    else:
        attrs = {}
        pieces = [client.submit(_read_part, str(p), source.as_of, pure=False) for p in source.parts]
    lengths = client.gather([client.submit(_length, p) for p in pieces])
    offsets = np.r_[0, np.cumsum(lengths)[:-1]].astype(int).tolist() if lengths else []
    total = int(sum(lengths))
    summaries = client.gather([client.submit(_summary, p, o) for p, o in zip(pieces, offsets, strict=True)])

    bad_rows = np.concatenate([s["bad"][0] for s in summaries]) if summaries else np.zeros(0, int)
    if len(bad_rows):
        order = np.argsort(bad_rows, kind="stable")
        positions = bad_rows[order]
        validate_amounts(
            np.concatenate([s["bad"][1] for s in summaries])[order],
            np.concatenate([s["bad"][2] for s in summaries])[order],
            where=source.name,
            row=lambda i: schema.row_name(attrs, int(positions[i])),
        )
    all_values = np.concatenate([s["values"] for s in summaries]) if summaries else np.zeros(0, np.int64)
    all_counts = np.concatenate([s["counts"] for s in summaries]) if summaries else np.zeros(0, np.int64)
    values, inverse = np.unique(all_values, return_inverse=True)
    counts = np.bincount(inverse, weights=all_counts, minlength=len(values)).astype(np.int64)
    bounds = date_bounds(values, counts, today)

    n_buckets = max(2, 2 * len(client.scheduler_info().get("workers", {})))
    splits = [client.submit(_split, p, o, bounds, n_buckets) for p, o in zip(pieces, offsets, strict=True)]
    buckets = [
        client.submit(_clean_bucket, *[client.submit(_bucket_rows, s, b) for s in splits])
        for b in range(n_buckets)
    ]
    meta = client.gather([client.submit(_meta, s) for s in splits])
    examples = {
        side: [
            (schema.row_name(attrs, pos), ns)
            for pos, ns in sorted(e for m in meta for e in m["examples"][side])[:_MAX_EXAMPLES]
        ]
        for side in ("after", "before")
    }
    date_report, findings = describe_outliers(values, counts, bounds, examples)
    removed = {rule: 0 for rule in RULES}
    removed["date_outlier"] = sum(m["date_outlier"] for m in meta)
    removed["missing_customer"] = sum(m["missing_customer"] for m in meta)
    customers = 0
    for bucket_counts, bucket_customers in client.gather([client.submit(_counts_of, b) for b in buckets]):
        for rule, n in bucket_counts.items():
            removed[rule] += n
        customers += bucket_customers
    del splits, pieces  # the raw rows are no longer needed on the workers
    lines = [client.submit(_lines_of, b) for b in buckets]
    found = client.gather([client.submit(_bounds_of, b) for b in lines])
    kept = [b for b, span in zip(lines, found, strict=True) if span is not None]
    spans = [span for span in found if span is not None]
    rows_out = total - sum(removed.values())
    if not spans:
        raise nothing_left(source.name, total, removed, findings)
    report = CleaningReport(
        rows_in=total,
        rows_out=rows_out,
        customers_out=customers,
        removed=removed,
        date_outliers=date_report,
        findings=findings,
    )
    first, last = min(s[0] for s in spans), max(s[1] for s in spans)
    return OpenLines(DaskLines(client, kept, source.name, first, last), report, "dask", reason, rows, close)
