from __future__ import annotations

import numpy as np
import pandas as pd

from clvdrift.data import clean_transactions, load_transactions
from helpers import tx_frame  # type: ignore[import-not-found]

GOOD = ("500001", "22633", 2, "2011-01-05 10:00", 1.5, "100", "France")


def run(rows):
    return clean_transactions(tx_frame([GOOD, *rows]))


def test_each_rule_removes_its_rows_and_counts_them():
    rows = [
        ("500002", "22633", 3, "2011-01-05 10:00", 1.5, None, "France"),  # missing_customer
        ("500003", "22633", 3, None, 1.5, "101", "France"),  # missing_value
        ("500004", "22960", 80995, "2011-02-01 09:00", 2.08, "102", "France"),  # cancelled_order
        ("C500005", "22960", -80995, "2011-02-01 09:15", 2.08, "102", "France"),  # cancellation
        ("C500006", "22633", -1, "2011-02-02 09:15", 1.5, "103", "France"),  # cancellation (unpaired)
        ("500007", "22633", -5, "2011-02-03 09:00", 0.0, "103", "France"),  # non_positive_quantity
        ("500008", "22633", 5, "2011-02-03 09:00", 0.0, "103", "France"),  # non_positive_price
        ("500009", "POST", 1, "2011-02-03 09:00", 18.0, "103", "France"),  # non_product_code
        ("500010", "DCGS0003", 1, "2011-02-03 09:00", 5.0, "103", "France"),  # non_product_code
        ("500011", "gift_0001_20", 1, "2011-02-03 09:00", 20.0, "103", "France"),  # non_product_code
        GOOD,  # exact_duplicate
    ]
    out, report = run(rows)
    assert report.removed == {
        "date_outlier": 0,
        "missing_customer": 1,
        "missing_value": 1,
        "cancelled_order": 1,
        "cancellation": 2,
        "non_positive_quantity": 1,
        "non_positive_price": 1,
        "non_product_code": 3,
        "exact_duplicate": 1,
    }
    assert report.rows_in == 12 and report.rows_out == 1 and len(out) == 1
    assert sum(report.removed.values()) == report.rows_in - report.rows_out
    assert out["Quantity"].dtype == np.int64
    assert out["CustomerID"].astype(str).tolist() == ["100"]


def test_cancellation_before_the_order_does_not_net_it():
    rows = [
        ("C500005", "22960", -10, "2011-02-01 09:00", 2.0, "102", "France"),
        ("500004", "22960", 10, "2011-02-02 09:00", 2.0, "102", "France"),
    ]
    out, report = run(rows)
    assert report.removed["cancelled_order"] == 0 and report.removed["cancellation"] == 1
    assert len(out) == 2


def test_one_cancellation_nets_one_order_only():
    rows = [
        ("500004", "22960", 10, "2011-02-01 09:00", 2.0, "102", "France"),
        ("500014", "22960", 10, "2011-02-03 09:00", 2.0, "102", "France"),
        ("C500005", "22960", -10, "2011-02-04 09:00", 2.0, "102", "France"),
    ]
    _, report = run(rows)
    assert report.removed["cancelled_order"] == 1


def test_missing_country_becomes_unspecified():
    out, _ = run([("500002", "22633", 3, "2011-01-06 10:00", 1.5, "101", None)])
    assert "Unspecified" in out["Country"].astype(str).tolist()


def test_bundled_file_cleans_to_about_4330_customers(bundled):
    out, report = clean_transactions(load_transactions(bundled))
    assert 4_300 <= report.customers_out <= 4_340
    assert report.removed["missing_customer"] == 135_080
    assert out["Quantity"].max() < 80_995  # the huge cancelled orders are netted out
    assert not out["InvoiceNo"].astype(str).str.startswith("C").any()
    assert (out["UnitPrice"] > 0).all() and (out["Quantity"] > 0).all()
    assert not out.duplicated().any()
    assert pd.Series(report.removed).sum() == report.rows_in - report.rows_out
