from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from clvdrift.data import load_transactions, schema
from clvdrift.errors import AmbiguousDateError, ConfigError, DataError

ROWS = [
    (
        "536365",
        "85123A",
        "WHITE HANGING HEART",
        "6",
        "2010-12-01 08:26:00",
        "2.55",
        "17850",
        "United Kingdom",
    ),
    ("536366", "22633", "HAND WARMER", "6", "2010-12-13 08:28:00", "1.85", "17850.0", "United Kingdom"),
    ("C536379", "D", "Discount", "-1", "2010-12-14 09:41:00", "27.50", "14527", "France"),
    ("536380", "22961", "", "24", "2011-01-25 10:00:00", "1.45", "", "Germany"),
]
HEADER = list(schema.CANONICAL_COLUMNS)


def write_csv(path, rows=ROWS, header=HEADER, encoding="utf-8", dates=None):
    lines = [",".join(header)]
    for i, row in enumerate(rows):
        row = list(row)
        if dates is not None:
            row[4] = dates[i]
        lines.append(",".join(row))
    data = ("\n".join(lines) + "\n").encode(encoding)
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def check_canonical(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == HEADER
    assert len(frame) == 4  # never drops a row
    assert frame["Quantity"].tolist() == [6, 6, -1, 24]
    assert frame["UnitPrice"].tolist() == [2.55, 1.85, 27.5, 1.45]
    assert frame["InvoiceDate"].iloc[0] == pd.Timestamp("2010-12-01 08:26:00")
    assert frame["InvoiceDate"].iloc[3] == pd.Timestamp("2011-01-25 10:00:00")
    ids = frame["CustomerID"].astype(object).tolist()
    assert ids[:3] == ["17850", "17850", "14527"] and pd.isna(ids[3])  # 17850.0 is 17850; blank is missing


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz"])
def test_csv_plain_and_gzip(tmp_path, name):
    check_canonical(load_transactions(write_csv(tmp_path / name)))


def test_parquet(tmp_path):
    frame = pd.DataFrame([r for r in ROWS], columns=HEADER)
    frame["Quantity"] = frame["Quantity"].astype(int)
    frame["UnitPrice"] = frame["UnitPrice"].astype(float)
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    frame["CustomerID"] = pd.to_numeric(frame["CustomerID"].replace("", np.nan))  # float, as pandas writes it
    frame.to_parquet(tmp_path / "t.parquet")
    check_canonical(load_transactions(tmp_path / "t.parquet"))


def test_xlsx_with_online_retail_ii_names(tmp_path):
    frame = pd.DataFrame([r for r in ROWS], columns=HEADER)
    frame["Quantity"] = frame["Quantity"].astype(int)
    frame["UnitPrice"] = frame["UnitPrice"].astype(float)
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    frame["CustomerID"] = pd.to_numeric(frame["CustomerID"].replace("", np.nan))
    frame = frame.rename(columns={"InvoiceNo": "Invoice", "UnitPrice": "Price", "CustomerID": "Customer ID"})
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    check_canonical(load_transactions(tmp_path / "t.xlsx"))


def test_online_retail_ii_names_csv(tmp_path):
    header = [
        "Invoice",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "Price",
        "Customer ID",
        "Country",
    ]
    check_canonical(load_transactions(write_csv(tmp_path / "t.csv", header=header)))


def test_user_column_mapping(tmp_path):
    header = ["order", "sku", "Description", "Quantity", "ts", "UnitPrice", "client", "Country"]
    path = write_csv(tmp_path / "t.csv", header=header)
    frame = load_transactions(
        path, columns={"order": "InvoiceNo", "sku": "StockCode", "ts": "InvoiceDate", "client": "CustomerID"}
    )
    check_canonical(frame)


def test_mapping_to_unknown_name_is_rejected(tmp_path):
    path = write_csv(tmp_path / "t.csv")
    with pytest.raises(DataError, match="unknown target name"):
        load_transactions(path, columns={"InvoiceNo": "Invoice Number"})


def test_latin1_file(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[0][2] = "£10 GIFT VOUCHER"
    path = write_csv(tmp_path / "t.csv", rows=[tuple(r) for r in rows], encoding="iso-8859-1")
    frame = load_transactions(path)
    check_canonical(frame)
    assert frame["Description"].iloc[0] == "£10 GIFT VOUCHER"
    assert frame.attrs["encoding"] == "iso-8859-1"


def test_utf8_file_keeps_pound_sign(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[0][2] = "£10 GIFT VOUCHER"
    frame = load_transactions(write_csv(tmp_path / "t.csv", rows=[tuple(r) for r in rows]))
    assert frame["Description"].iloc[0] == "£10 GIFT VOUCHER"
    assert frame.attrs["encoding"] == "utf-8"


def test_day_first_dates_inferred_when_a_day_exceeds_12(tmp_path):
    dates = ["01-12-2010 08:26", "13-12-2010 08:28", "14-12-2010 09:41", "25-01-2011 10:00"]
    frame = load_transactions(write_csv(tmp_path / "t.csv", dates=dates))
    check_canonical(frame)
    assert frame["InvoiceDate"].iloc[1] == pd.Timestamp("2010-12-13 08:28")


def test_month_first_dates_inferred(tmp_path):
    dates = ["12/1/2010 8:26", "12/13/2010 8:28", "12/14/2010 9:41", "1/25/2011 10:00"]
    check_canonical(load_transactions(write_csv(tmp_path / "t.csv", dates=dates)))


def test_ambiguous_dates_rejected_with_clear_message(tmp_path):
    dates = ["01-12-2010 08:26", "02-12-2010 08:28", "03-12-2010 09:41", "04-12-2010 10:00"]
    path = write_csv(tmp_path / "t.csv", dates=dates)
    with pytest.raises(AmbiguousDateError) as info:
        load_transactions(path)
    message = str(info.value)
    assert str(path) in message and "InvoiceDate" in message and "--date-format" in message


def test_explicit_date_format_resolves_ambiguity(tmp_path):
    dates = ["01-12-2010 08:26", "13-12-2010 08:28", "14-12-2010 09:41", "25-01-2011 10:00"]
    path = write_csv(tmp_path / "t.csv", dates=dates)
    frame = load_transactions(path, date_format="%d-%m-%Y %H:%M")
    check_canonical(frame)
    with pytest.raises(DataError, match="does not match --date-format"):
        load_transactions(path, date_format="%m-%d-%Y %H:%M")
    with pytest.raises(ConfigError, match=r"--date-format '%d-%Q-%Y': 'Q' is a bad directive"):
        load_transactions(path, date_format="%d-%Q-%Y")  # the format is wrong, not the data


def test_unrecognised_dates_name_the_line(tmp_path):
    dates = ["2010-12-01 08:26:00", "yesterday", "2010-12-14 09:41:00", "2011-01-25 10:00:00"]
    with pytest.raises(DataError, match=r"line 3: 'yesterday'"):
        load_transactions(write_csv(tmp_path / "t.csv", dates=dates))


def test_bad_number_names_file_column_and_line(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[2][3] = "six"
    path = write_csv(tmp_path / "t.csv", rows=[tuple(r) for r in rows])
    with pytest.raises(DataError) as info:
        load_transactions(path)
    assert (
        str(path) in str(info.value) and "Quantity" in str(info.value) and "line 4: 'six'" in str(info.value)
    )


def test_fractional_quantity_rejected(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[1][3] = "1.5"
    with pytest.raises(DataError, match="whole numbers"):
        load_transactions(write_csv(tmp_path / "t.csv", rows=[tuple(r) for r in rows]))


def test_missing_column_is_named(tmp_path):
    header = [h if h != "UnitPrice" else "Cost" for h in HEADER]
    with pytest.raises(DataError, match=r"missing required column\(s\) \['UnitPrice'\]"):
        load_transactions(write_csv(tmp_path / "t.csv", header=header))


def test_empty_file(tmp_path):
    (tmp_path / "t.csv").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_transactions(tmp_path / "t.csv")


def test_header_only(tmp_path):
    (tmp_path / "t.csv").write_text(",".join(HEADER) + "\n")
    with pytest.raises(DataError, match="no data rows"):
        load_transactions(tmp_path / "t.csv")


def test_corrupted_gzip(tmp_path):
    good = gzip.compress(("\n".join([",".join(HEADER)] + [",".join(r) for r in ROWS * 200])).encode())
    (tmp_path / "t.csv.gz").write_bytes(good[: len(good) // 2] + b"\x00garbage")
    with pytest.raises(DataError, match=r"t\.csv\.gz"):
        load_transactions(tmp_path / "t.csv.gz")


def test_corrupted_parquet_and_xlsx(tmp_path):
    for name in ("t.parquet", "t.xlsx"):
        (tmp_path / name).write_bytes(b"this is not a real file" * 10)
        with pytest.raises(DataError, match=f"{name}: cannot read"):
            load_transactions(tmp_path / name)


def test_unsupported_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unsupported file type"):
        load_transactions(tmp_path / "t.json")
    with pytest.raises(DataError, match="not found"):
        load_transactions(tmp_path / "nope.csv")
    (tmp_path / "batch.csv").mkdir()  # a folder, whatever its name: said so, not "unsupported" or "not found"
    for folder in (tmp_path, tmp_path / "batch.csv"):
        with pytest.raises(DataError, match=f"{folder}: is a folder, not a transactions file"):
            load_transactions(folder)


def test_bundled_file_loads_every_row(bundled):
    frame = load_transactions(bundled)
    assert len(frame) == 541_909
    assert frame["Quantity"].sum() == 5_176_450  # checksums from src/clvdrift/data/ONLINE_RETAIL.md
    assert round(frame["UnitPrice"].sum(), 2) == 2_498_803.97
    assert frame["CustomerID"].nunique() == 4_372
    assert frame["InvoiceDate"].min() == pd.Timestamp("2010-12-01 08:26:00")
