"""Cleaning rules for retail transactions, applied in this order.

Each row is counted under the first rule that removes it, so the counts in the
:class:`CleaningReport` add up to ``rows_in - rows_out``.

============================  ==================================================================
rule                          removes
============================  ==================================================================
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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from clvdrift.data import schema

NON_PRODUCT_CODES = frozenset(
    {"POST", "DOT", "M", "m", "C2", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS",
     "ADJUST", "ADJUST2", "TEST001", "TEST002"}
)
NON_PRODUCT_PREFIXES = ("DCGS", "gift_")

RULES = (
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
class CleaningReport:
    """Rows removed per rule (in rule order) and what is left."""

    rows_in: int
    rows_out: int
    customers_out: int
    removed: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def clean_transactions(frame: pd.DataFrame) -> tuple[pd.DataFrame, CleaningReport]:
    """Apply the cleaning rules of this module; return the clean frame and the report.

    The input is not modified. The output has Quantity as int64 and a fresh RangeIndex.
    """
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

    apply("missing_customer", frame[schema.CUSTOMER].isna().to_numpy())
    required = [schema.INVOICE, schema.STOCK_CODE, schema.QUANTITY, schema.INVOICE_DATE, schema.UNIT_PRICE]
    apply("missing_value", frame[required].isna().any(axis=1).to_numpy())
    apply("cancelled_order", _cancelled_orders(frame, is_cancel, qty, removed))
    apply("cancellation", is_cancel)
    apply("non_positive_quantity", ~(qty > 0))
    apply("non_positive_price", ~(price > 0))
    apply("non_product_code", _category_mask(
        frame[schema.STOCK_CODE], lambda c: c.isin(NON_PRODUCT_CODES) | c.str.startswith(NON_PRODUCT_PREFIXES)
    ))
    kept_idx = np.flatnonzero(~removed)
    dup = frame.iloc[kept_idx].duplicated(keep="first").to_numpy()
    dup_mask = np.zeros(n, dtype=bool)
    dup_mask[kept_idx[dup]] = True
    apply("exact_duplicate", dup_mask)

    out = frame.loc[~removed].reset_index(drop=True)
    out[schema.QUANTITY] = out[schema.QUANTITY].astype(np.int64)
    out[schema.COUNTRY] = out[schema.COUNTRY].cat.add_categories(
        [c for c in ["Unspecified"] if c not in out[schema.COUNTRY].cat.categories]
    ).fillna("Unspecified")
    for name in (schema.INVOICE, schema.STOCK_CODE, schema.CUSTOMER, schema.COUNTRY):
        out[name] = out[name].cat.remove_unused_categories()
    out.attrs = dict(frame.attrs)
    report = CleaningReport(
        rows_in=n,
        rows_out=len(out),
        customers_out=int(out[schema.CUSTOMER].nunique()),
        removed=counts,
    )
    return out, report


def _category_mask(column: pd.Series, test) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Evaluate ``test`` once per category of a categorical column and spread it over the rows."""
    categories = column.cat.categories.to_series().astype(str).reset_index(drop=True)
    per_category = np.append(np.asarray(test(categories), dtype=bool), False)  # code -1 (missing) → False
    return per_category[column.cat.codes.to_numpy()]


def _cancelled_orders(frame: pd.DataFrame, is_cancel: np.ndarray, qty: np.ndarray,
                      removed: np.ndarray) -> np.ndarray:
    """Order lines cancelled by a later line of the same customer, stock code and quantity."""
    usable = ~removed
    keys = pd.DataFrame({
        "customer": frame[schema.CUSTOMER].cat.codes.to_numpy(),
        "stock": frame[schema.STOCK_CODE].cat.codes.to_numpy(),
        "qty": np.abs(qty),
        "date": frame[schema.INVOICE_DATE].to_numpy(),
        "row": np.arange(len(frame)),
    })
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
