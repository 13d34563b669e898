"""``predict`` and the seasonal factor against hand-computed small histories, the stacked training set's
no-leakage rule, and the CLI's output file.

The model here is a family of its own (``LastQuarter``): it predicts each customer's revenue of the last
90 days, read from the features the pipeline computed, so every number below can be worked out by hand
from the transactions.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from clvdrift.config import TrainConfig
from clvdrift.data import clean_transactions, load_transactions, schema
from clvdrift.errors import ConfigError
from clvdrift.features import TransactionLines, stacked_cutoffs, stacked_training_set
from clvdrift.model.base import ClvModel, TrainingRecord
from clvdrift.model.season import seasonal_factor
from clvdrift.pipeline.predict import OUTPUT_COLUMNS, predict_customers
from clvdrift.pipeline.train import fit_on_cutoff
from helpers import synthetic_history, tx_frame


class LastQuarter(ClvModel):
    """Predicts ``Revenue90d`` (a test family: the number is known by hand)."""

    family: ClassVar[str] = "last-quarter"
    files: ClassVar[tuple[str, ...]] = ("model",)

    def training_cutoffs(self, cutoff, first_day):
        return (cutoff,)

    def fit(self, features, target):
        return self

    def predict(self, features):
        return features["Revenue90d"].to_numpy(dtype=np.float64)

    @property
    def input_features(self):
        return ["Revenue90d"]

    @property
    def params(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, object]:
        return {"model": None}

    def document(self) -> dict[str, Any]:
        return {"family": self.family}

    @classmethod
    def from_state(cls, objects: Mapping[str, object], document: Mapping[str, Any]) -> LastQuarter:
        return cls()


RECORD = TrainingRecord(target="holdout", cutoff=None, horizon_days=90)


def lines_of(rows: list[tuple]) -> TransactionLines:
    return TransactionLines.from_frame(tx_frame(rows))


def test_predict_matches_a_hand_computed_history():
    rows = [
        # invoice, stock, qty, date, price, customer, country
        ("1", "A", 2, "2024-01-05 10:00", 10.0, "c1", "Peru"),  # 20, older than 90 days at the cutoff
        ("2", "A", 1, "2024-05-01 09:00", 7.5, "c1", "Peru"),  # 7.5
        ("3", "B", 3, "2024-06-29 23:59", 2.25, "c1", "Peru"),  # 6.75, the cutoff day itself
        ("4", "A", 4, "2024-06-30 00:00", 100.0, "c1", "Peru"),  # after the cutoff: not read
        ("5", "C", 10, "2024-04-02 12:00", 0.5, "c2", "Chad"),  # 5
        ("6", "C", 1, "2024-02-01 12:00", 3.0, "c3", "Chad"),  # 3, older than 90 days
    ]
    frame, season = predict_customers(lines_of(rows), LastQuarter(), RECORD, cutoff="2024-06-29")
    # 90 days before the snapshot 2024-06-30 is 2024-04-01: c1 7.5 + 6.75, c2 5, c3 nothing recent
    assert frame["predicted_revenue"].to_dict() == {"c1": 14.25, "c2": 5.0, "c3": 0.0}
    assert set(frame["cutoff"]) == {"2024-06-29"} and set(frame["features_from"]) == {"2024-01-05"}
    assert season["status"] == "uncalibrated" and "uncalibrated" in season["reason"]
    # the default cutoff is the last day: the line of 2024-06-30 counts then
    later, _ = predict_customers(lines_of(rows), LastQuarter(), RECORD)
    assert later.loc["c1", "predicted_revenue"] == 414.25 and set(later["cutoff"]) == {"2024-06-30"}
    for outside in ("2023-12-31", "2024-07-01"):  # before the first day, after the last one
        with pytest.raises(ConfigError, match="is outside the data"):
            predict_customers(lines_of(rows), LastQuarter(), RECORD, cutoff=outside)


def _two_years(first_day: str) -> list[tuple]:
    """One customer buying 10.0 on the 1st of every month from ``first_day`` to 2025-12-01, and 30.0
    more in each October: last year's season is worth more than the quarter before it."""
    rows = []
    for n, day in enumerate(pd.date_range(first_day, "2025-12-01", freq="MS")):
        rows.append((str(n), "A", 1, f"{day.date()} 12:00", 10.0, "c1", "Peru"))
        if day.month == 10:
            rows.append((f"{n}x", "B", 1, f"{day.date()} 13:00", 30.0, "c1", "Peru"))
    return rows


def test_the_seasonal_factor_needs_a_year_and_h_and_is_last_years_actual_over_predicted():
    cutoff = pd.Timestamp("2025-09-15")
    # history from 2024-07-01: 442 days up to the cutoff < 365 + 90 = 455 → no factor
    short = seasonal_factor(LastQuarter(), lines_of(_two_years("2024-07-01")), cutoff, 90)
    assert short.factor is None and short.status == "uncalibrated" and "455" in short.reason
    # from 2024-06-01: 472 days → the factor of last year's window (2024-09-15, 2024-12-14]
    full = seasonal_factor(LastQuarter(), lines_of(_two_years("2024-06-01")), cutoff, 90)
    # predicted at 2024-09-15: revenue of 2024-06-17 … 2024-09-15 = Jul, Aug, Sep = 30.0
    # actual in the 90 days from 2024-09-16: Oct 10 + 30, Nov 10, Dec 10 = 60.0
    assert full.status == "calibrated" and full.factor == pytest.approx(2.0)
    assert (full.predicted_total, full.actual_total) == (30.0, 60.0)
    # predict applies it: this year's last quarter (Jul, Aug, Sep = 30) × 2
    frame, season = predict_customers(
        lines_of(_two_years("2024-06-01")), LastQuarter(), RECORD, cutoff="2025-09-15"
    )
    assert season["factor"] == pytest.approx(2.0)
    assert frame.loc["c1", "predicted_revenue"] == pytest.approx(60.0)
    assert set(frame["total_status"]) == {"calibrated"}


def test_a_horizon_longer_than_a_year_has_no_seasonal_factor_however_long_the_history():
    lines = lines_of(_two_years("2022-01-01"))  # ~4 years up to the cutoff: span is not the reason
    for horizon in (366, 400):
        season = seasonal_factor(LastQuarter(), lines, pd.Timestamp("2025-11-30"), horizon)
        assert season.factor is None and season.status == "uncalibrated"
        assert f"{horizon}-day horizon is longer than a year" in season.reason
    assert seasonal_factor(LastQuarter(), lines, pd.Timestamp("2025-11-30"), 365).status == "calibrated"


class Tenure(LastQuarter):
    """Predicts ``TenureDays``: with a lookback of L days no customer's tenure exceeds L."""

    family: ClassVar[str] = "tenure"

    def predict(self, features):
        return features["TenureDays"].to_numpy(dtype=np.float64) + 1.0


def test_the_seasonal_factor_uses_the_models_own_lookback_features():
    lines, cutoff = lines_of(_two_years("2023-01-01")), pd.Timestamp("2025-09-15")
    every = seasonal_factor(Tenure(), lines, cutoff, 90)
    windowed = seasonal_factor(Tenure(), lines, cutoff, 90, lookback_days=60)
    # last year's window starts 2024-09-15: all-history tenure from 2023-01-01 is ~620 days, a 60-day
    # lookback sees the customer's orders of the last 60 days only (tenure < 60)
    assert every.actual_total == windowed.actual_total == 60.0  # the same window's revenue
    assert every.predicted_total > 600 and windowed.predicted_total < 61
    assert windowed.factor == pytest.approx(60.0 / windowed.predicted_total)


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("leak") / "history.csv"
    synthetic_history(path, customers=150, start="2021-02-01", days=400, seed=5)
    return clean_transactions(load_transactions(path))[0]


def rewrite_after(clean: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """Every line after ``day``: 7 × the quantity, another price, moved to another customer."""
    after = (clean[schema.INVOICE_DATE] >= day + pd.Timedelta(days=1)).to_numpy()
    customers = clean[schema.CUSTOMER].cat
    codes = customers.codes.to_numpy()
    moved = np.where(after, (codes + 3) % len(customers.categories), codes)
    return clean.assign(
        **{
            schema.QUANTITY: clean[schema.QUANTITY].where(~after, clean[schema.QUANTITY] * 7),
            schema.UNIT_PRICE: clean[schema.UNIT_PRICE].where(~after, clean[schema.UNIT_PRICE] + 1.5),
            schema.CUSTOMER: pd.Categorical.from_codes(moved, categories=customers.categories),
        }
    )


def test_a_stacked_training_set_reads_nothing_after_its_newest_labels(history):
    config = TrainConfig(horizon_days=45)
    lines = TransactionLines.from_frame(history)
    cutoff = lines.first_day() + pd.Timedelta(days=250)
    cutoffs = stacked_cutoffs(cutoff, lines.first_day(), step_days=7, min_history_days=60, max_cutoffs=99)
    assert len(cutoffs) > 20
    labels_end = cutoff + pd.Timedelta(days=45)
    rewritten = TransactionLines.from_frame(rewrite_after(history, labels_end))
    a = stacked_training_set(lines, cutoffs, horizon_days=45)
    b = stacked_training_set(rewritten, cutoffs, horizon_days=45)
    pd.testing.assert_frame_equal(a.features, b.features)
    pd.testing.assert_series_equal(a.target, b.target)
    # and the fitted default model is the same, byte for byte
    fit_a, _ = fit_on_cutoff(lines, cutoff, config)
    fit_b, _ = fit_on_cutoff(rewritten, cutoff, config)
    assert pickle.dumps(fit_a.state()) == pickle.dumps(fit_b.state())
    # a rewrite one day earlier does reach the set (the test can fail)
    earlier = TransactionLines.from_frame(rewrite_after(history, labels_end - pd.Timedelta(days=1)))
    assert not stacked_training_set(earlier, cutoffs, horizon_days=45).target.equals(a.target)


def test_predict_writes_the_documented_columns(history, tmp_path):
    from clvdrift.pipeline.predict import _write

    frame, _ = predict_customers(TransactionLines.from_frame(history), LastQuarter(), RECORD)
    frame["model_version"] = "v1"
    for name in ("p.csv", "p.parquet"):
        _write(frame, tmp_path / name)
        back = pd.read_csv(tmp_path / name) if name.endswith("csv") else pd.read_parquet(tmp_path / name)
        assert tuple(back.columns) == OUTPUT_COLUMNS and len(back) == len(frame)
    with pytest.raises(ConfigError, match=r"must end in \.csv or \.parquet"):
        _write(frame, tmp_path / "p.json")


def test_predict_removes_what_a_killed_predict_left_and_names_an_unwritable_out(history, tmp_path):
    import subprocess
    from pathlib import Path

    from clvdrift.errors import ClvdriftError
    from clvdrift.io import host_tag
    from clvdrift.pipeline.predict import _write

    frame, _ = predict_customers(TransactionLines.from_frame(history), LastQuarter(), RECORD)
    frame["model_version"] = "v1"
    dead = subprocess.Popen(["true"])
    dead.wait()
    tag = host_tag()  # this host's, as atomic_write names its temporary files
    left = tmp_path / f".p.csv.{dead.pid}-{tag}.abc123.tmp"  # a killed predict's half-written file
    other = tmp_path / f".other.csv.{dead.pid}-{tag}.abc123.tmp"  # another file's: not ours to remove
    left.write_text("half")
    other.write_text("half")
    _write(frame, tmp_path / "p.csv")
    assert not left.exists() and other.exists() and (tmp_path / "p.csv").is_file()
    # a folder no file can be created in, even by root (sysfs: EACCES): the error names the file asked for
    with pytest.raises(ClvdriftError) as err:
        _write(frame, Path("/sys/p.csv"))
    assert "/sys/p.csv" in str(err.value) and ".tmp" not in str(err.value)


def test_predict_never_overwrites_its_input_or_stored_files(tmp_path):
    from clvdrift.pipeline.predict import _check_out

    data, models = tmp_path / "tx.csv", tmp_path / "models"
    for out in (data, models / "reference_v1.csv", models / "sub" / "x.parquet"):
        with pytest.raises(ConfigError, match="would overwrite"):
            _check_out(out, [data, models])
    for name in (".csv", "p.json"):
        with pytest.raises(ConfigError, match="expected a file name ending in"):
            _check_out(tmp_path / name, [])
    _check_out(tmp_path / "predictions.csv", [data, models])  # elsewhere is fine


def test_with_a_lookback_no_feature_reads_a_line_before_it(history):
    """Every feature of :func:`history_features` (windows, tenure, trend, last year) reads only the lines
    of the lookback window: rewriting the lines before it changes nothing."""
    from clvdrift.features import history_features

    lines = TransactionLines.from_frame(history)
    snapshot = lines.last_day() - pd.Timedelta(days=30)
    floor = snapshot - pd.Timedelta(days=60)
    before = history[schema.INVOICE_DATE] < floor
    rewritten = history.assign(**{schema.QUANTITY: history[schema.QUANTITY].where(~before, 99)})
    a, b = (
        history_features(TransactionLines.from_frame(h), snapshot, horizon_days=90, lookback_days=60)
        for h in (history, rewritten)
    )
    pd.testing.assert_frame_equal(a, b)
    whole = history_features(TransactionLines.from_frame(rewritten), snapshot, horizon_days=90)
    assert not whole["Revenue365d"].equals(a["Revenue365d"])  # without the lookback the rewrite shows
