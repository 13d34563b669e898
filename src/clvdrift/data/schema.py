"""The canonical transaction schema, the column names accepted for it, and the bounds on its values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Canonical names: the UCI Online Retail ones, used everywhere after loading.
INVOICE = "InvoiceNo"
STOCK_CODE = "StockCode"
DESCRIPTION = "Description"
QUANTITY = "Quantity"
INVOICE_DATE = "InvoiceDate"
UNIT_PRICE = "UnitPrice"
CUSTOMER = "CustomerID"
COUNTRY = "Country"

CANONICAL_COLUMNS = (INVOICE, STOCK_CODE, DESCRIPTION, QUANTITY, INVOICE_DATE, UNIT_PRICE, CUSTOMER, COUNTRY)
REQUIRED_COLUMNS = (INVOICE, STOCK_CODE, QUANTITY, INVOICE_DATE, UNIT_PRICE, CUSTOMER, COUNTRY)

# Online Retail II (UCI id 502) spells three columns differently.
ALIASES = {"Invoice": INVOICE, "Price": UNIT_PRICE, "Customer ID": CUSTOMER}

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz", ".xlsx", ".xlsm", ".parquet", ".pq")

# Bounds that keep money exact: a line's value in integer thousandths is at most
# MAX_ABS_LINE_VALUE × 1000 = 1e15 < 2**53, exact in int64 and float64 alike. Per-customer sums are
# checked against MAX_EXACT_SUM (features.py), so no sum can wrap around int64 either.
MAX_ABS_QUANTITY = 10**9
MAX_ABS_UNIT_PRICE = 10**9
MAX_ABS_LINE_VALUE = 10**12
MAX_EXACT_SUM = 2**62  # |Σ| of integer thousandths (or quantities) above this is refused, not wrapped


def name_key(name: str) -> str:
    """A column name compared without case, spaces or underscores: ``customer_id`` ≡ ``CustomerID``."""
    return re.sub(r"[\s_]+", "", name).lower()


# every accepted spelling of a canonical column, keyed by name_key
NAME_KEYS = {name_key(n): n for n in CANONICAL_COLUMNS} | {name_key(a): n for a, n in ALIASES.items()}


def row_name(attrs: Mapping[str, Any], position: int) -> str:
    """How a user finds the row at ``position`` (0-based, in load order) in the source file.

    The loader records ``attrs["rows"]``: ``{"unit": "line", "first": 2}`` for a CSV (line 1 is the
    header), ``{"unit": "row", "first": 1}`` for Parquet, and for a workbook read from several sheets
    ``{"unit": "row", "first": 2, "sheets": [[name, row count], ...]}``. Frames made by hand (no
    ``attrs``) count data rows from 1.
    """
    rows = attrs.get("rows") or {"unit": "row", "first": 1}
    sheets = rows.get("sheets")
    if sheets:
        for sheet, count in sheets:
            if position < count:
                return f"sheet {sheet!r} {rows['unit']} {position + rows['first']}"
            position -= count
    return f"{rows['unit']} {position + rows['first']}"
