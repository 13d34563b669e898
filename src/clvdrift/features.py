"""Customer features at a snapshot, CLV targets, and the country encoding.

Definitions (``snapshot`` is an exclusive end: features use transactions strictly before it; with
``lookback_days=L`` only those in ``[snapshot − L days, snapshot)``):

==================  ===================================================================
Recency             whole days from the customer's last purchase to the snapshot
Frequency           number of purchase lines (transactions)
Monetary            total spend, Σ Quantity × UnitPrice
AvgQuantity         TotalQuantity / Frequency (items per line)
TotalQuantity       Σ Quantity
AvgUnitPrice        mean UnitPrice over the lines
NumOrders           distinct invoices
NumProducts         distinct stock codes
Country             the country of the customer's latest line (one-hot encoded for the model)
==================  ===================================================================

:func:`history_features` adds, for the ``gbm`` family (same exclusive ``snapshot``):

====================  =================================================================
Revenue{30,90,180,365}d  spend in the last 30/90/180/365 days
Orders{30,90,180,365}d   distinct invoices in those windows
TenureDays            days from the customer's first purchase to the snapshot
DaysBetweenOrders     (TenureDays − Recency) / (NumOrders − 1); missing with one order
Trend90d              Revenue90d − (Revenue180d − Revenue90d): the last 90 days against the 90 before
SeasonSin, SeasonCos  the snapshot's position in the year (the target window's calendar position)
LastYearRevenue       spend in the H days that started one year before the snapshot; missing when
                      the history does not reach back a year
====================  =================================================================

Money is summed in integer thousandths and time in integer seconds, divided once at the end, so
another engine (DuckDB, Dask) can reproduce the numbers exactly.

Targets: ``holdout`` — revenue in the H days after the snapshot (0 for customers who buy nothing);
``formula`` — the seed's ``Monetary × Frequency / (Recency + 1) × 365``, computed from the model's own
inputs (kept for fidelity; it says nothing about the future). The persistence baseline is each
customer's revenue in the last H days before the snapshot.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
import pandas as pd

from clvdrift.config import TrainConfig
from clvdrift.data import schema
from clvdrift.data.load import validate_amounts
from clvdrift.errors import ConfigError, DataError

_T = TypeVar("_T")

NUMERIC_FEATURES = (
    "Recency",
    "Frequency",
    "Monetary",
    "AvgQuantity",
    "TotalQuantity",
    "AvgUnitPrice",
    "NumOrders",
    "NumProducts",
)
COUNTRY = "Country"
COUNTRY_OTHER = "Country_Other"
WINDOW_DAYS = (30, 90, 180, 365)
HISTORY_FEATURES = (
    *(f"Revenue{d}d" for d in WINDOW_DAYS),
    *(f"Orders{d}d" for d in WINDOW_DAYS),
    "TenureDays",
    "DaysBetweenOrders",
    "Trend90d",
)
LAST_YEAR = "LastYearRevenue"
SEASON_FEATURES = ("SeasonSin", "SeasonCos", LAST_YEAR)
TARGETS = ("holdout", "formula")
_DAY = 86_400
_MILLI = 1000


_CUTOFF_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_cutoff(value: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    """A cutoff day (``YYYY-MM-DD`` text, a date or a Timestamp) as a midnight Timestamp.

    Raises :class:`ConfigError` for anything else: text in another format (``notadate``,
    ``20110909000000``), impossible days (``2011-02-30``, ``9999-99-99``), days pandas cannot hold
    (before 1677-09-22 or after 2262-04-10) and time-zone-aware values.
    """
    expected = "expected a day YYYY-MM-DD between 1677-09-22 and 2262-04-10"
    if isinstance(value, str):
        if not _CUTOFF_RE.match(value.strip()):
            raise ConfigError(f"cutoff {value!r} is not a date ({expected})")
        value = value.strip()
    elif not isinstance(value, dt.date):  # datetime and pd.Timestamp are dates too
        raise ConfigError(f"cutoff {value!r} is not a date ({expected})")
    try:
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            raise ConfigError(f"cutoff {value!r} has a time zone; {expected}")
        return stamp.as_unit("ns").normalize()
    except (ValueError, OverflowError) as exc:  # includes OutOfBoundsDatetime
        raise ConfigError(f"cutoff {value!r} is not a valid date ({expected}): {exc}") from None


def _shift(day: pd.Timestamp, days: int, what: str) -> pd.Timestamp:
    """``day + days`` (negative: earlier); :class:`ConfigError` when pandas cannot hold the result."""
    try:
        return (day + pd.Timedelta(days=days)).as_unit("ns")
    except (ValueError, OverflowError):  # OutOfBoundsDatetime / OutOfBoundsTimedelta
        raise ConfigError(
            f"{what}: {day.date()} {'+' if days >= 0 else '-'} {abs(days):,} days is outside the dates "
            "pandas can hold (1677-09-22 to 2262-04-10); use a smaller number of days"
        ) from None


def _amounts(tx: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Quantity and UnitPrice in integer thousandths, both int64, after checking the schema's bounds
    (which keep every line's value in thousandths below 10¹⁵, exact in int64)."""
    qty = tx[schema.QUANTITY].to_numpy(dtype=np.float64)
    price = tx[schema.UNIT_PRICE].to_numpy(dtype=np.float64)
    validate_amounts(
        qty,
        price,
        where=str(tx.attrs.get("source", "transactions")),
        row=lambda i: f"row {i + 1} of the clean transactions",
    )
    return qty.astype(np.int64), np.round(price * _MILLI).astype(np.int64)


def _sum_by(
    cust: np.ndarray, values: np.ndarray, n: int, ids: pd.Index, what: str, weight: np.ndarray | None = None
) -> np.ndarray:
    """Exact int64 sums of ``values`` per customer code; :class:`DataError` instead of a wrap-around
    when a customer's Σ|values| exceeds :data:`schema.MAX_EXACT_SUM` (``weight``: how many lines each
    value sums, for the message).

    The check is exact: a float64 sum screens the customers (its relative error is below 10⁻⁶ up to
    billions of values), those near the limit are summed in Python integers. So whether a sum is
    refused does not depend on how the values were added up (line by line, or grouped by an engine),
    and of several customers beyond the limit the message names the first by id."""
    magnitude = np.bincount(cust, weights=np.abs(values).astype(np.float64), minlength=n)
    limit = schema.MAX_EXACT_SUM
    near = np.flatnonzero(magnitude > limit * (1 - 1e-6)) if n else np.zeros(0, dtype=np.int64)
    over = [c for c in near if sum(abs(v) for v in values[cust == c].tolist()) > limit]
    if over:
        worst = min(over, key=lambda c: str(ids[c]))
        mine = cust == worst
        lines = int(np.count_nonzero(mine) if weight is None else weight[mine].sum())
        raise DataError(
            f"customer {ids[worst]}: {what} summed over its {lines:,} line(s) is beyond the exact integer "
            f"range (±{float(limit):.3g}); values this large are errors"
        )
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, cust, values)
    return out


def _previous_of_pair(customer: np.ndarray, other: np.ndarray) -> np.ndarray:
    """For each line (in time order), the index of the same customer's previous line with the same
    ``other`` value, or -1."""
    width = np.int64(max(int(other.max()) + 1, 1)) if len(other) else np.int64(1)
    key = customer * width + other
    order = np.argsort(key, kind="stable")  # stable: time order within a pair
    previous = np.full(len(key), -1, dtype=np.int64)
    same = key[order][1:] == key[order][:-1]
    previous[order[1:][same]] = order[:-1][same]
    return previous


def _seconds(day: pd.Timestamp) -> int:
    return int(np.datetime64(pd.Timestamp(day).to_datetime64(), "s").astype(np.int64))


@dataclass(frozen=True)
class TransactionLines:
    """Clean transactions as arrays sorted by time (ties keep file order), read once, so the features
    at many snapshots (a stacked training set) each cost one slice instead of a scan of the frame.

    Money is in integer thousandths, time in integer seconds; ``customer`` are codes into the
    transactions' CustomerID categories.

    An engine may hand over *grouped* rows instead: each row stands for ``weight`` lines of one invoice
    at one second (its sums, its latest line's country, rows ordered by their latest line), which gives
    the same aggregates. Such rows carry no stock codes (``stock_prev`` is ``None``): the aggregates then
    leave ``products`` out and the engine adds it.
    """

    seconds: np.ndarray
    customer: np.ndarray
    quantity: np.ndarray
    price: np.ndarray
    spend: np.ndarray
    invoice: np.ndarray
    stock: np.ndarray
    country: np.ndarray
    categories: pd.Index
    source: str
    invoice_prev: np.ndarray
    stock_prev: np.ndarray | None
    weight: np.ndarray | None = None

    @classmethod
    def from_frame(cls, transactions: pd.DataFrame) -> TransactionLines:
        codes = transactions[schema.CUSTOMER].cat.codes.to_numpy()
        if (codes < 0).any():
            raise DataError("features need clean transactions: some rows have no CustomerID")
        qty, price = _amounts(transactions)
        seconds = transactions[schema.INVOICE_DATE].to_numpy(dtype="datetime64[s]").astype(np.int64)
        order = np.argsort(seconds, kind="stable")
        customer = codes[order].astype(np.int64)
        invoice = transactions[schema.INVOICE].cat.codes.to_numpy()[order].astype(np.int64)
        stock = transactions[schema.STOCK_CODE].cat.codes.to_numpy()[order].astype(np.int64)
        return cls(
            seconds=seconds[order],
            customer=customer,
            quantity=qty[order],
            price=price[order],
            spend=qty[order] * price[order],
            invoice=invoice,
            stock=stock,
            country=transactions[schema.COUNTRY].to_numpy()[order],
            categories=transactions[schema.CUSTOMER].cat.categories,
            source=str(transactions.attrs.get("source", "transactions")),
            invoice_prev=_previous_of_pair(customer, invoice),
            stock_prev=_previous_of_pair(customer, stock),
        )

    @classmethod
    def from_groups(
        cls,
        *,
        seconds: np.ndarray,
        customer: np.ndarray,
        invoice: np.ndarray,
        lines: np.ndarray,
        quantity: np.ndarray,
        price: np.ndarray,
        spend: np.ndarray,
        country: np.ndarray,
        categories: pd.Index,
        source: str,
    ) -> TransactionLines:
        """Grouped rows from an engine: each row an invoice's ``lines`` lines at one second, with their
        sums and the latest line's country, in the order of their latest lines; ``customer`` and
        ``invoice`` are integer codes (``customer`` into ``categories``)."""
        return cls(
            seconds=seconds,
            customer=customer,
            quantity=quantity,
            price=price,
            spend=spend,
            invoice=invoice,
            stock=np.zeros(0, dtype=np.int64),
            country=country,
            categories=categories,
            source=source,
            invoice_prev=_previous_of_pair(customer, invoice),
            stock_prev=None,
            weight=lines,
        )

    @property
    def empty(self) -> bool:
        return len(self.seconds) == 0

    def first_day(self) -> pd.Timestamp:
        return pd.Timestamp(int(self.seconds[0]), unit="s").normalize()

    def last_day(self) -> pd.Timestamp:
        return pd.Timestamp(int(self.seconds[-1]), unit="s").normalize()

    def span(self, start: pd.Timestamp | None, end: pd.Timestamp) -> slice:
        """The lines in ``[start, end)`` (``start=None``: from the first)."""
        lo = 0 if start is None else int(np.searchsorted(self.seconds, _seconds(start), side="left"))
        return slice(lo, int(np.searchsorted(self.seconds, _seconds(end), side="left")))

    def customers_of(self, lines: slice) -> tuple[np.ndarray, np.ndarray]:
        """Per line of ``lines``, its customer's position among the customers present there, and the
        codes of those customers (sorted)."""
        codes = self.customer[lines]
        present = np.flatnonzero(np.bincount(codes, minlength=len(self.categories)))
        position = np.full(len(self.categories), -1, dtype=np.int64)
        position[present] = np.arange(len(present))
        return position[codes], present

    def distinct(self, lines: slice, of: str, cust: np.ndarray, n: int) -> np.ndarray:
        """Distinct invoices (``of="invoice"``) or stock codes (``"stock"``) per customer among ``lines``
        (``cust``: each line's customer position, ``n`` of them): a line counts when the customer's
        previous line with the same value is before the window."""
        previous = self.invoice_prev if of == "invoice" else self.stock_prev
        assert previous is not None, "grouped rows carry no stock codes"
        first_in_window = previous[lines] < (lines.start or 0)
        return np.bincount(cust[first_in_window], minlength=n).astype(np.int64)

    def _spend_by_code(self, start: pd.Timestamp | None, end: pd.Timestamp) -> np.ndarray:
        """Revenue (thousandths, int64) in ``[start, end)`` per customer code (0 when absent)."""
        window = self.span(start, end)
        return _sum_by(
            self.customer[window],
            self.spend[window],
            len(self.categories),
            self.categories,
            "Quantity × UnitPrice in thousandths",
            None if self.weight is None else self.weight[window],
        )

    @functools.cached_property
    def _ids(self) -> pd.Index:
        """The customers' ids as text (what :meth:`aggregate` returns), by code."""
        return self.categories.astype(str)

    def revenue(self, start: pd.Timestamp | None, end: pd.Timestamp, ids: pd.Index) -> np.ndarray:
        """Revenue (thousandths, int64) in ``[start, end)`` of each customer in ``ids`` (0 when absent)."""
        codes = self._ids.get_indexer(ids)
        found = codes >= 0
        out = np.zeros(len(codes), dtype=np.int64)
        out[found] = self._spend_by_code(start, end)[codes[found]]
        return out

    def aggregate(self, query: AggregateQuery) -> pd.DataFrame:
        """The integer aggregates of ``query`` (see :class:`AggregateQuery`): the reference implementation
        every engine reproduces exactly. Customers are handled by code; their ids are looked up once."""
        window = self.span(query.floor, query.snapshot)
        cust, present = self.customers_of(window)
        n = len(present)
        ids = self._ids[present]
        seconds = self.seconds[window]
        # the latest line per customer: lines are in time order (ties in file order), so a stable sort
        # by customer keeps that order within each customer and each group's last row is its latest
        order = np.argsort(cust, kind="stable")
        ends = np.flatnonzero(np.r_[cust[order][1:] != cust[order][:-1], n > 0])
        last_rows, first_rows = order[ends], order[np.r_[0, ends[:-1] + 1]] if n else order[:0]
        weight = None if self.weight is None else self.weight[window]
        lines = np.bincount(cust, weights=weight, minlength=n)
        out: dict[str, object] = {
            "lines": lines.astype(np.int64),  # a float count of whole lines is exact below 2**53
            "quantity": _sum_by(cust, self.quantity[window], n, ids, "Quantity", weight),
            "spend": _sum_by(cust, self.spend[window], n, ids, "Quantity × UnitPrice in thousandths", weight),
            "price": _sum_by(cust, self.price[window], n, ids, "UnitPrice in thousandths", weight),
            "first_s": seconds[first_rows],
            "last_s": seconds[last_rows],
            "orders": self.distinct(window, "invoice", cust, n),
            **({} if self.stock_prev is None else {"products": self.distinct(window, "stock", cust, n)}),
            COUNTRY: pd.Series(self.country[window][last_rows], dtype=object).astype(str).to_numpy(),
        }
        for name, (start, end) in query.spend.items():
            out[f"spend:{name}"] = self._spend_by_code(start, end)[present]
        everyone = len(self.categories)
        for name, (start, end) in query.orders.items():
            span = self.span(start, end)
            out[f"orders:{name}"] = self.distinct(span, "invoice", self.customer[span], everyone)[present]
        # codes follow the categories' order, which for text ids is not always sorted
        return pd.DataFrame(out, index=pd.Index(ids, name=schema.CUSTOMER)).sort_index()


Window = tuple["pd.Timestamp | None", "pd.Timestamp"]


@dataclass(frozen=True)
class AggregateQuery:
    """What an engine computes per customer for one snapshot (:meth:`LineTable.aggregate`).

    The rows are the customers with a line in ``[floor, snapshot)`` (``floor=None``: from the first
    line), sorted by id, with int64 columns ``lines``, ``quantity`` (Σ Quantity), ``spend`` (Σ Quantity ×
    UnitPrice in thousandths), ``price`` (Σ UnitPrice in thousandths), ``first_s`` and ``last_s`` (their
    first and latest line, in seconds), ``orders`` and ``products`` (distinct invoices and stock codes),
    the text ``Country`` of their latest line (ties in time: the later row), and per entry of ``spend``
    and ``orders`` a column ``spend:<name>`` / ``orders:<name>``: the revenue in thousandths / distinct
    invoices of that window ``[start, end)`` (0 when none).
    """

    snapshot: pd.Timestamp
    floor: pd.Timestamp | None = None
    spend: dict[str, Window] = field(default_factory=dict)
    orders: dict[str, Window] = field(default_factory=dict)


class LineTable(Protocol):
    """Clean transactions as an engine holds them (:mod:`clvdrift.engines`): the features, targets and
    baselines of this module are computed from these methods only, so every engine gives the same."""

    @property
    def source(self) -> str: ...

    @property
    def empty(self) -> bool: ...

    def first_day(self) -> pd.Timestamp: ...

    def last_day(self) -> pd.Timestamp: ...

    def aggregate(self, query: AggregateQuery) -> pd.DataFrame: ...

    def revenue(self, start: pd.Timestamp | None, end: pd.Timestamp, ids: pd.Index) -> np.ndarray: ...


class SharedLines:
    """A :class:`LineTable` whose aggregates are computed once: many policies (a replay step) or
    several models reading the same lines share them. ``memo`` is also where the pipeline keeps other
    work that depends only on these lines (e.g. a model fitted at a cutoff), through :meth:`once`.
    Results are shared: never modify a frame it returns.

    Thread-safe: several threads may read one table (a replay runs a step's policies on two). Each
    piece of work is done once, by the first thread that asks; the others wait for it. The engine's
    table is read by one thread at a time (a DuckDB connection is not shared between threads)."""

    def __init__(self, lines: LineTable) -> None:
        self.lines = lines
        self.memo: dict[object, object] = {}
        self._lock = threading.Lock()
        self._engine = threading.RLock()
        self._pending: dict[object, threading.Lock] = {}

    def once(self, key: object, compute: Callable[[], _T]) -> _T:
        """``memo[key]``, computed by ``compute()`` the first time (by one thread; others asking meanwhile
        wait for it). An exception is not kept: the next call computes again."""
        with self._lock:
            if key in self.memo:
                return self.memo[key]  # type: ignore[return-value]
            pending = self._pending.setdefault(key, threading.Lock())
        with pending:
            with self._lock:
                if key in self.memo:
                    return self.memo[key]  # type: ignore[return-value]
            value = compute()
            with self._lock:
                self.memo[key] = value
                self._pending.pop(key, None)
            return value

    @property
    def source(self) -> str:
        return self.lines.source

    @property
    def empty(self) -> bool:
        with self._engine:
            return self.lines.empty

    def first_day(self) -> pd.Timestamp:
        with self._engine:
            return self.lines.first_day()

    def last_day(self) -> pd.Timestamp:
        with self._engine:
            return self.lines.last_day()

    def aggregate(self, query: AggregateQuery) -> pd.DataFrame:
        key = (
            "aggregate",
            query.snapshot,
            query.floor,
            tuple(query.spend.items()),
            tuple(query.orders.items()),
        )

        def compute() -> pd.DataFrame:
            with self._engine:
                return self.lines.aggregate(query)

        return self.once(key, compute)

    def revenue(self, start: pd.Timestamp | None, end: pd.Timestamp, ids: pd.Index) -> np.ndarray:
        with self._engine:
            return self.lines.revenue(start, end, ids)


def _as_lines(transactions: pd.DataFrame | LineTable) -> LineTable:
    if isinstance(transactions, pd.DataFrame):
        return TransactionLines.from_frame(transactions)
    return transactions


def _base_features(agg: pd.DataFrame, snapshot: pd.Timestamp) -> dict[str, object]:
    """:data:`NUMERIC_FEATURES` and ``Country`` from the aggregates (one division each, at the end)."""
    lines = agg["lines"].to_numpy(dtype=np.int64)
    n = len(lines)
    qty, price = agg["quantity"].to_numpy(dtype=np.int64), agg["price"].to_numpy(dtype=np.int64)
    return {
        "Recency": (_seconds(snapshot) - agg["last_s"].to_numpy(dtype=np.int64)) // _DAY,
        "Frequency": lines,
        "Monetary": agg["spend"].to_numpy(dtype=np.int64) / _MILLI,
        "AvgQuantity": np.divide(qty, lines, where=lines > 0, out=np.zeros(n)),
        "TotalQuantity": qty,
        "AvgUnitPrice": np.divide(price / _MILLI, lines, where=lines > 0, out=np.zeros(n)),
        "NumOrders": agg["orders"].to_numpy(dtype=np.int64),
        "NumProducts": agg["products"].to_numpy(dtype=np.int64),
        COUNTRY: agg[COUNTRY].to_numpy(dtype=object),
    }


def _floor(snapshot: pd.Timestamp, lookback_days: int | None) -> pd.Timestamp | None:
    if lookback_days is not None and lookback_days < 1:
        raise ConfigError(f"lookback_days must be ≥ 1, got {lookback_days}")
    return _shift(snapshot, -lookback_days, "lookback_days") if lookback_days else None


def customer_features(
    transactions: pd.DataFrame | LineTable,
    snapshot: pd.Timestamp,
    *,
    lookback_days: int | None = None,
) -> pd.DataFrame:
    """Features per customer (index ``CustomerID``) from clean transactions before ``snapshot``.

    Columns: :data:`NUMERIC_FEATURES` then ``Country``; rows sorted by customer id.
    """
    lines = _as_lines(transactions)
    snapshot = pd.Timestamp(snapshot)
    agg = lines.aggregate(AggregateQuery(snapshot, _floor(snapshot, lookback_days)))
    return pd.DataFrame(_base_features(agg, snapshot), index=agg.index)


def _history_table(
    lines: LineTable,
    snapshot: pd.Timestamp,
    *,
    horizon_days: int,
    history_start: pd.Timestamp | None,
    lookback_days: int | None,
    extra: dict[str, Window] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`history_features` and, in the same aggregation, the revenue (thousandths) of each ``extra``
    window per customer (targets and baselines: one pass over the lines per snapshot)."""
    floor = _floor(snapshot, lookback_days)
    spend: dict[str, Window] = {}
    orders: dict[str, Window] = {}
    for days in WINDOW_DAYS:  # with a lookback, every feature reads [snapshot − L, snapshot) only
        start = _shift(snapshot, -days, "window")
        start = start if floor is None else max(start, floor)
        spend[f"{days}d"] = orders[f"{days}d"] = (start, snapshot)
    start = (
        history_start if history_start is not None else (lines.first_day() if not lines.empty else snapshot)
    )
    if floor is not None:
        start = max(pd.Timestamp(start), floor)
    year_ago = _shift(snapshot, -365, "last year")
    has_last_year = year_ago >= pd.Timestamp(start).normalize()
    if has_last_year:
        spend["last_year"] = (year_ago, min(_shift(year_ago, horizon_days, "horizon_days"), snapshot))
    extra = extra or {}
    spend.update({f"extra:{k}": v for k, v in extra.items()})
    agg = lines.aggregate(AggregateQuery(snapshot, floor, spend, orders))
    out = _base_features(agg, snapshot)
    for days in WINDOW_DAYS:
        out[f"Revenue{days}d"] = agg[f"spend:{days}d"].to_numpy(dtype=np.int64) / _MILLI
        out[f"Orders{days}d"] = agg[f"orders:{days}d"].to_numpy(dtype=np.int64)
    tenure = (_seconds(snapshot) - agg["first_s"].to_numpy(dtype=np.int64)) / _DAY
    out["TenureDays"] = tenure
    orders_all = agg["orders"].to_numpy(dtype=np.int64)
    recency = np.asarray(out["Recency"])
    out["DaysBetweenOrders"] = np.where(
        orders_all > 1, (tenure - recency) / np.maximum(orders_all - 1, 1), np.nan
    )
    r90, r180 = np.asarray(out["Revenue90d"]), np.asarray(out["Revenue180d"])
    out["Trend90d"] = r90 - (r180 - r90)
    day = (snapshot.dayofyear - 1) / 365.25
    out["SeasonSin"] = np.full(len(agg), np.sin(2 * np.pi * day))
    out["SeasonCos"] = np.full(len(agg), np.cos(2 * np.pi * day))
    out[LAST_YEAR] = (
        agg["spend:last_year"].to_numpy(dtype=np.int64) / _MILLI
        if has_last_year
        else np.full(len(agg), np.nan)
    )
    extras = pd.DataFrame(
        {k: agg[f"spend:extra:{k}"].to_numpy(dtype=np.int64) for k in extra}, index=agg.index
    )
    return pd.DataFrame(out, index=agg.index), extras


def history_features(
    transactions: pd.DataFrame | LineTable,
    snapshot: pd.Timestamp,
    *,
    horizon_days: int,
    history_start: pd.Timestamp | None = None,
    lookback_days: int | None = None,
) -> pd.DataFrame:
    """:func:`customer_features` (with ``lookback_days``) plus the windowed and seasonal features of
    :data:`HISTORY_FEATURES` and :data:`SEASON_FEATURES` (module docstring), from lines strictly before
    ``snapshot``.

    ``history_start`` is the first day of the whole history (default: the first line's day): a
    customer's last-year revenue is 0 when the history reaches back a year before ``snapshot`` and
    they bought nothing then, and missing (NaN) when the history does not reach that far.
    """
    features, _ = _history_table(
        _as_lines(transactions),
        pd.Timestamp(snapshot),
        horizon_days=horizon_days,
        history_start=history_start,
        lookback_days=lookback_days,
    )
    return features


def revenue(
    transactions: pd.DataFrame | LineTable, start: pd.Timestamp | None, end: pd.Timestamp
) -> pd.Series:
    """Revenue per customer from lines in ``[start, end)`` (customers with no line are absent)."""
    agg = _as_lines(transactions).aggregate(AggregateQuery(pd.Timestamp(end), start))
    return pd.Series(agg["spend"].to_numpy(dtype=np.int64) / _MILLI, index=agg.index.rename(None))


def formula_clv(features: pd.DataFrame) -> pd.Series:
    """The seed's CLV: ``Monetary × (Frequency / (Recency + 1)) × 365``."""
    return features["Monetary"] * (features["Frequency"] / (features["Recency"] + 1)) * 365


@dataclass(frozen=True)
class TrainingSet:
    """Features, target and persistence baseline for one snapshot, aligned on customer id.

    ``target_days_covered`` is how many of the ``horizon_days`` days after the cutoff the data reaches
    (the holdout target is the revenue of those days only); ``None`` for the formula target, which does
    not look past the cutoff.
    """

    features: pd.DataFrame
    target: pd.Series
    baseline: pd.Series
    target_kind: str
    snapshot: pd.Timestamp
    horizon_days: int
    lookback_days: int | None
    cutoff: pd.Timestamp
    target_days_covered: int | None = None

    def describe(self) -> dict[str, object]:
        return {
            "target": self.target_kind,
            "cutoff": self.cutoff.date().isoformat(),
            "snapshot": self.snapshot.isoformat(),
            "horizon_days": self.horizon_days,
            "target_days_covered": self.target_days_covered,
            "lookback_days": self.lookback_days,
            "customers": len(self.features),
            "zero_target_share": round(float((self.target == 0).mean()), 4) if len(self.target) else None,
        }


def build_training_set(
    transactions: pd.DataFrame | LineTable,
    *,
    target: str = TrainConfig().target,
    horizon_days: int = TrainConfig().horizon_days,
    cutoff: str | dt.date | pd.Timestamp | None = None,
    lookback_days: int | None = None,
    require_labels: bool = True,
) -> TrainingSet:
    """Features and target from clean transactions.

    ``cutoff`` is the last calendar day of the calibration window (features); the holdout target is
    the revenue in the ``horizon_days`` days after it. Default cutoff: the last day in the data minus
    ``horizon_days`` for ``holdout``, the last day in the data for ``formula``.

    With ``require_labels`` (training), a holdout target whose window ``cutoff + 1 … cutoff + H`` runs
    past the last transaction day raises :class:`DataError`: its revenue would be that of fewer days
    than H. ``require_labels=False`` (a recent batch checked for drift, whose labels do not exist yet)
    builds the set anyway and records the days covered in ``target_days_covered``.
    """
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    if horizon_days < 1:
        raise ConfigError(f"horizon_days must be ≥ 1, got {horizon_days}")
    if transactions.empty:
        raise DataError("no transactions left to build features from")
    lines = _as_lines(transactions)
    last_day, first_day = lines.last_day(), lines.first_day()
    if cutoff is None:
        cut = _shift(last_day, -horizon_days, "horizon_days") if target == "holdout" else last_day
        if cut < first_day:
            raise DataError(
                f"the data spans {first_day.date()} to {last_day.date()} "
                f"({(last_day - first_day).days} days): a {horizon_days}-day holdout target needs a longer "
                "history; pass a shorter --horizon-days"
            )
    else:
        cut = parse_cutoff(cutoff)
    if not first_day <= cut <= last_day:
        raise ConfigError(
            f"cutoff {cut.date()} is outside the data ({first_day.date()} to {last_day.date()})"
        )
    snapshot = cut + pd.Timedelta(days=1)
    target_end = _shift(cut, horizon_days, "horizon_days")  # last day of the holdout window
    baseline_start = _shift(snapshot, -horizon_days, "horizon_days")
    covered = None
    if target == "holdout":
        covered = min(horizon_days, (last_day - cut).days)
        if require_labels and covered < horizon_days:
            raise DataError(
                f"cutoff {cut.date()} + {horizon_days} days = {target_end.date()} is after the last "
                f"transaction day {last_day.date()}: the target would cover {covered} of {horizon_days} "
                "days; pass an earlier --cutoff or a shorter --horizon-days"
            )
    windows: dict[str, Window] = {"baseline": (baseline_start, snapshot)}
    if target == "holdout":
        windows["target"] = (snapshot, target_end + pd.Timedelta(days=1))
    features, extra = _history_table(
        lines,
        snapshot,
        horizon_days=horizon_days,
        history_start=first_day,
        lookback_days=lookback_days,
        extra=windows,
    )
    if features.empty:
        if lookback_days:
            first = (snapshot - pd.Timedelta(days=lookback_days)).date()
            raise DataError(
                f"no customer has a transaction in the {lookback_days}-day lookback window up to the "
                f"cutoff {cut.date()} ({first} to {cut.date()})"
            )
        raise DataError(f"no customer has a transaction before the cutoff {cut.date()}")
    if target == "holdout":
        y = pd.Series(extra["target"].to_numpy() / _MILLI, index=features.index)
    else:
        y = formula_clv(features)
    baseline = pd.Series(extra["baseline"].to_numpy() / _MILLI, index=features.index)
    return TrainingSet(
        features=features,
        target=y.rename("target").astype(np.float64),
        baseline=baseline.rename("baseline").astype(np.float64),
        target_kind=target,
        snapshot=snapshot,
        horizon_days=horizon_days,
        lookback_days=lookback_days,
        cutoff=cut,
        target_days_covered=covered,
    )


@dataclass(frozen=True)
class StackedSet:
    """Training rows from several cutoffs, stacked: one row per (cutoff, customer with a line before it).

    ``features`` has :func:`history_features`' columns plus ``CUTOFF_COLUMN`` (the row's cutoff day);
    ``target`` is the revenue of the H days after the row's cutoff. Every row reads only lines before
    its cutoff + 1 + H days: the set built at ``cutoffs[0]`` reads nothing after ``cutoffs[0]`` + H.
    """

    features: pd.DataFrame
    target: pd.Series
    cutoffs: tuple[pd.Timestamp, ...]
    horizon_days: int

    def describe(self) -> dict[str, object]:
        return {
            "stacked_cutoffs": len(self.cutoffs),
            "first_cutoff": self.cutoffs[-1].date().isoformat(),
            "last_cutoff": self.cutoffs[0].date().isoformat(),
            "rows": len(self.features),
        }


CUTOFF_COLUMN = "CutoffDate"


def stacked_cutoffs(
    cutoff: pd.Timestamp, first_day: pd.Timestamp, *, step_days: int, min_history_days: int, max_cutoffs: int
) -> tuple[pd.Timestamp, ...]:
    """``cutoff``, ``cutoff − step``, … back while a cutoff has ``min_history_days`` of history before it
    (``cutoff`` itself always), at most ``max_cutoffs``; newest first."""
    out = [pd.Timestamp(cutoff)]
    while len(out) < max_cutoffs:
        earlier = out[-1] - pd.Timedelta(days=step_days)
        if (earlier - first_day).days < min_history_days:
            break
        out.append(earlier)
    return tuple(out)


def stacked_training_set(
    transactions: pd.DataFrame | LineTable,
    cutoffs: Iterable[pd.Timestamp],
    *,
    horizon_days: int,
    lookback_days: int | None = None,
) -> StackedSet:
    """The rows of every cutoff in ``cutoffs`` (see :class:`StackedSet`); the history's first day is the
    first line's, so a row's ``LastYearRevenue`` is missing exactly when its cutoff is < 1 year in."""
    lines = _as_lines(transactions)
    if lines.empty:
        raise DataError("no transactions left to build features from")
    first = lines.first_day()
    frames, targets = [], []
    days = tuple(pd.Timestamp(c) for c in cutoffs)
    for cut in days:
        snapshot = cut + pd.Timedelta(days=1)
        f, extra = _history_table(
            lines,
            snapshot,
            horizon_days=horizon_days,
            history_start=first,
            lookback_days=lookback_days,
            extra={"target": (snapshot, _shift(snapshot, horizon_days, "horizon_days"))},
        )
        targets.append(pd.Series(extra["target"].to_numpy() / _MILLI, index=f.index))
        frames.append(f.assign(**{CUTOFF_COLUMN: cut}))
    return StackedSet(
        features=pd.concat(frames),
        target=pd.concat(targets).rename("target").astype(np.float64),
        cutoffs=days,
        horizon_days=horizon_days,
    )


def check_trainable(ts: TrainingSet, *, min_customers: int, min_positive_target_share: float) -> None:
    """Refuse a training set a model cannot honestly learn from, with :class:`DataError` naming the cause:
    fewer than ``min_customers`` customers, non-finite features/target/baseline, a constant target, or a
    holdout target with fewer buyers than ``min_positive_target_share`` (near all zero: typically dates
    far after the bulk of the data or a cutoff too close to the end). The defaults live in
    :class:`clvdrift.config.TrainConfig`.
    """
    n = len(ts.features)
    where = f"cutoff {ts.cutoff.date()}"
    if n < min_customers:
        window = f"in the {ts.lookback_days}-day lookback window" if ts.lookback_days else "up to the cutoff"
        remedy = "a longer lookback window, " if ts.lookback_days else ""
        raise DataError(
            f"{where}: only {n} customer(s) have a transaction {window}; training needs "
            f"at least {min_customers} ({remedy}a later cutoff or more data)"
        )
    numeric = ts.features[[c for c in NUMERIC_FEATURES if c in ts.features.columns]]
    columns = {**{c: numeric[c] for c in numeric.columns}, "target": ts.target, "baseline": ts.baseline}
    for name, values in columns.items():
        bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
        if bad.any():
            first = values.index[np.flatnonzero(bad)[0]]
            raise DataError(
                f"{where}: {name} is not finite for {int(bad.sum())} customer(s), e.g. customer "
                f"{first}: {values.loc[first]!r}"
            )
    if ts.target_kind == "holdout":
        share = float((ts.target > 0).mean())
        if share < min_positive_target_share:
            raise DataError(
                f"{where}: only {share:.2%} of the {n:,} customers buy in the {ts.horizon_days} days after "
                f"it (need at least {min_positive_target_share:.2%}); a target this close to all-zero "
                "trains a useless model. Dates far after the rest of the data (see the cleaning findings) "
                "or a cutoff too close to the end? Pass an earlier --cutoff"
            )
    if ts.target.nunique() <= 1:
        raise DataError(
            f"{where}: the {ts.target_kind} target is the same ({ts.target.iloc[0]:g}) for all "
            f"{n:,} customers; there is nothing to learn"
        )


@dataclass
class CountryEncoder:
    """One-hot Country with the levels seen at fit; rare levels fold into ``Country_Other``.

    A level is kept when at least ``min_customers`` customers have it; column order is the kept
    levels sorted, then ``Country_Other`` (always present, so unseen countries have a place).
    """

    min_customers: int = TrainConfig().min_country_customers
    levels_: list[str] = field(default_factory=list)

    def fit(self, countries: Iterable[str]) -> CountryEncoder:
        counts = pd.Series(list(countries), dtype=object).value_counts()
        self.levels_ = sorted(str(c) for c in counts[counts >= self.min_customers].index)
        return self

    @property
    def columns(self) -> list[str]:
        return [f"{COUNTRY}_{c}" for c in self.levels_] + [COUNTRY_OTHER]

    def transform(self, countries: pd.Series) -> np.ndarray:
        position = {c: i for i, c in enumerate(self.levels_)}
        other = len(self.levels_)
        idx = np.fromiter(
            (position.get(str(c), other) for c in countries), dtype=np.int64, count=len(countries)
        )
        out = np.zeros((len(countries), other + 1))
        out[np.arange(len(countries)), idx] = 1.0
        return out


def design_matrix(features: pd.DataFrame, encoder: CountryEncoder) -> np.ndarray:
    """The model's input: numeric features then the one-hot country columns, as float64."""
    missing = [c for c in (*NUMERIC_FEATURES, COUNTRY) if c not in features.columns]
    if missing:
        raise DataError(f"features are missing column(s) {missing}")
    numeric = features[list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64)
    return np.hstack([numeric, encoder.transform(features[COUNTRY])])
