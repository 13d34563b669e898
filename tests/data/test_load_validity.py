"""Parseable-but-wrong inputs a new user feeds the loader: each works or fails with one clear line.

Real temporary files, shaped unlike the bundled one (other delimiters, sheets, encodings, scales).
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from clvdrift.data import clean_transactions, load_transactions, schema
from clvdrift.errors import DataError

HEADER = list(schema.CANONICAL_COLUMNS)
ROWS = [
    ["700001", "A1", "mug", "3", "2021-03-01 09:00:00", "2.55", "501", "Belgium"],
    ["700002", "B2", "plate", "12", "2021-03-02 10:30:00", "10.5", "502", "Belgium"],
    ["700003", "A1", "mug", "1", "2021-03-05 16:45:00", "1250", "503", "Netherlands"],
]


def write(path, rows=ROWS, header=HEADER, delimiter=",", prefix=b""):
    text = "\n".join(delimiter.join(r) for r in [header, *rows]) + "\n"
    data = prefix + text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def one_line(exc: pytest.ExceptionInfo[DataError]) -> str:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters_are_sniffed_from_the_header(tmp_path, delimiter):
    frame = load_transactions(write(tmp_path / "t.csv", delimiter=delimiter))
    assert frame["Quantity"].tolist() == [3, 12, 1]
    assert frame["UnitPrice"].tolist() == [2.55, 10.5, 1250.0]
    assert frame["CustomerID"].astype(str).tolist() == ["501", "502", "503"]
    assert frame.attrs["delimiter"] == delimiter


def test_semicolon_file_with_decimal_commas_is_read_correctly(tmp_path):
    rows = [[*r[:5], r[5].replace(".", ","), *r[6:]] for r in ROWS]  # "2,55", "10,5", "1250"
    frame = load_transactions(write(tmp_path / "t.csv.gz", rows=rows, delimiter=";"))
    assert frame["UnitPrice"].tolist() == [2.55, 10.5, 1250.0]


def test_decimal_commas_mixed_with_points_are_refused_not_guessed(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[0][5], rows[1][5] = "2,55", "1.234,50"  # thousands separator: 1234.5 or 1.2345?
    with pytest.raises(DataError) as exc:
        load_transactions(write(tmp_path / "t.csv", rows=rows, delimiter=";"))
    message = one_line(exc)
    assert "UnitPrice" in message and "line 2: '2,55'" in message and "line 3: '1.234,50'" in message


def test_decimal_comma_in_a_comma_file_names_the_problem(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[2][5] = '"12,50"'
    with pytest.raises(DataError) as exc:
        load_transactions(write(tmp_path / "t.csv", rows=rows))
    assert "line 4: '12,50'" in one_line(exc) and "decimal commas are read only" in str(exc.value)


def test_header_without_a_known_delimiter_says_so(tmp_path):
    with pytest.raises(DataError) as exc:
        load_transactions(write(tmp_path / "t.csv", delimiter=":"))
    message = one_line(exc)
    assert "none of the delimiters" in message and "InvoiceNo:StockCode" in message


def test_missing_column_error_names_the_delimiter_it_used(tmp_path):
    header = [h if h != "Country" else "Land" for h in HEADER]
    with pytest.raises(DataError, match=r"delimiter ';'\): missing required column\(s\) \['Country'\]"):
        load_transactions(write(tmp_path / "t.csv", header=header, delimiter=";"))


def test_utf8_byte_order_mark_is_ignored(tmp_path):
    frame = load_transactions(write(tmp_path / "t.csv", prefix=b"\xef\xbb\xbf", delimiter=";"))
    assert frame["InvoiceNo"].astype(str).tolist()[0] == "700001"


def test_utf16_tab_file_as_excel_exports_unicode_text(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[0][2] = "tasse à café"
    text = "\n".join("\t".join(r) for r in [HEADER, *rows]) + "\n"
    (tmp_path / "t.txt").write_bytes(text.encode("utf-16"))
    frame = load_transactions(tmp_path / "t.txt")
    assert frame["Description"].iloc[0] == "tasse à café" and frame["UnitPrice"].tolist() == [
        2.55,
        10.5,
        1250.0,
    ]
    assert frame.attrs["encoding"] == "utf-16" and frame.attrs["delimiter"] == "\t"


def test_column_names_match_without_case_spaces_or_underscores(tmp_path):
    header = [
        "invoice_no",
        "stock code",
        "description",
        "QUANTITY",
        "invoice_date",
        "unit_price",
        "customer_id",
        "country",
    ]
    frame = load_transactions(write(tmp_path / "t.csv", header=header))
    assert frame["UnitPrice"].tolist() == [2.55, 10.5, 1250.0]


def test_two_columns_for_one_name_are_refused(tmp_path):
    header = [*HEADER, "Customer ID"]
    rows = [[*r, "999"] for r in ROWS]
    with pytest.raises(DataError) as exc:
        load_transactions(write(tmp_path / "t.csv", header=header, rows=rows))
    assert "CustomerID ← ['CustomerID', 'Customer ID']" in one_line(exc)


def test_duplicate_names_of_unused_columns_are_harmless(tmp_path):
    header = [*HEADER, "note", "note"]
    rows = [[*r, "x", "y"] for r in ROWS]
    assert len(load_transactions(write(tmp_path / "t.csv", header=header, rows=rows))) == 3


def test_dates_with_utc_offsets_become_utc(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[0][4], rows[1][4], rows[2][4] = (
        "2021-03-01T09:00:00+01:00",
        "2021-03-28T10:30:00+02:00",
        "2021-03-05T16:45Z",
    )
    frame = load_transactions(write(tmp_path / "t.csv", rows=rows))
    assert frame["InvoiceDate"].tolist() == [
        pd.Timestamp("2021-03-01 08:00"),
        pd.Timestamp("2021-03-28 08:30"),
        pd.Timestamp("2021-03-05 16:45"),
    ]


def test_dates_mixing_offsets_and_none_are_refused(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[0][4] = "2021-03-01T09:00:00+01:00"
    with pytest.raises(DataError, match="with and without a UTC offset"):
        load_transactions(write(tmp_path / "t.csv", rows=rows))


def test_date_pandas_cannot_hold_is_one_clear_line(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[1][4] = "2999-01-01 00:00:00"
    with pytest.raises(DataError) as exc:
        load_transactions(write(tmp_path / "t.csv", rows=rows))
    assert "line 3: '2999-01-01 00:00:00'" in one_line(exc)


def test_tz_aware_parquet_timestamps_become_utc(tmp_path):
    frame = pd.DataFrame([r for r in ROWS], columns=HEADER)
    frame["Quantity"] = frame["Quantity"].astype(int)
    frame["UnitPrice"] = frame["UnitPrice"].astype(float)
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"]).dt.tz_localize("Europe/Brussels")
    frame.to_parquet(tmp_path / "t.parquet")
    out = load_transactions(tmp_path / "t.parquet")
    assert out["InvoiceDate"].iloc[0] == pd.Timestamp("2021-03-01 08:00")  # 09:00 CET


def xlsx_frame(rows=ROWS) -> pd.DataFrame:
    frame = pd.DataFrame([r for r in rows], columns=HEADER)
    frame["Quantity"] = frame["Quantity"].astype(int)
    frame["UnitPrice"] = frame["UnitPrice"].astype(float)
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    frame["CustomerID"] = frame["CustomerID"].astype(float)  # 501.0, as Excel stores numbers
    return frame


def test_xlsx_with_a_notes_sheet_first_and_two_data_sheets(tmp_path):
    later = [["700010", "C3", "bowl", "2", "2022-01-10 11:00:00", "4.25", "504", "France"]]
    path = tmp_path / "t.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"About": ["exported by the shop", "prices in EUR"]}).to_excel(
            writer, sheet_name="Notes", index=False
        )
        xlsx_frame().to_excel(writer, sheet_name="2021", index=False)
        xlsx_frame(later).to_excel(writer, sheet_name="2022", index=False)
    frame = load_transactions(path)
    assert frame["CustomerID"].astype(str).tolist() == ["501", "502", "503", "504"]
    assert frame["UnitPrice"].tolist() == [2.55, 10.5, 1250.0, 4.25]
    assert frame.attrs["sheets_read"] == ["2021", "2022"] and frame.attrs["sheets_skipped"] == ["Notes"]


def test_xlsx_bad_value_names_the_sheet_and_row(tmp_path):
    bad = xlsx_frame().astype({"Quantity": object})
    bad.loc[1, "Quantity"] = "twelve"
    path = tmp_path / "t.xlsx"
    with pd.ExcelWriter(path) as writer:
        xlsx_frame().to_excel(writer, sheet_name="2020", index=False)
        bad.to_excel(writer, sheet_name="2021", index=False)
    with pytest.raises(DataError) as exc:
        load_transactions(path)
    assert "sheet '2021' row 3: 'twelve'" in one_line(exc)


def test_xlsx_without_a_transaction_sheet_lists_what_it_found(tmp_path):
    path = tmp_path / "t.xlsx"
    pd.DataFrame({"About": ["nothing here"]}).to_excel(path, sheet_name="Notes", index=False)
    with pytest.raises(DataError) as exc:
        load_transactions(path)
    assert "no sheet has the transaction columns" in one_line(exc) and "sheet 'Notes'" in str(exc.value)


def test_xlsx_duplicate_column_is_refused_not_renamed(tmp_path):
    frame = xlsx_frame()
    frame.insert(3, "Quantity ", [1, 1, 1])  # pandas would read it back as "Quantity.1" and ignore it
    path = tmp_path / "t.xlsx"
    frame.to_excel(path, index=False)
    with pytest.raises(DataError, match="more than one column maps to the same name"):
        load_transactions(path)


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("Quantity", "9200000000000000000", "9.2e+18"),
        ("Quantity", "1e16", "1e+16"),
        ("UnitPrice", "1000000000000000", "1e+15"),
        ("Quantity", "-3000000000", "-3e+09"),
    ],
)
def test_values_beyond_the_exact_range_are_refused_at_load(tmp_path, column, value, shown):
    rows = [list(r) for r in ROWS]
    rows[1][HEADER.index(column)] = value
    with pytest.raises(DataError) as exc:
        load_transactions(write(tmp_path / "t.csv", rows=rows, delimiter="\t"))
    message = one_line(exc)
    assert f"column {column}" in message and f"line 3: {shown}" in message and "t.csv" in message


def test_line_value_beyond_the_exact_range_is_refused(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[2][3], rows[2][5] = "500000000", "50000"  # each within its bound, the line worth 2.5e13
    with pytest.raises(DataError) as exc:
        load_transactions(write(tmp_path / "t.csv", rows=rows))
    assert "line 4: 500000000 × 50000" in one_line(exc)


def test_float_formatted_customer_ids_are_one_customer(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[0][6], rows[1][6], rows[2][6] = "501.0", "501", "501.00"
    frame = load_transactions(write(tmp_path / "t.csv", rows=rows, delimiter=";"))
    assert frame["CustomerID"].astype(str).unique().tolist() == ["501"]


def test_header_only_file_with_another_delimiter(tmp_path):
    with pytest.raises(DataError, match="header but no data rows"):
        load_transactions(write(tmp_path / "t.csv", rows=[], delimiter=";"))


def test_all_cancelled_file_fails_at_cleaning_naming_the_rules(tmp_path):
    rows = [["C" + r[0], r[1], r[2], "-" + r[3], *r[4:]] for r in ROWS]
    frame = load_transactions(write(tmp_path / "t.csv", rows=rows))
    with pytest.raises(DataError) as exc:
        clean_transactions(frame)
    assert "no usable transactions" in one_line(exc) and "cancellation 3" in str(exc.value)


def test_negative_prices_are_removed_and_counted(tmp_path):
    rows = [list(r) for r in ROWS]
    rows[0][5] = "-11062.06"  # a bad-debt adjustment
    out, report = clean_transactions(load_transactions(write(tmp_path / "t.csv", rows=rows)))
    assert report.removed["non_positive_price"] == 1 and (out["UnitPrice"] > 0).all()
    assert np.isclose(out["UnitPrice"].sum(), 10.5 + 1250)
