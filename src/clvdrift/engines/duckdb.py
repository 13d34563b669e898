"""The out-of-core engine: the cleaning rules in DuckDB SQL, the aggregates over its invoice groups.

The history's part files are scanned where they lie (a loaded frame is scanned in place). Every row
goes once into table ``base`` with the rule that removes it (customers, stock codes and countries as
enum codes, numbers in the narrowest exact type); the clean lines are the view ``clean`` over it,
summarized in tables ``groups`` (an invoice's lines at one second) and ``lines`` (customer, stock code
and second of each clean line), after which ``base`` is dropped; ``pairs`` (a customer's first purchase of
a product) is made from ``lines``. The groups are
read once into grouped :class:`clvdrift.features.TransactionLines`, whose numpy code computes the
aggregates; distinct products are counted in SQL. The tables live in memory and spill to a temporary
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
from dataclasses import dataclass
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
from clvdrift.data.history import check_parts, part_rows
from clvdrift.data.load import validate_amounts
from clvdrift.engines import OpenLines, Source
from clvdrift.errors import ConfigError, DataError, StorageError
from clvdrift.features import AggregateQuery, TransactionLines

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


def _readable(path: Path, folder: str, position: int) -> str:
    """A name under which DuckDB reads exactly the file ``path``: it expands ``*``, ``?``, ``[`` and ``{``
    as a glob (``dir*x/part.parquet`` also read the folder ``dir-other-x``), so a path holding one is
    read through a symbolic link in the engine's folder."""
    text = str(path)
    if not any(char in text for char in "*?[{"):
        return text
    link = os.path.join(folder, f"part-{position}.parquet")
    os.symlink(path, link)
    return link


def _raw_sql(source: Source, con: duckdb.DuckDBPyConnection, folder: str) -> str:
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
    where = ""
    if source.as_of is not None:
        from clvdrift.data.history import as_of_end

        end = as_of_end(source.as_of)
        where = f' WHERE epoch_ns("{schema.INVOICE_DATE}") < {end.value}'
    for position, path in enumerate(source.parts):
        selects.append(
            f"SELECT {offset} + file_row_number AS _row, {text}, {numbers}, "
            f'epoch_ns("{schema.INVOICE_DATE}") AS ns '
            f"FROM read_parquet({_quote(_readable(path, folder, position))}, file_row_number = true){where}"
        )
        offset += part_rows(path)
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


_CODED = {"cust": "cust_t", "stock": "stock_t", "country": "country_t"}


def _code_types() -> list[str]:
    """Enum types of the distinct customers, stock codes and countries (with ``Unspecified``), in text
    order, found in one scan. ``base`` stores these columns as their codes (1–4 bytes, not a 16-byte
    string plus the text past 12 bytes): half the memory, and grouping on them compares integers."""
    extra = {"country": " UNION ALL SELECT 'Unspecified'"}
    return [
        "CREATE TEMP TABLE coded AS SELECT cust, stock, country FROM raw "
        "GROUP BY GROUPING SETS ((cust), (stock), (country))",
        *(
            f"CREATE TYPE {name} AS ENUM (SELECT DISTINCT v FROM "
            f"(SELECT {col} AS v FROM coded WHERE {col} IS NOT NULL{extra.get(col, '')}) ORDER BY v)"
            for col, name in _CODED.items()
        ),
        "DROP TABLE coded",
    ]


def _capped(total: str) -> str:
    """A sum of a clean line's non-negative integers as BIGINT, held at 1.5 × :data:`schema.MAX_EXACT_SUM`
    (exact in float64, so the aggregates' check against that limit sees it)."""
    return f"least({total}, {schema.MAX_EXACT_SUM * 3 // 2})::BIGINT"


@dataclass(frozen=True)
class _Narrow:
    """The narrowest exact types of ``base``'s numbers for this input, and how many passes find the
    duplicates (each pass's hash table holds 1/passes of the rows' hashes). At 50M rows the narrow types
    save 12 bytes a row (0.6 GB) and two passes 0.8 GB at the duplicates' step."""

    row: str = "BIGINT"  # UINTEGER when every position fits
    quantity: str = "DOUBLE"  # INTEGER when every Quantity is a whole number (they are within ±1e9)
    price: str = "BIGINT"  # INTEGER when every UnitPrice × 1000 fits
    passes: int = 1

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection) -> _Narrow:
        last, whole, top, rows = con.execute(
            "SELECT max(_row), bool_and(q = trunc(q)) FILTER (WHERE NOT isnan(q)), "
            "max(abs(p)) FILTER (WHERE NOT isnan(p)), count(*) FROM raw"
        ).fetchone()  # type: ignore[misc]
        return cls(
            row="UINTEGER" if last is None or last < 2**32 else "BIGINT",
            quantity="DOUBLE" if whole is False else "INTEGER",
            price="INTEGER" if top is None or top * 1000 < 2**31 - 1 else "BIGINT",
            passes=max(1, -(-int(rows) // DUPLICATE_PASS_ROWS)),
        )


DUPLICATE_PASS_ROWS = 25_000_000
"""The duplicates are found in one pass per this many rows (see :class:`_Narrow`)."""


def _clean_steps(low: int, high: int, narrow: _Narrow = _Narrow()) -> list[str]:
    """The rules of :mod:`clvdrift.data.clean` as narrow steps into tables ``groups`` and ``lines``.

    ``base.r`` is the 1-based index in :data:`RULES` of the first rule that removes a row, leaving out
    the two that look at other rows (0: none of them); among the rows no earlier rule removed, ``r = 5``
    are exactly the cancellations. ``paired`` holds the order lines a later cancellation nets out (rule
    4, ahead of every rule that can also hit an order line: only keys that have a cancellation are
    ranked); ``dups`` the exact duplicates of an earlier kept row: equal on every column, UnitPrice and
    Description compared through ``h``, the 64-bit hash of the whole raw row (two rows equal on the
    other columns whose price or description differ but hash alike would be taken for duplicates: about
    one chance in 10¹⁹ per such pair). ``pm`` is UnitPrice in thousandths (NULL where it is missing);
    ``inv`` the 64-bit hash of the invoice number (two numbers hashing alike would be one invoice)."""
    return [
        *_code_types(),
        f"""CREATE TEMP TABLE base AS
        SELECT _row::{narrow.row} AS _row, hash(inv) AS inv, stock::stock_t AS stock,
            CASE WHEN NOT isnan(q) THEN q::{narrow.quantity} END AS q, ns,
            CASE WHEN NOT isnan(p) THEN round_even(p * 1000, 0)::{narrow.price} END AS pm,
            cust::cust_t AS cust, country::country_t AS country,
            hash(inv, stock, q, ns, p, cust, country, descr) AS h,
            (CASE WHEN ns IS NOT NULL AND (ns < {low} OR ns > {high}) THEN 1
                 WHEN cust IS NULL THEN 2
                 WHEN inv IS NULL OR stock IS NULL OR q IS NULL OR isnan(q) OR ns IS NULL
                      OR p IS NULL OR isnan(p) THEN 3
                 WHEN starts_with(inv, 'C') THEN 5
                 WHEN NOT (q > 0) THEN 6
                 WHEN NOT (p > 0) THEN 7
                 WHEN {_NON_PRODUCT} THEN 8
                 ELSE 0 END)::UTINYINT AS r
        FROM raw""",
        """CREATE TEMP TABLE cancels AS
        SELECT cust, stock, abs(q) AS aq, ns,
            row_number() OVER (PARTITION BY cust, stock, abs(q) ORDER BY ns, _row) AS k
        FROM base WHERE r = 5 AND q < 0""",
        """CREATE TEMP TABLE paired AS
        WITH keys AS (SELECT DISTINCT cust, stock, aq FROM cancels),
        orders AS (
            SELECT _row, cust, stock, abs(q) AS aq, ns,
                row_number() OVER (PARTITION BY cust, stock, abs(q) ORDER BY ns, _row) AS k
            FROM base b SEMI JOIN keys ON b.cust = keys.cust AND b.stock = keys.stock AND abs(b.q) = keys.aq
            WHERE b.r IN (0, 6, 7, 8) AND b.q > 0)
        SELECT o._row FROM orders o JOIN cancels c
            ON o.cust = c.cust AND o.stock = c.stock AND o.aq = c.aq AND o.k = c.k
        WHERE o.ns <= c.ns""",
        "UPDATE base SET r = 4 WHERE _row IN (SELECT _row FROM paired)",
        f"CREATE TEMP TABLE dups (_row {narrow.row})",
        *(
            f"""INSERT INTO dups
        WITH candidates AS (
            SELECT * FROM base WHERE r = 0 AND h % {narrow.passes} = {part}
                AND h IN (SELECT h FROM base WHERE r = 0 AND h % {narrow.passes} = {part}
                          GROUP BY h HAVING count(*) > 1))
        SELECT _row FROM (
            SELECT _row, row_number() OVER (
                PARTITION BY h, inv, stock, q, ns, pm, cust, country ORDER BY _row) AS k
            FROM candidates)
        WHERE k > 1"""
            for part in range(narrow.passes)
        ),
        "UPDATE base SET r = 9 WHERE _row IN (SELECT _row FROM dups)",
        # a view: the aggregates read the tables below
        f"""CREATE TEMP VIEW clean AS
        SELECT _row, cust, inv, stock, coalesce(country, 'Unspecified'::country_t) AS country,
               {_SECONDS} AS s, trunc(q)::BIGINT AS qty, pm
        FROM base WHERE r = 0""",
        # an invoice's lines at one second in one row: what every aggregate but NumProducts reads
        # (sums past schema.MAX_EXACT_SUM are held at 1.5 times it, which the aggregates refuse)
        f"""CREATE TEMP TABLE groups AS
        SELECT cust, inv, s, count(*) AS n, {_capped("sum(qty)")} AS qty, {_capped("sum(qty * pm)")} AS spend,
               {_capped("sum(pm)")} AS pm, max(_row) AS last_row, arg_max(country, _row) AS country
        FROM clean GROUP BY cust, inv, s""",
        # what a window's product count reads, kept when base is dropped (a third of its bytes)
        "CREATE TEMP TABLE lines AS SELECT cust, stock, s FROM clean",
    ]


_PAIRS = "CREATE TEMP TABLE pairs AS SELECT cust, stock, min(s) AS first_s FROM lines GROUP BY cust, stock"
"""A customer's first purchase of each product, made once ``base`` is dropped (its hash table and base
were the peak at 50M rows)."""


class DuckLines:
    """Clean lines in DuckDB: the :class:`clvdrift.features.LineTable` of this engine.

    Table ``groups`` (an invoice's lines at one second: about one row per 25 lines) is read once into
    grouped :class:`~clvdrift.features.TransactionLines`, whose numpy code computes every aggregate as
    the pandas engine does; only the distinct products, which need the lines' stock codes, are counted
    in SQL (table ``pairs``, or table ``lines`` for a window with a floor)."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, source: str, folder: str, memory_limit: str | None
    ) -> None:
        self.con = con
        self.source = source
        self._spill = (folder, memory_limit)
        customers = _enum_values(con, "cust_t")
        countries = _enum_values(con, "country_t")
        rows = con.execute(
            "SELECT enum_code(cust) AS c, s, n, qty, spend, pm, enum_code(country) AS k, "
            "dense_rank() OVER (ORDER BY inv) AS i FROM groups ORDER BY s, last_row"
        ).fetchnumpy()
        column = {name: np.asarray(values, dtype=np.int64) for name, values in rows.items()}
        self.grouped = TransactionLines.from_groups(
            seconds=column["s"],
            customer=column["c"],
            invoice=column["i"],
            lines=column["n"],
            quantity=column["qty"],
            price=column["pm"],
            spend=column["spend"],
            country=countries[column["k"]],
            categories=pd.Index(customers),
            source=source,
        )

    @property
    def empty(self) -> bool:
        return self.grouped.empty

    def first_day(self) -> pd.Timestamp:
        return self.grouped.first_day()

    def last_day(self) -> pd.Timestamp:
        return self.grouped.last_day()

    def aggregate(self, query: AggregateQuery) -> pd.DataFrame:
        out = self.grouped.aggregate(query)
        with _resource_errors(*self._spill):
            counts = self._products(query)
        codes = self.grouped.categories.get_indexer(out.index)
        out.insert(out.columns.get_loc("orders") + 1, "products", counts[codes])  # type: ignore[arg-type]
        return out

    def _products(self, query: AggregateQuery) -> np.ndarray:
        """Distinct stock codes per customer code in ``[floor, snapshot)``."""
        snap = _sec(query.snapshot)
        if query.floor is None:  # the pairs first bought before the snapshot
            sql = (
                f"SELECT enum_code(cust) AS c, count(*) AS k FROM pairs WHERE first_s < {snap} GROUP BY cust"
            )
        else:
            sql = (
                f"SELECT enum_code(cust) AS c, count(DISTINCT stock) AS k FROM lines "
                f"WHERE s < {snap} AND s >= {_sec(query.floor)} GROUP BY cust"
            )
        found = self.con.execute(sql).fetchnumpy()
        counts = np.zeros(len(self.grouped.categories), dtype=np.int64)
        counts[np.asarray(found["c"], dtype=np.int64)] = np.asarray(found["k"], dtype=np.int64)
        return counts

    def revenue(self, start: pd.Timestamp | None, end: pd.Timestamp, ids: pd.Index) -> np.ndarray:
        return self.grouped.revenue(start, end, ids)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _enum_values(con: duckdb.DuckDBPyConnection, name: str) -> np.ndarray:
    """The values of enum type ``name`` in code order, as an object array."""
    found = con.execute(f"SELECT unnest(enum_range(NULL::{name})) AS v").fetchnumpy()
    return np.asarray(found["v"], dtype=object)


def _sec(day: pd.Timestamp) -> int:
    return int(np.datetime64(pd.Timestamp(day).to_datetime64(), "s").astype(np.int64))


_FOLDER_PREFIX = "clvdrift-duckdb-"
_FOLDER_NAME = re.compile(re.escape(_FOLDER_PREFIX) + r"(\d+)-([0-9a-f]{6})-")


def remove_stale_folders(root: Path | None = None) -> list[Path]:
    """Remove the spill folders (in ``root``, default the temporary directory) of DuckDB engines whose
    process was killed on this host (its PID is gone): a closed engine removes its own folder, a
    SIGKILLed one cannot. Folders of live processes and of other hosts are left alone. Returns what was
    removed."""
    from clvdrift.io import owner_is_gone

    root = Path(tempfile.gettempdir()) if root is None else root
    removed = []
    for path in root.glob(_FOLDER_PREFIX + "*"):
        match = _FOLDER_NAME.match(path.name)
        if match is None or not owner_is_gone(int(match.group(1)), match.group(2)):
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

    from clvdrift.io import host_tag

    remove_stale_folders()
    # named by process and host, so that the next engine can tell a killed process's folder from a live one
    folder = tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-{host_tag()}-")
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
        con.execute(f"CREATE TEMP VIEW raw AS {_raw_sql(source, con, folder)}")
        attrs = dict(source.frame.attrs) if source.frame is not None else {}
        with _resource_errors(folder, memory_limit):
            report = _clean(con, source, attrs, today)
            lines = DuckLines(con, source.name, folder, memory_limit)
        return OpenLines(lines, report, "duckdb", reason, rows, close)
    except duckdb.Error as exc:  # not memory or a full disk (see _resource_errors)
        close()
        detail = _first_line(exc)
        check_parts(source.parts)  # a part gone or corrupt: as the pandas reading of the parts says
        if isinstance(exc, duckdb.InvalidInputException):  # e.g. text that is not UTF-8, ids equal as text
            raise DataError(f"{source.name}: the DuckDB engine cannot read these rows: {detail}") from None
        if isinstance(exc, duckdb.IOException):
            raise StorageError(f"the DuckDB engine could not use its folder {folder}: {detail}") from None
        raise
    except BaseException:
        close()
        raise


def _clean(
    con: duckdb.DuckDBPyConnection, source: Source, attrs: dict[str, Any], today: pd.Timestamp | None
) -> CleaningReport:
    """Validate the amounts, find the date bounds, apply the rules into tables ``groups``, ``lines`` and
    ``pairs``; the report."""

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
    for step in _clean_steps(low, high, _Narrow.of(con)):
        con.execute(step)
    by_rule = dict(con.execute("SELECT r, count(*) FROM base GROUP BY r").fetchall())
    removed = {rule: int(by_rule.get(i + 1, 0)) for i, rule in enumerate(RULES)}
    total = int(sum(by_rule.values()))
    con.execute("DROP VIEW clean")
    for table in ("cancels", "paired", "dups", "base"):  # the types stay: the tables hold their codes
        con.execute(f"DROP TABLE {table}")
    con.execute(_PAIRS)
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
