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

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from clvdrift.config import TrainConfig
from clvdrift.data import schema
from clvdrift.data.load import validate_amounts
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


def _window(tx: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp) -> pd.DataFrame:
    dates = tx[schema.INVOICE_DATE]
    mask = dates < end
    if start is not None:
        mask &= dates >= start
    return tx.loc[mask]


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


def _customers(tx: pd.DataFrame, transactions: pd.DataFrame) -> tuple[np.ndarray, pd.Index]:
    """Per row of ``tx``, its customer's position in the returned ids (sorted codes of ``transactions``)."""
    codes = tx[schema.CUSTOMER].cat.codes.to_numpy()
    if (codes < 0).any():
        raise DataError("features need clean transactions: some rows have no CustomerID")
    present, cust = np.unique(codes, return_inverse=True)
    return cust, transactions[schema.CUSTOMER].cat.categories[present].astype(str)


def _sum_by(cust: np.ndarray, values: np.ndarray, n: int, ids: pd.Index, what: str) -> np.ndarray:
    """Exact int64 sums of ``values`` per customer code; :class:`DataError` instead of a wrap-around
    when a customer's Σ|values| exceeds :data:`schema.MAX_EXACT_SUM`."""
    magnitude = np.bincount(cust, weights=np.abs(values).astype(np.float64), minlength=n)
    if n and magnitude.max() > schema.MAX_EXACT_SUM:
        worst = int(np.argmax(magnitude))
        lines = int(np.count_nonzero(cust == worst))
        raise DataError(
            f"customer {ids[worst]}: {what} summed over its {lines:,} line(s) reaches "
            f"{magnitude[worst]:.3g}, beyond the exact integer range (±{float(schema.MAX_EXACT_SUM):.3g}); "
            "values this large are errors"
        )
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, cust, values)
    return out


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
    start = _shift(snapshot, -lookback_days, "lookback_days") if lookback_days else None
    tx = _window(transactions, start, snapshot)
    cust, ids = _customers(tx, transactions)
    n = len(ids)
    qty, price = _amounts(tx)
    seconds = tx[schema.INVOICE_DATE].to_numpy(dtype="datetime64[s]").astype(np.int64)

    lines = np.bincount(cust, minlength=n)
    total_qty = _sum_by(cust, qty, n, ids, "Quantity")
    spend = _sum_by(cust, qty * price, n, ids, "Quantity × UnitPrice in thousandths")
    price_sum = _sum_by(cust, price, n, ids, "UnitPrice in thousandths")
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
        index=pd.Index(ids, name=schema.CUSTOMER),
    )
    return features.sort_index()


def revenue(transactions: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Revenue per customer from lines in ``[start, end)`` (customers with no line are absent)."""
    tx = _window(transactions, start, end)
    qty, price = _amounts(tx)
    cust, ids = _customers(tx, transactions)
    spend = _sum_by(cust, qty * price, len(ids), ids, "Quantity × UnitPrice in thousandths")
    return pd.Series(spend / _MILLI, index=ids).sort_index()


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
    transactions: pd.DataFrame,
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
    last_day = transactions[schema.INVOICE_DATE].max().normalize()
    first_day = transactions[schema.INVOICE_DATE].min().normalize()
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
    features = customer_features(transactions, snapshot, lookback_days=lookback_days)
    if features.empty:
        if lookback_days:
            first = (snapshot - pd.Timedelta(days=lookback_days)).date()
            raise DataError(
                f"no customer has a transaction in the {lookback_days}-day lookback window up to the "
                f"cutoff {cut.date()} ({first} to {cut.date()})"
            )
        raise DataError(f"no customer has a transaction before the cutoff {cut.date()}")
    if target == "holdout":
        y = revenue(transactions, snapshot, target_end + pd.Timedelta(days=1)).reindex(
            features.index, fill_value=0.0
        )
    else:
        y = formula_clv(features)
    baseline = revenue(transactions, baseline_start, snapshot).reindex(features.index, fill_value=0.0)
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
