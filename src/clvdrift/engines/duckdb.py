"""The out-of-core engine: the cleaning rules and the per-customer aggregates in DuckDB SQL.

The history's part files are scanned where they lie (a loaded frame is scanned in place). Every row
goes once into table ``base`` with the rule that removes it; the clean lines are the view ``lines`` over
it, summarized in tables ``groups`` (an invoice's lines at one second) and ``pairs`` (a customer's first
purchase of a product), which the aggregates read. The tables live in memory and spill to a temporary
folder past DuckDB's memory limit, so a history larger than memory is slower rather than failing.
Money is kept in integer thousandths and time in integer seconds, as in
:class:`clvdrift.features.TransactionLines`, so the results equal the pandas engine's:

- a row's position (``_row``) is its place in the history's read order (part by part), so ties in
  time are broken as pandas breaks them (the later row is the latest line);
- UnitPrice × 1000 is rounded half to even (``round_even``, as ``numpy.round``), Quantity truncated;
- seconds are floored from nanoseconds (as numpy's ``datetime64[s]``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clvdrift.data import schema
from clvdrift.data.clean import (
    NON_PRODUCT_CODES,
    NON_PRODUCT_PREFIXES,
    RULES,
    CleaningReport,
    date_bounds,
    describe_outliers,
    nothing_left,
)
from clvdrift.data.load import validate_amounts
from clvdrift.engines import OpenLines, Source
from clvdrift.errors import ConfigError, DataError, StorageError
from clvdrift.features import AggregateQuery

if TYPE_CHECKING:
    import duckdb

_MAX_EXAMPLES = 3
_NS = 1_000_000_000
_COLUMNS = {
    "inv": schema.INVOICE,
    "stock": schema.STOCK_CODE,
    "descr": schema.DESCRIPTION,
    "cust": schema.CUSTOMER,
    "country": schema.COUNTRY,
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _raw_sql(source: Source, con: duckdb.DuckDBPyConnection) -> str:
    """A SELECT of the raw rows: ``_row`` (read-order position), the text columns as VARCHAR, ``q`` and
    ``p`` (DOUBLE), ``ns`` (the date in int64 ns, NULL when missing)."""
    text = ", ".join(f'"{col}"::VARCHAR AS {alias}' for alias, col in _COLUMNS.items())
    numbers = f'"{schema.QUANTITY}"::DOUBLE AS q, "{schema.UNIT_PRICE}"::DOUBLE AS p'
    if source.frame is not None:
        frame = source.frame
        ns = frame[schema.INVOICE_DATE].to_numpy(dtype="datetime64[ns]").view(np.int64)
        columns = {c: frame[c] for c in schema.CANONICAL_COLUMNS if c != schema.INVOICE_DATE}
        missing = ns == np.iinfo(np.int64).min  # NaT; nullable Int64 keeps every ns exact
        view = pd.DataFrame(columns).assign(
            _row=np.arange(len(frame), dtype=np.int64),
            _ns=pd.arrays.IntegerArray(np.where(missing, 0, ns), missing),
        )
        con.register("raw_frame", view)
        return f"SELECT _row, {text}, {numbers}, _ns AS ns FROM raw_frame"
    selects = []
    offset = 0
    import pyarrow.parquet as pq

    where = ""
    if source.as_of is not None:
        from clvdrift.data.history import as_of_end

        end = as_of_end(source.as_of)
        where = f' WHERE epoch_ns("{schema.INVOICE_DATE}") < {end.value}'
    for path in source.parts:
        selects.append(
            f"SELECT {offset} + file_row_number AS _row, {text}, {numbers}, "
            f'epoch_ns("{schema.INVOICE_DATE}") AS ns '
            f"FROM read_parquet({_quote(str(path))}, file_row_number = true){where}"
        )
        offset += pq.ParquetFile(path).metadata.num_rows
    if not selects:
        return (
            f"SELECT 0::BIGINT AS _row, {', '.join(f'NULL::VARCHAR AS {a}' for a in _COLUMNS)}, "
            "NULL::DOUBLE AS q, NULL::DOUBLE AS p, NULL::BIGINT AS ns WHERE false"
        )
    return " UNION ALL ".join(selects)


_SECONDS = f"((ns - (((ns % {_NS}) + {_NS}) % {_NS})) // {_NS})"
_NON_PRODUCT = (
    "(stock IN ("
    + ", ".join(_quote(c) for c in sorted(NON_PRODUCT_CODES))
    + ") OR "
    + " OR ".join(f"starts_with(stock, {_quote(p)})" for p in NON_PRODUCT_PREFIXES)
    + ")"
)


_ROW_COLUMNS = "inv, stock, descr, q, ns, p, cust, country"
_KEPT_COLUMNS = "inv, stock, q, ns, p, cust, country"  # every column but Description


def _clean_steps(low: int, high: int) -> list[str]:
    """The rules of :mod:`clvdrift.data.clean` as narrow steps into table ``lines``.

    ``base.r`` is the 1-based index in :data:`RULES` of the first rule that removes a row, leaving out
    the two that look at other rows (0: none of them); ``paired`` holds the order lines a later
    cancellation nets out (rule 4, ahead of every rule that can also hit an order line: only keys that
    have a cancellation are ranked); ``dups`` the exact duplicates of an earlier kept row: equal on
    every column, Description compared by its 64-bit hash (two rows equal on the seven other columns
    whose descriptions differ but hash alike would be taken for duplicates: about one chance in 10¹⁹
    per such pair)."""
    return [
        f"""CREATE TEMP TABLE base AS
        SELECT _row, {_KEPT_COLUMNS}, hash(descr) AS hd, hash({_KEPT_COLUMNS}, descr) AS h,
            coalesce(starts_with(inv, 'C'), false) AS is_cancel,
            CASE WHEN ns IS NOT NULL AND (ns < {low} OR ns > {high}) THEN 1
                 WHEN cust IS NULL THEN 2
                 WHEN inv IS NULL OR stock IS NULL OR q IS NULL OR isnan(q) OR ns IS NULL
                      OR p IS NULL OR isnan(p) THEN 3
                 WHEN starts_with(inv, 'C') THEN 5
                 WHEN NOT (q > 0) THEN 6
                 WHEN NOT (p > 0) THEN 7
                 WHEN {_NON_PRODUCT} THEN 8
                 ELSE 0 END AS r
        FROM raw""",
        """CREATE TEMP TABLE cancels AS
        SELECT cust, stock, abs(q) AS aq, ns,
            row_number() OVER (PARTITION BY cust, stock, abs(q) ORDER BY ns, _row) AS k
        FROM base WHERE r IN (0, 5, 6, 7, 8) AND is_cancel AND q < 0""",
        """CREATE TEMP TABLE paired AS
        WITH orders AS (
            SELECT _row, r, cust, stock, abs(q) AS aq, ns,
                row_number() OVER (PARTITION BY cust, stock, abs(q) ORDER BY ns, _row) AS k
            FROM base b WHERE r IN (0, 5, 6, 7, 8) AND NOT is_cancel AND q > 0
                AND (cust, stock, abs(q)) IN (SELECT (cust, stock, aq) FROM cancels))
        SELECT o._row, o.r FROM orders o JOIN cancels c
            ON o.cust = c.cust AND o.stock = c.stock AND o.aq = c.aq AND o.k = c.k
        WHERE o.ns <= c.ns""",
        "UPDATE base SET r = 4 WHERE _row IN (SELECT _row FROM paired)",
        f"""CREATE TEMP TABLE dups AS
        WITH candidates AS (
            SELECT * FROM base WHERE r = 0
                AND h IN (SELECT h FROM base WHERE r = 0 GROUP BY h HAVING count(*) > 1))
        SELECT _row FROM (
            SELECT _row, row_number() OVER (PARTITION BY {_KEPT_COLUMNS}, hd ORDER BY _row) AS k
            FROM candidates)
        WHERE k > 1""",
        "UPDATE base SET r = 9 WHERE _row IN (SELECT _row FROM dups)",
        # a view: the aggregates read the two tables below; only a window's product count reads lines
        f"""CREATE TEMP VIEW lines AS
        SELECT _row, cust, inv, stock, coalesce(country, 'Unspecified') AS country, {_SECONDS} AS s,
               trunc(q)::BIGINT AS qty, round_even(p * 1000, 0)::BIGINT AS pm
        FROM base WHERE r = 0""",
        # an invoice's lines at one second in one row: what every aggregate but NumProducts reads
        """CREATE TEMP TABLE groups AS
        SELECT cust, inv, s, count(*) AS n, sum(qty) AS qty, sum(qty * pm) AS spend, sum(pm) AS pm,
               max(_row) AS last_row, arg_max(country, _row) AS country
        FROM lines GROUP BY cust, inv, s""",
        "CREATE TEMP TABLE pairs AS SELECT cust, stock, min(s) AS first_s FROM lines GROUP BY cust, stock",
    ]


class DuckLines:
    """Clean lines in a DuckDB table ``lines``: the :class:`clvdrift.features.LineTable` of this engine."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, source: str, folder: str, memory_limit: str | None
    ) -> None:
        self.con = con
        self.source = source
        self._spill = (folder, memory_limit)
        first, last, n = con.execute("SELECT min(s), max(s), coalesce(sum(n), 0) FROM groups").fetchone()  # type: ignore[misc]
        self._first, self._last, self._n = first, last, int(n)

    @property
    def empty(self) -> bool:
        return self._n == 0

    def first_day(self) -> pd.Timestamp:
        return pd.Timestamp(int(self._first), unit="s").normalize()

    def last_day(self) -> pd.Timestamp:
        return pd.Timestamp(int(self._last), unit="s").normalize()

    def aggregate(self, query: AggregateQuery) -> pd.DataFrame:
        with _resource_errors(*self._spill):
            return self._aggregate(query)

    def _aggregate(self, query: AggregateQuery) -> pd.DataFrame:
        snap = _sec(query.snapshot)
        floor = None if query.floor is None else _sec(query.floor)
        base = f"s < {snap}" + ("" if floor is None else f" AND s >= {floor}")
        windows = [*query.spend.values(), *query.orders.values()]
        starts = [floor, *(None if start is None else _sec(start) for start, _ in windows)]
        scan = f"s < {max([snap, *(_sec(end) for _, end in windows)])}"
        if all(start is not None for start in starts):
            scan += f" AND s >= {min(v for v in starts if v is not None)}"
        sums = {
            "quantity": f"sum(qty) FILTER (WHERE {base})",
            "spend": f"sum(spend) FILTER (WHERE {base})",
            "price": f"sum(pm) FILTER (WHERE {base})",
            **{
                f"w{i}": f"sum(spend) FILTER (WHERE {_window(start, end)})"
                for i, (start, end) in enumerate(query.spend.values())
            },
        }
        parts = [
            f"sum(n) FILTER (WHERE {base}) AS lines",
            *(f"coalesce({_big(expr)}, 0) AS {name}" for name, expr in sums.items()),
            f"({' OR '.join(_too_big(expr) for expr in sums.values())}) AS overflow",
            f"min(s) FILTER (WHERE {base}) AS first_s",
            f"max(s) FILTER (WHERE {base}) AS last_s",
            f"count(DISTINCT inv) FILTER (WHERE {base}) AS orders",
            f"arg_max(country, {{'s': s, 'r': last_row}}) FILTER (WHERE {base}) AS country",
            *(
                f"count(DISTINCT inv) FILTER (WHERE {_window(start, end)}) AS o{i}"
                for i, (start, end) in enumerate(query.orders.values())
            ),
        ]
        if floor is None:  # distinct stock codes before the snapshot: the pairs first bought before it
            products = f"SELECT cust, count(*) AS products FROM pairs WHERE first_s < {snap} GROUP BY cust"
        else:
            products = f"SELECT cust, count(DISTINCT stock) AS products FROM lines WHERE {base} GROUP BY cust"
        frame = self.con.execute(
            f"""WITH g AS (
                SELECT cust, {", ".join(parts)} FROM groups WHERE {scan}
                GROUP BY cust HAVING count(*) FILTER (WHERE {base}) > 0),
            pr AS ({products})
            SELECT g.*, coalesce(pr.products, 0) AS products FROM g LEFT JOIN pr ON g.cust = pr.cust
            ORDER BY g.cust"""
        ).df()
        _refuse_overflow(frame)
        ints = ("lines", "quantity", "spend", "price", "first_s", "last_s", "orders", "products")
        out = pd.DataFrame(
            {
                **{c: frame[c].to_numpy(dtype=np.int64) for c in ints},
                schema.COUNTRY: frame["country"].to_numpy(dtype=object),
                **{f"spend:{n}": frame[f"w{i}"].to_numpy(dtype=np.int64) for i, n in enumerate(query.spend)},
                **{
                    f"orders:{n}": frame[f"o{i}"].to_numpy(dtype=np.int64) for i, n in enumerate(query.orders)
                },
            },
            index=pd.Index(frame["cust"].to_numpy(dtype=object), name=schema.CUSTOMER),
        )
        # DuckDB orders text by its UTF-8 bytes, which is Python's code point order; checked, not assumed
        return out if out.index.is_monotonic_increasing else out.sort_index()

    def revenue(self, start: pd.Timestamp | None, end: pd.Timestamp, ids: pd.Index) -> np.ndarray:
        with _resource_errors(*self._spill):
            return self._revenue(start, end, ids)

    def _revenue(self, start: pd.Timestamp | None, end: pd.Timestamp, ids: pd.Index) -> np.ndarray:
        expr = "sum(spend)"
        frame = self.con.execute(
            f"SELECT cust, coalesce({_big(expr)}, 0) AS spend, {_too_big(expr)} AS overflow FROM groups "
            f"WHERE {_window(start, end)} GROUP BY cust"
        ).df()
        _refuse_overflow(frame)
        spend = pd.Series(frame["spend"].to_numpy(dtype=np.int64), index=frame["cust"].to_numpy(dtype=object))
        return spend.reindex(ids, fill_value=0).to_numpy(dtype=np.int64)


def _big(expr: str) -> str:
    """An integer sum as BIGINT (NULL past :data:`schema.MAX_EXACT_SUM`, which :func:`_too_big` flags)."""
    return f"(CASE WHEN {_too_big(expr)} THEN NULL ELSE ({expr})::BIGINT END)"


def _too_big(expr: str) -> str:
    return f"coalesce(abs(({expr})::HUGEINT) > {schema.MAX_EXACT_SUM}, false)"


def _refuse_overflow(frame: pd.DataFrame) -> None:
    """The pandas engine's refusal of sums beyond the exact integer range."""
    if len(frame) and frame["overflow"].any():
        customer = frame.loc[frame["overflow"].to_numpy(dtype=bool), "cust"].iloc[0]
        raise DataError(
            f"customer {customer}: Quantity × UnitPrice (or Quantity) summed over its lines is beyond the "
            f"exact integer range (±{float(schema.MAX_EXACT_SUM):.3g}); values this large are errors"
        )


def _window(start: pd.Timestamp | None, end: pd.Timestamp) -> str:
    lo = "" if start is None else f"s >= {_sec(start)} AND "
    return f"{lo}s < {_sec(end)}"


def _sec(day: pd.Timestamp) -> int:
    return int(np.datetime64(pd.Timestamp(day).to_datetime64(), "s").astype(np.int64))


_FOLDER_PREFIX = "clvdrift-duckdb-"
_FOLDER_NAME = re.compile(re.escape(_FOLDER_PREFIX) + r"(\d+)-([0-9a-f]{6})-")


def remove_stale_folders(root: Path | None = None) -> list[Path]:
    """Remove the spill folders (in ``root``, default the temporary directory) of DuckDB engines whose
    process was killed on this host (its PID is gone): a closed engine removes its own folder, a
    SIGKILLed one cannot. Folders of live processes and of other hosts are left alone. Returns what was
    removed."""
    from clvdrift.io import _host_tag, _pid_alive

    root = Path(tempfile.gettempdir()) if root is None else root
    removed = []
    for path in root.glob(_FOLDER_PREFIX + "*"):
        match = _FOLDER_NAME.match(path.name)
        if match is None or match.group(2) != _host_tag() or _pid_alive(int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


_LOW_DISK = 64 * 1024 * 1024


@contextmanager
def _resource_errors(folder: str, memory_limit: str | None) -> Iterator[None]:
    """DuckDB running out of memory, or of disk where it spills, as one line: a :class:`StorageError`
    (exit 3) when the spill folder's disk has less than 64 MB free, else a :class:`ConfigError` naming
    the memory limit (exit 2). DuckDB's own message is kept."""
    import duckdb

    try:
        yield
    except (duckdb.OutOfMemoryException, duckdb.IOException) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = 0
        if free < _LOW_DISK:
            raise StorageError(
                f"disk full while the DuckDB engine spilled to {folder} ({free // 1024:,} KB free): free "
                f"some space in {os.path.dirname(folder)} or point TMPDIR elsewhere, then run the command "
                f"again ({detail})"
            ) from None
        if isinstance(exc, duckdb.IOException):
            raise
        limit = memory_limit or "DuckDB's default, 80% of the memory"
        raise ConfigError(
            f"the DuckDB engine ran out of memory within its limit ({limit}): raise "
            f"CLVDRIFT_DUCKDB_MEMORY_LIMIT, then run the command again ({detail})"
        ) from None


def open_lines(
    source: Source, *, today: pd.Timestamp | None, reason: str, rows: int, memory_limit: str | None
) -> OpenLines:
    import duckdb

    from clvdrift.io import _host_tag

    remove_stale_folders()
    # named by process and host, so that the next engine can tell a killed process's folder from a live one
    folder = tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-{_host_tag()}-")
    con = duckdb.connect(":memory:")  # past memory_limit, tables spill to the folder

    def close() -> None:
        con.close()
        shutil.rmtree(folder, ignore_errors=True)

    try:
        con.execute(f"SET temp_directory = {_quote(os.path.join(folder, 'spill'))}")
        con.execute("SET preserve_insertion_order = false")
        if memory_limit:
            try:
                con.execute(f"SET memory_limit = {_quote(memory_limit)}")
            except duckdb.Error as exc:
                detail = str(exc).splitlines()[0]
                raise ConfigError(f"DuckDB memory limit {memory_limit!r}: {detail}") from None
        con.execute(f"CREATE TEMP VIEW raw AS {_raw_sql(source, con)}")
        attrs = dict(source.frame.attrs) if source.frame is not None else {}
        with _resource_errors(folder, memory_limit):
            report = _clean(con, source, attrs, today)
            lines = DuckLines(con, source.name, folder, memory_limit)
        return OpenLines(lines, report, "duckdb", reason, rows, close)
    except BaseException:
        close()
        raise


def _clean(
    con: duckdb.DuckDBPyConnection, source: Source, attrs: dict[str, Any], today: pd.Timestamp | None
) -> CleaningReport:
    """Validate the amounts, find the date bounds, apply the rules into table ``lines``; the report."""

    def name(raw_row: int) -> str:
        position = raw_row
        if source.as_of is not None:  # rows are numbered after the as_of filter, as history.read does
            position = int(con.execute(f"SELECT count(*) FROM raw WHERE _row < {raw_row}").fetchone()[0])  # type: ignore[index]
        return schema.row_name(attrs, position)

    bad = con.execute(
        f"SELECT _row, q, p FROM raw WHERE abs(q) > {schema.MAX_ABS_QUANTITY} OR abs(p) > "
        f"{schema.MAX_ABS_UNIT_PRICE} OR abs(q * p) > {schema.MAX_ABS_LINE_VALUE} ORDER BY _row"
    ).fetchnumpy()
    if len(bad["_row"]):
        rows = np.asarray(bad["_row"])
        validate_amounts(
            np.asarray(bad["q"], dtype=np.float64),
            np.asarray(bad["p"], dtype=np.float64),
            where=source.name,
            row=lambda i: name(int(rows[i])),
        )
    dates = con.execute(
        "SELECT ns, count(*) AS n FROM raw WHERE ns IS NOT NULL GROUP BY ns ORDER BY ns"
    ).fetchnumpy()
    values = np.asarray(dates["ns"], dtype=np.int64)
    counts = np.asarray(dates["n"], dtype=np.int64)
    low, high = date_bounds(values, counts, today)
    examples = {}
    for side, test in (("after", f"ns > {high}"), ("before", f"ns < {low}")):
        found = con.execute(
            f"SELECT _row, ns FROM raw WHERE ns IS NOT NULL AND {test} ORDER BY _row LIMIT {_MAX_EXAMPLES}"
        ).fetchall()
        examples[side] = [(name(int(r)), int(v)) for r, v in found]
    date_report, findings = describe_outliers(values, counts, (low, high), examples)
    for step in _clean_steps(low, high):
        con.execute(step)
    by_rule = dict(con.execute("SELECT r, count(*) FROM base GROUP BY r").fetchall())
    removed = {rule: int(by_rule.get(i + 1, 0)) for i, rule in enumerate(RULES)}
    total = int(sum(by_rule.values()))
    for table in ("cancels", "paired", "dups"):
        con.execute(f"DROP TABLE {table}")
    kept, customers = con.execute("SELECT coalesce(sum(n), 0), count(DISTINCT cust) FROM groups").fetchone()  # type: ignore[misc]
    if kept == 0:
        raise nothing_left(source.name, total, removed, findings)
    return CleaningReport(
        rows_in=total,
        rows_out=int(kept),
        customers_out=int(customers),
        removed=removed,
        date_outliers=date_report,
        findings=findings,
    )
