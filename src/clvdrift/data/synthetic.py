"""Deterministic Online-Retail-like transactions of any size, for the engine tests and bench/scale.py.

:func:`retail_rows` makes the rows of one period in the loader's schema (:func:`clvdrift.data.
load_transactions`): invoices of about 20 lines, customers with gamma-distributed activity, about
50 lines per customer, a fifth of the rows without a customer (as in the real file), cancellations
of earlier lines, postage lines, exact duplicates, a season that peaks in November. With
``nasty=True`` it adds what an engine gets wrong first: a row dated 2099, missing values,
non-positive quantities and prices, a price of half a thousandth (rounding ties), sub-second
timestamps, one customer's lines at the same second in two countries, one-line customers and
unicode country names.

:func:`write_parts` writes a history of N rows as Parquet parts in the history's schema, part by part
(memory stays at one part), in time order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clvdrift.data import schema

COUNTRIES = (
    "United Kingdom",
    "Germany",
    "France",
    "EIRE",
    "Spain",
    "Netherlands",
    "Belgium",
    "Switzerland",
    "Portugal",
    "Australia",
)
_UNICODE = ("Côte d'Ivoire", "Österreich", "日本", "Россия")


def retail_rows(
    rows: int,
    *,
    seed: int = 0,
    start: str = "2010-12-01",
    days: int = 373,
    customers: int | None = None,
    nasty: bool = False,
    first_invoice: int = 500_000,
) -> pd.DataFrame:
    """About ``rows`` transaction lines dated in ``[start, start + days)`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_customers = customers or max(rows // 50, 10)
    n_invoices = max(rows // 20, 1)
    weight = rng.gamma(0.6, 1.0, n_customers)
    inv_customer = rng.choice(n_customers, size=n_invoices, p=weight / weight.sum())
    # a season that peaks in November: day of the period drawn with weight 1 + sin
    day_weight = 1.0 + 0.6 * np.sin(2 * np.pi * (np.arange(days) / 365.25 - 0.6))
    inv_day = rng.choice(days, size=n_invoices, p=day_weight / day_weight.sum())
    inv_minute = rng.integers(8 * 60, 18 * 60, n_invoices)
    t0 = np.datetime64(pd.Timestamp(start).normalize().to_datetime64(), "ns")
    inv_time = t0 + (inv_day * 1440 + inv_minute).astype("timedelta64[m]")
    sizes = rng.geometric(1 / 20, n_invoices)
    line_invoice = np.repeat(np.arange(n_invoices), sizes)[:rows]
    n = len(line_invoice)
    stock = np.minimum(rng.zipf(1.3, n), 4000)
    price = np.round(np.exp(rng.normal(0.8, 0.9, n)), 2)
    qty = rng.geometric(0.15, n).astype(np.float64)
    customer_country = np.where(
        rng.random(n_customers) < 0.9, 0, rng.integers(1, len(COUNTRIES), n_customers)
    )
    cust = inv_customer[line_invoice]
    frame = pd.DataFrame(
        {
            schema.INVOICE: (first_invoice + line_invoice).astype(str).astype(object),
            schema.STOCK_CODE: (20000 + stock).astype(str).astype(object),
            schema.DESCRIPTION: "ITEM",
            schema.QUANTITY: qty,
            schema.INVOICE_DATE: inv_time[line_invoice],
            schema.UNIT_PRICE: price,
            schema.CUSTOMER: (12000 + cust).astype(str).astype(object),
            schema.COUNTRY: np.asarray(COUNTRIES, dtype=object)[customer_country[cust]],
        }
    )
    guest = rng.random(n_invoices) < 0.2  # guest checkouts: whole invoices without a customer
    frame.loc[guest[line_invoice], schema.CUSTOMER] = None
    postage = rng.random(n) < 0.005
    frame.loc[postage, schema.STOCK_CODE] = "POST"
    # cancellations of 2% of the lines, 0-3 days later, and 1% exact duplicates
    cancel = np.flatnonzero(rng.random(n) < 0.02)
    cancelled = frame.iloc[cancel].copy()
    cancelled[schema.INVOICE] = "C" + cancelled[schema.INVOICE].astype(str)
    cancelled[schema.QUANTITY] = -cancelled[schema.QUANTITY]
    cancelled[schema.INVOICE_DATE] = cancelled[schema.INVOICE_DATE] + pd.to_timedelta(
        rng.integers(0, 3 * 1440, len(cancel)), unit="m"
    )
    dup = frame.iloc[np.flatnonzero(rng.random(n) < 0.01)]
    parts = [frame, cancelled, dup]
    if nasty:
        parts.append(_nasty(pd.Timestamp(start), days, rng))
    out = pd.concat(parts, ignore_index=True)
    out = out.iloc[: max(rows, 1)] if not nasty else out
    return _loader_dtypes(out)


def _nasty(start: pd.Timestamp, days: int, rng: np.random.Generator) -> pd.DataFrame:
    mid = start + pd.Timedelta(days=days // 2, hours=10)
    rows = [
        # a typing error dated 2099, and one with no date
        ("900001", "30001", 2.0, pd.Timestamp("2099-01-01 10:00"), 1.5, "99001", "United Kingdom"),
        ("900002", "30002", 1.0, pd.NaT, 1.5, "99001", "United Kingdom"),
        # missing values, non-positive quantity and price, a price of half a thousandth
        (None, "30003", 1.0, mid, 1.0, "99002", "France"),
        ("900003", None, 1.0, mid, 1.0, "99002", "France"),
        ("900004", "30004", 0.0, mid, 1.0, "99002", "France"),
        ("900005", "30005", 3.0, mid, -2.0, "99002", "France"),
        ("900006", "30006", 4.0, mid, 0.0005, "99002", "France"),
        ("900006", "30007", 4.0, mid, 0.0015, "99002", "France"),
        ("900006", "30008", 4.0, mid, 0.0025, "99002", None),
        # sub-second timestamps, and one customer's lines at the same second in two countries
        ("900007", "30009", 1.0, mid + pd.Timedelta(milliseconds=999), 2.0, "99003", "Germany"),
        ("900008", "30010", 1.0, mid + pd.Timedelta(milliseconds=1), 2.0, "99003", "Spain"),
        ("900009", "30011", 1.0, mid + pd.Timedelta(milliseconds=500), 2.0, "99003", "EIRE"),
        # a cancellation before its order (not netted), an unmatched one, and a netted pair
        ("C900010", "30012", -5.0, mid, 1.0, "99004", "Belgium"),
        ("900011", "30012", 5.0, mid + pd.Timedelta(hours=1), 1.0, "99004", "Belgium"),
        ("C900012", "30013", -7.0, mid, 1.0, "99004", "Belgium"),
        ("900013", "30014", 2.0, mid - pd.Timedelta(days=3), 1.0, "99004", "Belgium"),
        ("C900014", "30014", -2.0, mid - pd.Timedelta(days=2), 1.0, "99004", "Belgium"),
        # a duplicate pair, gift codes, and customers with one line in unicode countries
        ("900015", "30015", 1.0, mid, 3.0, "99005", "Portugal"),
        ("900015", "30015", 1.0, mid, 3.0, "99005", "Portugal"),
        ("900016", "gift_0001_10", 1.0, mid, 10.0, "99005", "Portugal"),
        ("900017", "DCGS0003", 1.0, mid, 10.0, "99005", "Portugal"),
    ]
    for i, country in enumerate(_UNICODE):
        when = start + pd.Timedelta(days=int(rng.integers(0, days)), minutes=int(rng.integers(0, 1440)))
        rows.append((f"9001{i:02d}", "30016", 1.0, when, 4.25, f"9910{i}", country))
    frame = pd.DataFrame(
        rows,
        columns=[
            schema.INVOICE,
            schema.STOCK_CODE,
            schema.QUANTITY,
            schema.INVOICE_DATE,
            schema.UNIT_PRICE,
            schema.CUSTOMER,
            schema.COUNTRY,
        ],
    )
    frame[schema.DESCRIPTION] = None
    frame.loc[0, schema.DESCRIPTION] = "ÉTAGÈRE ✓"
    frame[schema.INVOICE_DATE] = pd.to_datetime(frame[schema.INVOICE_DATE])
    return frame


def _loader_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """The loader's dtypes: categorical text, float amounts, datetime64[ns], Arrow-string Description."""
    out = pd.DataFrame(
        {
            schema.INVOICE: frame[schema.INVOICE].astype("category"),
            schema.STOCK_CODE: frame[schema.STOCK_CODE].astype("category"),
            schema.DESCRIPTION: frame[schema.DESCRIPTION].astype("string[pyarrow]"),
            schema.QUANTITY: frame[schema.QUANTITY].astype(np.float64),
            schema.INVOICE_DATE: frame[schema.INVOICE_DATE].astype("datetime64[ns]"),
            schema.UNIT_PRICE: frame[schema.UNIT_PRICE].astype(np.float64),
            schema.CUSTOMER: frame[schema.CUSTOMER].astype("category"),
            schema.COUNTRY: frame[schema.COUNTRY].astype("category"),
        }
    )
    out.attrs["source"] = "synthetic transactions"
    return out


def write_parts(
    root: Path, rows: int, *, rows_per_part: int = 2_000_000, seed: int = 0, days: int = 730
) -> list[Path]:
    """A history of about ``rows`` lines over ``days`` days as Parquet parts in ``root`` (one period
    each, in time order, the same customers throughout); the paths in read order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clvdrift.data.history import HISTORY_SCHEMA, ROW_HASH

    root.mkdir(parents=True, exist_ok=True)
    n_parts = max(1, -(-rows // rows_per_part))
    per_part_days = max(1, days // n_parts)
    target = pa.schema([f for f in HISTORY_SCHEMA if f.name != ROW_HASH])
    paths = []
    for k in range(n_parts):
        size = min(rows_per_part, rows - k * rows_per_part)
        start = pd.Timestamp("2010-12-01") + pd.Timedelta(days=k * per_part_days)
        frame = retail_rows(
            size,
            seed=seed * 1_000_003 + k,
            start=str(start.date()),
            days=per_part_days,
            customers=max(rows // 50, 10),
            first_invoice=1_000_000 + k * (rows_per_part // 10),
        )
        table = pa.Table.from_pandas(frame, preserve_index=False).select(target.names).cast(target)
        path = root / f"part-{k:04d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths
