"""Dates far outside the bulk of the data are a validation finding (issue 6, B1): removed under the
``date_outlier`` rule, reported with example lines, never trained on."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from clvdrift.config import TrainConfig
from clvdrift.data import clean_transactions, load_transactions
from clvdrift.errors import DataError
from clvdrift.features import build_training_set, check_trainable
from clvdrift.settings import SAMPLE_DATA
from helpers import tx_frame  # type: ignore[import-not-found]

TODAY = pd.Timestamp("2026-11-30")
BUNDLED = SAMPLE_DATA


def hourly_rows(start: str, count: int, step_hours: float, customers: int = 40) -> list[tuple]:
    """``count`` purchase lines every ``step_hours`` from ``start``, spread over ``customers``."""
    first = pd.Timestamp(start)
    return [
        (
            f"9{i:06d}",
            f"S{i % 17}",
            1 + i % 4,
            (first + pd.Timedelta(hours=step_hours * i)).strftime("%Y-%m-%d %H:%M:%S"),
            0.5 + i % 9,
            f"c{i % customers}",
            "Japan",
        )
        for i in range(count)
    ]


def test_far_future_rows_are_removed_reported_and_do_not_move_the_cutoff():
    rows = hourly_rows("2019-01-01", 3_000, 2.9)  # 2019-01-01 … 2019-12-29
    for k, at in enumerate((10, 500, 1_000, 2_000, 2_999)):
        rows.insert(at, (f"8{k}", "S1", 2, "2099-01-01 00:00:00", 3.0, f"c{k}", "Japan"))
    clean, report = clean_transactions(tx_frame(rows), today=TODAY)
    assert report.removed["date_outlier"] == 5 and report.rows_out == 3_000
    assert report.date_outliers is not None and report.date_outliers.after == 5
    assert report.date_outliers.dense_last is not None and report.date_outliers.dense_last.startswith(
        "2019-12-29"
    )
    (finding,) = report.findings
    assert finding.startswith("5 row(s) dated after 2019-12-29 (e.g. row 11: 2099-01-01 00:00, row 501:")
    assert "errors?" in finding and "date_outlier" in finding
    ts = build_training_set(clean, horizon_days=90)
    assert ts.cutoff == pd.Timestamp("2019-09-30")  # the dense range's end − 90 days, not 2098
    check_trainable(
        ts,
        min_customers=TrainConfig().min_customers,
        min_positive_target_share=TrainConfig().min_positive_target_share,
    )


def test_a_stray_past_date_after_a_long_gap_is_an_outlier_too():
    rows = hourly_rows("2015-03-01", 4_000, 1.0)  # ~5.5 months, dense
    rows += [("81", "S1", 1, "2016-02-01 12:00:00", 1.0, "c1", "Japan")] * 3  # 8 months later, not future
    rows.insert(0, ("80", "S1", 1, "1900-01-01 00:00:00", 1.0, "c2", "Japan"))  # Excel's day zero
    _, report = clean_transactions(tx_frame(rows), today=TODAY)
    assert (report.date_outliers.before, report.date_outliers.after) == (1, 3)
    assert report.removed["date_outlier"] == 4
    assert any(
        f.startswith("1 row(s) dated before 2015-03-01 (e.g. row 1: 1900-01-01 00:00)")
        for f in report.findings
    )


def test_future_rows_are_outliers_whatever_their_share():
    rows = hourly_rows("2026-06-01", 90, 24.0, customers=9)
    rows += hourly_rows("2027-06-01", 10, 24.0, customers=9)  # 10% of the rows, after `today`
    _, report = clean_transactions(tx_frame(rows), today=TODAY)
    assert report.removed["date_outlier"] == 10 and "or in the future" in report.findings[0]


def test_a_file_entirely_in_the_future_is_refused_with_the_finding():
    with pytest.raises(
        DataError,
        match=r"no usable .* \(date_outlier 30\); 30 row\(s\) dated in the future \(e\.g\. row 1: 2030-01-01",
    ):
        clean_transactions(tx_frame(hourly_rows("2030-01-01", 30, 24.0)), today=TODAY)


@pytest.mark.parametrize(
    "rows",
    [
        hourly_rows("2018-01-01", 2_000, 1.0) + hourly_rows("2018-11-01", 2_000, 1.0),  # a season's pause
        hourly_rows("2000-01-01", 300, 24 * 30.0),  # sparse: one line a month for 25 years
        [*hourly_rows("2020-01-01", 1000, 8.0), ("77", "S1", 1, "2020-05-04 00:00:00", 1.0, "c1", "Japan")],
    ],
    ids=["two-seasons", "sparse-monthly", "ten-days-after"],
)
def test_ordinary_calendars_have_no_outliers(rows):
    _, report = clean_transactions(tx_frame(rows), today=TODAY)
    assert report.removed["date_outlier"] == 0 and report.findings == ()


@pytest.fixture(scope="module")
def bundled_with_2099(tmp_path_factory):
    """The bundled file with five rows dated 2099 inserted from line 17 on, loaded and cleaned once."""
    lines = gzip.decompress(BUNDLED.read_bytes()).decode("utf-8").splitlines(keepends=True)
    extra = [
        f"581999,22138,BAKING SET,{q},2099-01-01 00:00:00,4.95,{c},United Kingdom\n"
        for q, c in zip((3, 6, 1, 24, 2), ("17850", "13047", "12583", "14688", "15311"), strict=True)
    ]
    path = tmp_path_factory.mktemp("b1") / "online_retail_2099.csv"
    path.write_text("".join(lines[:16] + extra + lines[16:]), encoding="utf-8")
    raw = load_transactions(path)
    assert raw["InvoiceDate"].max() == pd.Timestamp("2099-01-01")  # the loader keeps every row
    return clean_transactions(raw, today=TODAY)


def test_bundled_file_with_five_rows_dated_2099(bundled_with_2099):
    clean, report = bundled_with_2099
    assert report.removed["date_outlier"] == 5
    assert report.findings[0].startswith(
        "5 row(s) dated after 2011-12-09 (e.g. line 17: 2099-01-01 00:00, line 18: 2099-01-01 00:00"
    )
    ts = build_training_set(clean)
    assert ts.cutoff == pd.Timestamp("2011-09-10") and ts.target_days_covered == 90
    assert 0.40 <= float(np.mean(ts.target == 0)) <= 0.46  # not 99.98% zeros
