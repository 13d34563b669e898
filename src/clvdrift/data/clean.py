"""Cleaning rules for retail transactions, applied in this order.

Each row is counted under the first rule that removes it, so the counts in the
:class:`CleaningReport` add up to ``rows_in - rows_out``.

============================  ==================================================================
rule                          removes
============================  ==================================================================
``date_outlier``              rows dated far outside the file's dense date range (see below):
                              typing errors such as 2099 or 1900 that would move the default
                              cutoff and leave a target window with no data
``missing_customer``          rows without a CustomerID (guest checkouts: no customer to score)
``missing_value``             rows missing InvoiceNo, StockCode, Quantity, InvoiceDate or UnitPrice
``cancelled_order``           order lines netted out by a later cancellation line of the same
                              customer, stock code and quantity (paired one to one in time order);
                              e.g. the 80,995- and 74,215-unit orders cancelled minutes later
``cancellation``              the remaining cancellation lines (InvoiceNo starting with ``C``)
``non_positive_quantity``     Quantity ≤ 0 (stock write-offs, returns without a ``C`` invoice)
``non_positive_price``        UnitPrice ≤ 0 (free samples, bad-debt adjustments)
``non_product_code``          postage, fees and adjustments, not products: POST, DOT, M, m, C2,
                              D, S, B, BANK CHARGES, AMAZONFEE, CRUK, PADS, ADJUST, TEST001,
                              TEST002 and codes starting with DCGS or gift_
``exact_duplicate``           a row identical in every column to an earlier kept row
============================  ==================================================================

A missing Country becomes ``Unspecified`` (the data set's own level) rather than dropping the row.

**Date outliers.** Among the dated rows, sorted by date, look at the earliest and the latest
``max(1, 1%)`` of them: if the largest gap between consecutive dates there is longer than
``max(30 days, 10% of the span of the central 98% of dates)``, the rows beyond that gap are outliers.
Rows dated after tomorrow (by the clock of the machine, or ``today``) are outliers whatever their
number. They are removed under ``date_outlier`` and reported in :attr:`CleaningReport.findings` (how
many, example lines, the dense range) so that the user sees them: a model is never trained on them and
the default cutoff is computed from the dense range. A real business with a long pause just before the
end of its file would see those last rows flagged; the finding names them.

**Values.** Quantity, UnitPrice and their product are checked against the bounds of
:mod:`clvdrift.data.schema` (as the loader does), so a frame built without the loader cannot overflow
the integer money sums either. A frame with no row left raises :class:`DataError` naming the rules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from clvdrift.data import schema
from clvdrift.data.load import validate_amounts
from clvdrift.errors import DataError

NON_PRODUCT_CODES = frozenset(
    {
        "POST",
        "DOT",
        "M",
        "m",
        "C2",
        "D",
        "S",
        "B",
        "BANK CHARGES",
        "AMAZONFEE",
        "CRUK",
        "PADS",
        "ADJUST",
        "ADJUST2",
        "TEST001",
        "TEST002",
    }
)
NON_PRODUCT_PREFIXES = ("DCGS", "gift_")
DATE_OUTLIER_TAIL_SHARE = 0.01  # outliers are looked for among the earliest and latest 1% of dated rows
DATE_OUTLIER_MIN_GAP_DAYS = 30  # ... beyond a gap longer than this
DATE_OUTLIER_SPAN_SHARE = 0.10  # ... and longer than this share of the central 98% span
_MAX_EXAMPLES = 3
_DAY_NS = 86_400 * 10**9
_NAT = np.iinfo(np.int64).min

RULES = (
    "date_outlier",
    "missing_customer",
    "missing_value",
    "cancelled_order",
    "cancellation",
    "non_positive_quantity",
    "non_positive_price",
    "non_product_code",
    "exact_duplicate",
)


@dataclass(frozen=True)
class DateOutliers:
    """Rows dated far outside the dense date range (rule ``date_outlier``)."""

    before: int  # rows dated before the dense range
    after: int  # rows dated after it (or in the future)
    dense_first: str | None  # first and last timestamp of the rows kept by the rule (ISO), None if none
    dense_last: str | None
    examples: tuple[str, ...] = ()  # e.g. "line 17: 2099-01-01 00:00"


@dataclass(frozen=True)
class CleaningReport:
    """Rows removed per rule (in rule order), what is left, and findings the user must see.

    ``findings`` are one-line messages (date outliers today), meant to be shown by every adapter.
    """

    rows_in: int
    rows_out: int
    customers_out: int
    removed: dict[str, int] = field(default_factory=dict)
    date_outliers: DateOutliers | None = None
    findings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def clean_transactions(
    frame: pd.DataFrame, *, today: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, CleaningReport]:
    """Apply the cleaning rules of this module; return the clean frame and the report.

    ``today`` (default: the machine's date) only decides which dates are in the future. The input is
    not modified. The output has Quantity as int64 and a fresh RangeIndex. Raises :class:`DataError`
    when a value is beyond the bounds of :mod:`clvdrift.data.schema` or when no row is left.
    """
    source = str(frame.attrs.get("source", "transactions"))
    check_text_columns(frame, source)
    qty = frame[schema.QUANTITY].to_numpy(dtype=np.float64)
    price = frame[schema.UNIT_PRICE].to_numpy(dtype=np.float64)
    validate_amounts(qty, price, where=source, row=lambda i: schema.row_name(frame.attrs, i))
    ns = frame[schema.INVOICE_DATE].to_numpy(dtype="datetime64[ns]").view(np.int64)
    values, counts = np.unique(ns[ns != _NAT], return_counts=True)
    bounds = date_bounds(values, counts, today)
    outliers = outlier_mask(ns, bounds)
    examples = {
        side: [(schema.row_name(frame.attrs, i), int(ns[i])) for i in np.flatnonzero(mask)[:_MAX_EXAMPLES]]
        for side, mask in (("after", outliers & (ns > bounds[1])), ("before", outliers & (ns < bounds[0])))
    }
    date_report, findings = describe_outliers(values, counts, bounds, examples)
    out, removed = clean_rows(frame, outliers)
    if out.empty:
        raise nothing_left(source, len(frame), removed, findings)
    report = CleaningReport(
        rows_in=len(frame),
        rows_out=len(out),
        customers_out=int(out[schema.CUSTOMER].nunique()),
        removed=removed,
        date_outliers=date_report,
        findings=findings,
    )
    return out, report


def check_text_columns(frame: pd.DataFrame, source: str) -> None:
    """Refuse a frame whose text columns every engine would not read alike (possible only in a frame
    built through the API; files are read as text): ids equal as text but not as values (``1`` and
    ``"1"``: pandas counted two customers, DuckDB one), values that are not text (``True`` is ``True`` to
    pandas, ``true`` to DuckDB), an id column that is not categorical. Integer and float64 ids are
    accepted (every engine spells them alike)."""
    for name in (schema.CUSTOMER, schema.INVOICE, schema.STOCK_CODE, schema.COUNTRY, schema.DESCRIPTION):
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            values = column.cat.categories
        elif isinstance(column.dtype, pd.StringDtype):
            continue
        elif name == schema.DESCRIPTION:
            values = pd.Index(column.dropna().unique()) if column.dtype == object else pd.Index(column)
        else:
            raise DataError(
                f"{source}: column {name} is {column.dtype}, not categorical text as "
                "clvdrift.data.load_transactions gives it"
            )
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind in ("string", "empty"):
            continue
        if values.dtype.kind in "iu" or values.dtype == np.float64:  # spelt alike by every engine
            continue
        text = values.astype(str)
        twice = text.duplicated()
        if twice.any():
            a, b = values[text == text[twice][0]][:2]
            raise DataError(
                f"{source}: column {name} holds {a!r} and {b!r}, which are the same as text; "
                "give every value as text"
            )
        odd = next(v for v in values if not isinstance(v, str))
        raise DataError(
            f"{source}: column {name} holds {odd!r} ({type(odd).__name__}), not text; give every value as "
            "text"
        )


def nothing_left(source: str, rows: int, removed: dict[str, int], findings: tuple[str, ...]) -> DataError:
    """The error for an input the rules remove entirely."""
    rules = ", ".join(f"{k} {v:,}" for k, v in removed.items() if v)
    why = "".join(f"; {finding}" for finding in findings)
    return DataError(
        f"{source}: no usable transactions: the cleaning rules remove all {rows:,} rows ({rules}){why}"
    )


def clean_rows(frame: pd.DataFrame, outliers: np.ndarray) -> tuple[pd.DataFrame, dict[str, int]]:
    """Every rule on rows whose ``date_outlier`` mask is given (:func:`date_bounds` computes it from the
    whole input's dates; the other rules look at one customer's rows only, so an engine may apply this
    to each customer's rows separately, in input order): the kept rows and the count per rule."""
    n = len(frame)
    removed = np.zeros(n, dtype=bool)
    counts: dict[str, int] = {}

    def apply(rule: str, mask: np.ndarray) -> None:
        hit = mask & ~removed
        counts[rule] = int(hit.sum())
        removed[hit] = True

    qty = frame[schema.QUANTITY].to_numpy(dtype=np.float64)
    price = frame[schema.UNIT_PRICE].to_numpy(dtype=np.float64)
    is_cancel = _category_mask(frame[schema.INVOICE], lambda c: c.str.startswith("C"))
    apply("date_outlier", outliers)
    apply("missing_customer", frame[schema.CUSTOMER].isna().to_numpy())
    required = [schema.INVOICE, schema.STOCK_CODE, schema.QUANTITY, schema.INVOICE_DATE, schema.UNIT_PRICE]
    apply("missing_value", frame[required].isna().any(axis=1).to_numpy())
    apply("cancelled_order", _cancelled_orders(frame, is_cancel, qty, removed))
    apply("cancellation", is_cancel)
    apply("non_positive_quantity", ~(qty > 0))
    apply("non_positive_price", ~(price > 0))
    apply(
        "non_product_code",
        _category_mask(
            frame[schema.STOCK_CODE],
            lambda c: c.isin(NON_PRODUCT_CODES) | c.str.startswith(NON_PRODUCT_PREFIXES),
        ),
    )
    kept_idx = np.flatnonzero(~removed)
    dup = frame.iloc[kept_idx].duplicated(keep="first").to_numpy()
    dup_mask = np.zeros(n, dtype=bool)
    dup_mask[kept_idx[dup]] = True
    apply("exact_duplicate", dup_mask)
    out = frame.loc[~removed].reset_index(drop=True)
    out[schema.QUANTITY] = out[schema.QUANTITY].astype(np.int64)
    out[schema.COUNTRY] = (
        out[schema.COUNTRY]
        .cat.add_categories([c for c in ["Unspecified"] if c not in out[schema.COUNTRY].cat.categories])
        .fillna("Unspecified")
    )
    for name in (schema.INVOICE, schema.STOCK_CODE, schema.CUSTOMER, schema.COUNTRY):
        out[name] = out[name].cat.remove_unused_categories()
    out.attrs = dict(frame.attrs)
    return out, counts


def outlier_mask(ns: np.ndarray, bounds: tuple[int, int]) -> np.ndarray:
    """The ``date_outlier`` rule on dates as int64 ns (NaT: int64 min, never an outlier)."""
    return (ns != _NAT) & ((ns < bounds[0]) | (ns > bounds[1]))


def date_bounds(values: np.ndarray, counts: np.ndarray, today: pd.Timestamp | None) -> tuple[int, int]:
    """The first and last date (int64 ns) the ``date_outlier`` rule keeps, from the input's distinct
    dates (sorted) and how many rows have each (an engine counts them however it likes)."""
    low, high = _dense_bounds(values, counts)
    future = (pd.Timestamp(today) if today is not None else pd.Timestamp.now()).normalize() + pd.Timedelta(
        days=2
    )
    return low, min(high, future.value - 1)  # from the day after tomorrow on: in the future


def describe_outliers(
    values: np.ndarray,
    counts: np.ndarray,
    bounds: tuple[int, int],
    examples: dict[str, list[tuple[str, int]]],
) -> tuple[DateOutliers, tuple[str, ...]]:
    """The ``date_outlier`` report and findings from the distinct dates, their counts, the bounds, and
    the first rows (name, ns) of each side (``"after"``, ``"before"``; at most three, in input order)."""
    low, high = bounds
    kept = values[(values >= low) & (values <= high)]
    dense = (pd.Timestamp(kept[0]), pd.Timestamp(kept[-1])) if len(kept) else None
    sides = {"after": int(counts[values > high].sum()), "before": int(counts[values < low].sum())}
    flat: list[str] = []
    findings = []
    for side in ("after", "before"):
        lines = [f"{name}: {pd.Timestamp(v):%Y-%m-%d %H:%M}" for name, v in examples.get(side, [])]
        if lines:
            flat += lines
            findings.append(_finding(side, sides[side], lines, dense))
    report = DateOutliers(
        before=sides["before"],
        after=sides["after"],
        dense_first=dense[0].isoformat() if dense else None,
        dense_last=dense[1].isoformat() if dense else None,
        examples=tuple(flat),
    )
    return report, tuple(findings)


def _finding(side: str, count: int, lines: list[str], dense: tuple[pd.Timestamp, pd.Timestamp] | None) -> str:
    """The one-line message for the outliers on one side of the dense range."""
    tail = "errors? They are left out (cleaning rule date_outlier); correct their dates if the rows are real"
    if dense is None:  # every dated row is in the future
        return f"{count:,} row(s) dated in the future (e.g. {', '.join(lines)}): {tail}"
    edge = dense[1] if side == "after" else dense[0]
    future = " or in the future" if side == "after" else ""
    return (
        f"{count:,} row(s) dated {side} {edge:%Y-%m-%d} (e.g. {', '.join(lines)}), far {side} the other "
        f"rows' dates ({dense[0]:%Y-%m-%d} to {dense[1]:%Y-%m-%d}){future}: {tail}"
    )


def _dense_bounds(values: np.ndarray, counts: np.ndarray) -> tuple[int, int]:
    """The first and last kept date (int64 ns) from the sorted distinct dates and their row counts
    (module docstring): tails beyond a long gap are cut off. The same as looking at every row's date: a
    gap between two equal dates is 0, so only a gap between distinct dates can be the largest."""
    n = int(counts.sum())
    lowest, highest = np.iinfo(np.int64).min + 1, np.iinfo(np.int64).max
    if n < 3:
        return lowest, highest
    ends = np.cumsum(counts)  # the rows at positions < ends[i] (in date order) are dated ≤ values[i]

    def at(position: int) -> int:  # the distinct date of the row at ``position`` in date order
        return int(np.searchsorted(ends, position, side="right"))

    k = min(max(1, int(n * DATE_OUTLIER_TAIL_SHARE)), n - 2)
    span = values[at(int(0.99 * (n - 1)))] - values[at(int(np.ceil(0.01 * (n - 1))))]
    min_gap = max(DATE_OUTLIER_MIN_GAP_DAYS * _DAY_NS, DATE_OUTLIER_SPAN_SHARE * span)
    top = np.diff(values[at(n - k - 1) :])  # the gaps into the latest k rows
    low_gaps = np.diff(values[: at(k) + 1])  # the gaps out of the earliest k rows
    if len(top) and top.max() > min_gap:
        highest = int(values[at(n - k - 1) + int(np.argmax(top))])
    if len(low_gaps) and low_gaps.max() > min_gap:
        lowest = int(values[int(np.argmax(low_gaps)) + 1])
    return lowest, highest


def _category_mask(column: pd.Series, test) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Evaluate ``test`` once per category of a categorical column and spread it over the rows."""
    categories = column.cat.categories.to_series().astype(str).reset_index(drop=True)
    per_category = np.append(np.asarray(test(categories), dtype=bool), False)  # code -1 (missing) → False
    return per_category[column.cat.codes.to_numpy()]


def _cancelled_orders(
    frame: pd.DataFrame, is_cancel: np.ndarray, qty: np.ndarray, removed: np.ndarray
) -> np.ndarray:
    """Order lines cancelled by a later line of the same customer, stock code and quantity."""
    usable = ~removed
    keys = pd.DataFrame(
        {
            "customer": frame[schema.CUSTOMER].cat.codes.to_numpy(),
            "stock": frame[schema.STOCK_CODE].cat.codes.to_numpy(),
            "qty": np.abs(qty),
            "date": frame[schema.INVOICE_DATE].to_numpy(),
            "row": np.arange(len(frame)),
        }
    )
    orders = keys[usable & ~is_cancel & (qty > 0)].sort_values(["date", "row"], kind="stable")
    cancels = keys[usable & is_cancel & (qty < 0)].sort_values(["date", "row"], kind="stable")
    cols = ["customer", "stock", "qty"]
    orders = orders.assign(k=orders.groupby(cols, sort=False).cumcount())
    cancels = cancels.assign(k=cancels.groupby(cols, sort=False).cumcount())
    pairs = orders.merge(cancels, on=[*cols, "k"], suffixes=("_order", "_cancel"))
    pairs = pairs[pairs["date_order"] <= pairs["date_cancel"]]
    mask = np.zeros(len(frame), dtype=bool)
    mask[pairs["row_order"].to_numpy()] = True
    return mask
