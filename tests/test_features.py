from __future__ import annotations

import dataclasses
import datetime
import re

import numpy as np
import pandas as pd
import pytest

from clvdrift.config import TrainConfig
from clvdrift.data import clean_transactions, load_transactions
from clvdrift.errors import ConfigError, DataError
from clvdrift.features import (
    COUNTRY_OTHER,
    NUMERIC_FEATURES,
    CountryEncoder,
    TrainingSet,
    build_training_set,
    check_trainable,
    customer_features,
    design_matrix,
    formula_clv,
    parse_cutoff,
    revenue,
)
from helpers import tx_frame  # type: ignore[import-not-found]

# customer A: two invoices, three lines; customer B: one line; customer C buys only after the snapshot
ROWS = [
    ("1001", "P1", 2, "2011-01-01 10:00", 1.25, "A", "France"),
    ("1001", "P2", 4, "2011-01-01 10:00", 0.50, "A", "France"),
    ("1002", "P1", 10, "2011-01-20 18:30", 1.10, "A", "Germany"),
    ("1003", "P3", 1, "2011-01-15 09:00", 99.99, "B", "France"),
    ("1004", "P1", 5, "2011-02-10 12:00", 2.00, "C", "Spain"),
    ("1005", "P2", 3, "2011-02-15 12:00", 1.00, "A", "Germany"),
]
SNAPSHOT = pd.Timestamp("2011-02-01")


def test_features_match_hand_computed_values():
    f = customer_features(tx_frame(ROWS), SNAPSHOT)
    assert list(f.columns) == [*NUMERIC_FEATURES, "Country"]
    assert f.index.tolist() == ["A", "B"]  # C has nothing before the snapshot
    a, b = f.loc["A"], f.loc["B"]
    # A: last purchase 2011-01-20 18:30 → 11.2 days before 2011-02-01 → 11 whole days
    assert a["Recency"] == 11
    assert a["Frequency"] == 3
    assert a["Monetary"] == pytest.approx(2 * 1.25 + 4 * 0.50 + 10 * 1.10)  # 15.5
    assert a["TotalQuantity"] == 16
    assert a["AvgQuantity"] == pytest.approx(16 / 3)
    assert a["AvgUnitPrice"] == pytest.approx((1.25 + 0.50 + 1.10) / 3)
    assert a["NumOrders"] == 2 and a["NumProducts"] == 2
    assert a["Country"] == "Germany"  # country of the latest line
    # B: one line on 2011-01-15 09:00 → 16.6 days → 16
    assert (b["Recency"], b["Frequency"], b["Monetary"], b["NumOrders"], b["NumProducts"]) == (
        16,
        1,
        99.99,
        1,
        1,
    )


def test_monetary_is_exact_in_cents():
    rows = [("1", "P", 3, "2011-01-01", 0.1, "A", "UK")] * 1 + [("2", "P", 7, "2011-01-02", 0.7, "A", "UK")]
    f = customer_features(tx_frame(rows), SNAPSHOT)
    assert f.loc["A", "Monetary"] == 5.2  # 0.3 + 4.9 exactly, not 5.199999…


def test_lookback_window_uses_last_days_only():
    f = customer_features(tx_frame(ROWS), SNAPSHOT, lookback_days=20)  # from 2011-01-12
    assert f.loc["A", "Frequency"] == 1 and f.loc["A", "Monetary"] == pytest.approx(11.0)
    assert f.loc["B", "Frequency"] == 1
    with pytest.raises(ConfigError):
        customer_features(tx_frame(ROWS), SNAPSHOT, lookback_days=0)


def test_holdout_target_and_persistence_baseline():
    ts = build_training_set(tx_frame(ROWS), target="holdout", horizon_days=15, cutoff="2011-01-31")
    assert ts.snapshot == SNAPSHOT and ts.target_days_covered == 15
    # holdout 2011-02-01 … 2011-02-15: A buys 3 × 1.00; B buys nothing → 0; C is not a calibration customer
    assert ts.target.to_dict() == {"A": 3.0, "B": 0.0}
    # baseline: revenue in [2011-01-17, 2011-02-01): A 11.0, B nothing (its line is on 2011-01-15)
    assert ts.baseline.to_dict() == pytest.approx({"A": 11.0, "B": 0.0})


def test_default_cutoff_is_last_day_minus_horizon():
    ts = build_training_set(tx_frame(ROWS), horizon_days=10)
    assert ts.cutoff == pd.Timestamp("2011-02-05") and ts.snapshot == pd.Timestamp("2011-02-06")


def test_formula_target():
    ts = build_training_set(tx_frame(ROWS), target="formula", cutoff="2011-01-31")
    f = ts.features
    expected = f["Monetary"] * (f["Frequency"] / (f["Recency"] + 1)) * 365
    assert np.allclose(ts.target, expected)
    assert ts.target["A"] == pytest.approx(15.5 * 3 / 12 * 365)
    assert formula_clv(f).equals(expected)


def test_bad_target_and_cutoff():
    with pytest.raises(ConfigError, match="unknown target"):
        build_training_set(tx_frame(ROWS), target="ltv")
    with pytest.raises(ConfigError, match="outside the data"):
        build_training_set(tx_frame(ROWS), cutoff="2020-01-01")
    with pytest.raises(ConfigError, match="not a date"):
        build_training_set(tx_frame(ROWS), cutoff="soon")


def test_country_encoder_folds_rare_and_unseen_levels():
    enc = CountryEncoder(min_customers=2).fit(["UK", "UK", "France", "France", "Spain"])
    assert enc.columns == ["Country_France", "Country_UK", COUNTRY_OTHER]
    onehot = enc.transform(pd.Series(["UK", "Spain", "Japan", "France"]))
    assert onehot.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 1], [1, 0, 0]]
    f = customer_features(tx_frame(ROWS), SNAPSHOT)
    x = design_matrix(f, enc)
    assert x.shape == (2, len(NUMERIC_FEATURES) + 3)


def test_full_file_features(bundled):
    clean, _ = clean_transactions(load_transactions(bundled))
    ts = build_training_set(clean, horizon_days=91, cutoff="2011-09-09")
    assert 3_300 <= len(ts.features) <= 3_400
    assert 0.40 <= (ts.target == 0).mean() <= 0.46  # ~43% buy nothing in the holdout
    assert (ts.features["Recency"] >= 0).all() and (ts.features["Frequency"] >= 1).all()
    # all-history features grow with the calendar; a fixed lookback keeps snapshots comparable
    june = customer_features(clean, pd.Timestamp("2011-06-01"))
    sept = customer_features(clean, pd.Timestamp("2011-09-01"))
    assert sept["Frequency"].median() > june["Frequency"].median()
    june90 = customer_features(clean, pd.Timestamp("2011-06-01"), lookback_days=90)
    sept90 = customer_features(clean, pd.Timestamp("2011-09-01"), lookback_days=90)
    assert (
        abs(sept90["Frequency"].median() - june90["Frequency"].median())
        <= 0.25 * june90["Frequency"].median()
    )


# --- issue 6, B1/B2: no silent garbage training set -------------------------------------------------


def year_of_rows(start: str = "2020-07-01", days: int = 366, customers: int = 30) -> list[tuple]:
    """One line a day, customers in turn, prices in the hundreds (unlike the bundled file's)."""
    first = pd.Timestamp(start)
    return [
        (
            f"I{d}",
            f"K{d % 7}",
            1 + d % 3,
            (first + pd.Timedelta(days=d, hours=9)).strftime("%Y-%m-%d %H:%M"),
            120.0 + d % 11,
            f"u{d % customers}",
            "Chile",
        )
        for d in range(days)
    ]


TRAIN = TrainConfig()


def trainable(ts: TrainingSet) -> None:
    check_trainable(
        ts, min_customers=TRAIN.min_customers, min_positive_target_share=TRAIN.min_positive_target_share
    )


def test_cutoff_too_close_to_the_end_is_refused_naming_both_dates():
    tx = tx_frame(year_of_rows())  # last day 2021-07-01
    with pytest.raises(DataError) as exc:
        build_training_set(tx, horizon_days=90, cutoff="2021-06-23")
    assert str(exc.value) == (
        "cutoff 2021-06-23 + 90 days = 2021-09-21 is after the last transaction day 2021-07-01: the target "
        "would cover 8 of 90 days; pass an earlier --cutoff or a shorter --horizon-days"
    )
    ok = build_training_set(tx, horizon_days=8, cutoff="2021-06-23")  # exactly covered
    assert ok.target_days_covered == 8 and ok.describe()["target_days_covered"] == 8


def test_without_labels_the_set_says_how_many_days_its_target_covers():
    ts = build_training_set(
        tx_frame(year_of_rows()), horizon_days=90, cutoff="2021-06-23", require_labels=False
    )
    assert ts.target_days_covered == 8 and ts.horizon_days == 90
    assert ts.describe()["target_days_covered"] == 8
    at_end = build_training_set(
        tx_frame(year_of_rows()), horizon_days=30, cutoff="2021-07-01", require_labels=False
    )
    assert at_end.target_days_covered == 0 and (at_end.target == 0).all()
    assert build_training_set(tx_frame(year_of_rows()), target="formula").target_days_covered is None


def test_history_shorter_than_the_horizon_says_so_without_a_cutoff():
    with pytest.raises(
        DataError, match=r"spans 2020-07-01 to 2020-08-09 \(39 days\): a 60-day holdout target"
    ):
        build_training_set(tx_frame(year_of_rows(days=40)), horizon_days=60)


@pytest.mark.parametrize("horizon", [100_000, 10**6])
def test_horizon_beyond_pandas_dates_is_a_config_error(horizon):
    tx = tx_frame(year_of_rows())
    with pytest.raises(ConfigError, match="outside the dates pandas can hold"):
        build_training_set(tx, horizon_days=horizon, cutoff="2021-01-01")
    with pytest.raises(ConfigError, match="outside the dates pandas can hold"):
        build_training_set(tx, horizon_days=horizon, cutoff="2021-01-01", require_labels=False)
    with pytest.raises(ConfigError, match="lookback_days"):
        build_training_set(tx, target="formula", lookback_days=10 * horizon)


@pytest.mark.parametrize(
    "value",
    [
        "notadate",
        "9999-99-99",
        "20110909000000",
        "2011-02-30",
        "1500-01-01",
        "3000-01-01",
        "2011-9-9",
        20110909,
        pd.Timestamp("2011-09-09", tz="UTC"),
    ],
)
def test_anything_but_a_day_is_not_a_cutoff(value):
    with pytest.raises(ConfigError, match="cutoff"):
        parse_cutoff(value)
    with pytest.raises(ConfigError, match="cutoff"):
        build_training_set(tx_frame(year_of_rows()), cutoff=value)


def test_cutoff_days_are_parsed_to_midnight():
    expected = pd.Timestamp("2011-09-09")
    assert parse_cutoff(" 2011-09-09 ") == expected
    assert parse_cutoff(datetime.date(2011, 9, 9)) == expected
    assert parse_cutoff(pd.Timestamp("2011-09-09 17:30")) == expected


def test_check_trainable_accepts_a_sound_set():
    trainable(build_training_set(tx_frame(year_of_rows()), horizon_days=60))


def test_check_trainable_refuses_too_few_customers():
    ts = build_training_set(tx_frame(year_of_rows(customers=4)), horizon_days=60)
    with pytest.raises(DataError, match=f"only 4 customer.*at least {TRAIN.min_customers}"):
        trainable(ts)


def test_check_trainable_refuses_a_near_all_zero_target():
    rows = year_of_rows(start="2019-01-01", days=300, customers=250)  # ends 2019-10-27
    rows.append(("Z1", "K1", 1, "2020-01-30 10:00", 5.0, "u1", "Chile"))  # one buyer in the horizon
    ts = build_training_set(tx_frame(rows), horizon_days=90)
    assert (ts.target > 0).sum() == 1
    with pytest.raises(DataError, match=r"only 0\.40% of the 250 customers buy in the 90 days.*--cutoff"):
        trainable(ts)


def test_check_trainable_refuses_a_constant_target():
    rows = [
        (f"{m}{c}", "K", 2, f"2021-0{m}-1{c % 9} 10:00", 7.5, f"u{c}", "Peru")
        for m in (1, 6)
        for c in range(12)
    ]
    ts = build_training_set(tx_frame(rows), horizon_days=18, cutoff="2021-05-31")
    assert ts.target.nunique() == 1 and ts.target.iloc[0] > 0  # every customer buys the same in June
    with pytest.raises(DataError, match=r"the same .* for all 12 customers"):
        trainable(ts)


def test_check_trainable_refuses_non_finite_values():
    ts = build_training_set(tx_frame(year_of_rows()), horizon_days=60)
    features = ts.features.copy()
    features.loc["u3", "AvgUnitPrice"] = np.inf
    with pytest.raises(DataError, match=r"AvgUnitPrice is not finite for 1 customer.*u3"):
        trainable(dataclasses.replace(ts, features=features))
    with pytest.raises(DataError, match="target is not finite"):
        trainable(dataclasses.replace(ts, target=ts.target.where(ts.target.index != "u5", np.nan)))


def test_money_sums_that_would_overflow_int64_are_refused():
    # 5,000 lines of 10⁹ × 1,000 each: every value is within bounds, the sum (5·10¹⁸ thousandths) is not
    rows = [(f"I{i}", "K", 1_000_000_000, "2021-01-05 10:00", 1000.0, "whale", "Chile") for i in range(5_000)]
    rows.append(("J", "K", 1, "2021-01-06 10:00", 2.0, "minnow", "Chile"))
    tx = tx_frame(rows)
    with pytest.raises(
        DataError,
        match=r"customer whale: Quantity × UnitPrice .* 5,000 line\(s\) is beyond the exact integer range",
    ):
        customer_features(tx, pd.Timestamp("2021-02-01"))
    with pytest.raises(DataError, match="customer whale"):
        revenue(tx, pd.Timestamp("2021-01-01"), pd.Timestamp("2021-02-01"))


def test_large_but_exact_money_stays_exact():
    # 10 lines worth ~10¹² each: ~10¹⁶ thousandths, beyond float64's exact integers (2⁵³ ≈ 9·10¹⁵)
    rows = [(f"I{i}", "K", 999_999_999, "2021-01-05 10:00", 999.999, "big", "Chile") for i in range(10)]
    f = customer_features(tx_frame(rows), pd.Timestamp("2021-02-01"))
    assert f.loc["big", "TotalQuantity"] == 9_999_999_990
    assert f.loc["big", "Monetary"] == 10 * 999_999_999 * 999_999 / 1000


@pytest.mark.parametrize(
    ("column", "value"), [("Quantity", 9.2e18), ("Quantity", -1e16), ("UnitPrice", 1e15)]
)
def test_values_beyond_the_bounds_are_refused_by_cleaning_and_features(column, value):
    rows = year_of_rows(days=20)
    frame = tx_frame(rows)
    frame.loc[7, column] = value
    with pytest.raises(
        DataError, match=rf"column {column} has values beyond .* row 8: {re.escape(f'{value:.6g}')}"
    ):
        clean_transactions(frame)
    with pytest.raises(DataError, match=f"column {column}"):
        customer_features(frame, pd.Timestamp("2022-01-01"))


def test_the_exact_integer_limit_is_checked_exactly_and_names_the_first_customer_by_id() -> None:
    from clvdrift.features import _sum_by

    half = 2**61
    ids = pd.Index(["b", "a", "c"])
    # 2**62 + 500 rounds to 2**62 in float64: a float check let it through
    with pytest.raises(DataError, match=r"customer b: x summed over its 3 line\(s\) is beyond"):
        _sum_by(np.array([0, 0, 0]), np.array([half, half, 500]), 3, ids, "x")
    at_limit = _sum_by(np.array([0, 0, 2]), np.array([half, half, 7]), 3, ids, "x")
    assert at_limit.tolist() == [2**62, 0, 7]
    # two customers beyond by the same amount: the first by id is named, whatever its code
    with pytest.raises(DataError, match=r"customer a: x summed over its 6 line\(s\)"):
        _sum_by(np.array([0, 1, 0, 1]), np.array([2**62, 2**62, 1, 1]), 3, ids, "x", np.array([1, 3, 1, 3]))


def test_revenue_finds_customers_whose_ids_are_numbers() -> None:
    from clvdrift.features import TransactionLines

    rows = [
        ("I1", "K", 2, "2021-01-05 10:00", 1.5, 12346, "Chile"),
        ("I2", "K", 1, "2021-01-06 11:00", 3.0, 12347, "UK"),
    ]
    lines = TransactionLines.from_frame(tx_frame(rows))
    ids = pd.Index(["12346", "12347", "nobody"])
    assert lines.revenue(None, pd.Timestamp("2021-02-01"), ids).tolist() == [3000, 3000, 0]
