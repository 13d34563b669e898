from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clvdrift.data import clean_transactions, load_transactions
from clvdrift.errors import ConfigError
from clvdrift.features import (
    COUNTRY_OTHER,
    NUMERIC_FEATURES,
    CountryEncoder,
    build_training_set,
    customer_features,
    design_matrix,
    formula_clv,
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
