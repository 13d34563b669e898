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

Money is summed in integer thousandths and time in integer seconds, divided once at the end, so
another engine (DuckDB, Dask) can reproduce the numbers exactly.

Targets: ``holdout`` — revenue in the H days after the snapshot (0 for customers who buy nothing);
``formula`` — the seed's ``Monetary × Frequency / (Recency + 1) × 365``, computed from the model's own
inputs (kept for fidelity; it says nothing about the future). The persistence baseline is each
customer's revenue in the last H days before the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from clvdrift.data import schema
from clvdrift.errors import ConfigError, DataError

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
TARGETS = ("holdout", "formula")
_DAY = 86_400
_MILLI = 1000


def _window(tx: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp) -> pd.DataFrame:
    dates = tx[schema.INVOICE_DATE]
    mask = dates < end
    if start is not None:
        mask &= dates >= start
    return tx.loc[mask]


def _price_milli(tx: pd.DataFrame) -> np.ndarray:
    return np.round(tx[schema.UNIT_PRICE].to_numpy(dtype=np.float64) * _MILLI).astype(np.int64)


def _distinct_per_customer(cust: np.ndarray, other: np.ndarray, n_cust: int) -> np.ndarray:
    width = np.int64(max(int(other.max()) + 1, 1)) if len(other) else np.int64(1)
    pairs = np.unique(cust.astype(np.int64) * width + other.astype(np.int64))
    return np.bincount((pairs // width).astype(np.int64), minlength=n_cust)


def customer_features(
    transactions: pd.DataFrame, snapshot: pd.Timestamp, *, lookback_days: int | None = None
) -> pd.DataFrame:
    """Features per customer (index ``CustomerID``) from clean transactions before ``snapshot``.

    Columns: :data:`NUMERIC_FEATURES` then ``Country``; rows sorted by customer id.
    """
    snapshot = pd.Timestamp(snapshot)
    if lookback_days is not None and lookback_days < 1:
        raise ConfigError(f"lookback_days must be ≥ 1, got {lookback_days}")
    start = snapshot - pd.Timedelta(days=lookback_days) if lookback_days else None
    tx = _window(transactions, start, snapshot)
    codes = tx[schema.CUSTOMER].cat.codes.to_numpy()
    if (codes < 0).any():
        raise DataError("customer_features needs clean transactions: some rows have no CustomerID")
    present, cust = np.unique(codes, return_inverse=True)
    n = len(present)
    qty = tx[schema.QUANTITY].to_numpy(dtype=np.int64)
    price = _price_milli(tx)
    seconds = tx[schema.INVOICE_DATE].to_numpy(dtype="datetime64[s]").astype(np.int64)

    lines = np.bincount(cust, minlength=n)
    # integer sums: bincount adds in float64, exact while totals stay below 2**53
    total_qty = np.rint(np.bincount(cust, weights=qty, minlength=n)).astype(np.int64)
    spend = np.rint(np.bincount(cust, weights=qty * price, minlength=n)).astype(np.int64)
    price_sum = np.rint(np.bincount(cust, weights=price, minlength=n)).astype(np.int64)
    snap_s = int(np.datetime64(snapshot.to_datetime64(), "s").astype(np.int64))

    # last line per customer: order rows by (customer, time, position) and take each group's last
    order = np.lexsort((np.arange(len(cust)), seconds, cust))
    last_rows = order[np.flatnonzero(np.r_[cust[order][1:] != cust[order][:-1], n > 0])]
    last = seconds[last_rows]
    country = tx[schema.COUNTRY].to_numpy()[last_rows]

    features = pd.DataFrame(
        {
            "Recency": (snap_s - last) // _DAY,
            "Frequency": lines,
            "Monetary": spend / _MILLI,
            "AvgQuantity": np.divide(total_qty, lines, where=lines > 0, out=np.zeros(n)),
            "TotalQuantity": total_qty,
            "AvgUnitPrice": np.divide(price_sum / _MILLI, lines, where=lines > 0, out=np.zeros(n)),
            "NumOrders": _distinct_per_customer(cust, tx[schema.INVOICE].cat.codes.to_numpy(), n),
            "NumProducts": _distinct_per_customer(cust, tx[schema.STOCK_CODE].cat.codes.to_numpy(), n),
            COUNTRY: pd.Series(country, dtype=object).astype(str).to_numpy(),
        },
        index=pd.Index(transactions[schema.CUSTOMER].cat.categories[present].astype(str), name=schema.CUSTOMER),
    )
    return features.sort_index()


def revenue(transactions: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Revenue per customer from lines in ``[start, end)`` (customers with no line are absent)."""
    tx = _window(transactions, start, end)
    spend = tx[schema.QUANTITY].to_numpy(dtype=np.int64) * _price_milli(tx)
    ids = tx[schema.CUSTOMER].astype(str).to_numpy()
    return pd.Series(spend, index=ids).groupby(level=0).sum() / _MILLI


def formula_clv(features: pd.DataFrame) -> pd.Series:
    """The seed's CLV: ``Monetary × (Frequency / (Recency + 1)) × 365``."""
    return features["Monetary"] * (features["Frequency"] / (features["Recency"] + 1)) * 365


@dataclass(frozen=True)
class TrainingSet:
    """Features, target and persistence baseline for one snapshot, aligned on customer id."""

    features: pd.DataFrame
    target: pd.Series
    baseline: pd.Series
    target_kind: str
    snapshot: pd.Timestamp
    horizon_days: int
    lookback_days: int | None
    cutoff: pd.Timestamp

    def describe(self) -> dict[str, object]:
        return {
            "target": self.target_kind,
            "cutoff": self.cutoff.date().isoformat(),
            "snapshot": self.snapshot.isoformat(),
            "horizon_days": self.horizon_days,
            "lookback_days": self.lookback_days,
            "customers": len(self.features),
            "zero_target_share": round(float((self.target == 0).mean()), 4),
        }


def build_training_set(
    transactions: pd.DataFrame,
    *,
    target: str = "holdout",
    horizon_days: int = 90,
    cutoff: str | pd.Timestamp | None = None,
    lookback_days: int | None = None,
) -> TrainingSet:
    """Features and target from clean transactions.

    ``cutoff`` is the last calendar day of the calibration window (features); the holdout target is
    the revenue in the ``horizon_days`` days after it. Default cutoff: the last day in the data minus
    ``horizon_days`` for ``holdout``, the last day in the data for ``formula``.
    """
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    if horizon_days < 1:
        raise ConfigError(f"horizon_days must be ≥ 1, got {horizon_days}")
    if transactions.empty:
        raise DataError("no transactions left to build features from")
    last_day = transactions[schema.INVOICE_DATE].max().normalize()
    first_day = transactions[schema.INVOICE_DATE].min().normalize()
    if cutoff is None:
        cut = last_day - pd.Timedelta(days=horizon_days) if target == "holdout" else last_day
    else:
        try:
            cut = pd.Timestamp(cutoff).normalize()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"cutoff {cutoff!r} is not a date (expected YYYY-MM-DD)") from exc
    if not first_day <= cut <= last_day:
        raise ConfigError(f"cutoff {cut.date()} is outside the data ({first_day.date()} to {last_day.date()})")
    snapshot = cut + pd.Timedelta(days=1)
    horizon = pd.Timedelta(days=horizon_days)
    features = customer_features(transactions, snapshot, lookback_days=lookback_days)
    if features.empty:
        raise DataError(f"no customer has a transaction before the cutoff {cut.date()}")
    if target == "holdout":
        y = revenue(transactions, snapshot, snapshot + horizon).reindex(features.index, fill_value=0.0)
    else:
        y = formula_clv(features)
    baseline = revenue(transactions, snapshot - horizon, snapshot).reindex(features.index, fill_value=0.0)
    return TrainingSet(
        features=features,
        target=y.rename("target").astype(np.float64),
        baseline=baseline.rename("baseline").astype(np.float64),
        target_kind=target,
        snapshot=snapshot,
        horizon_days=horizon_days,
        lookback_days=lookback_days,
        cutoff=cut,
    )


@dataclass
class CountryEncoder:
    """One-hot Country with the levels seen at fit; rare levels fold into ``Country_Other``.

    A level is kept when at least ``min_customers`` customers have it; column order is the kept
    levels sorted, then ``Country_Other`` (always present, so unseen countries have a place).
    """

    min_customers: int = 10
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
        idx = np.fromiter((position.get(str(c), other) for c in countries), dtype=np.int64, count=len(countries))
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
