"""Load retail transactions from CSV (plain or gzip), XLSX or Parquet into the canonical schema.

Rules:

- Columns: the Online Retail names (InvoiceNo, UnitPrice, CustomerID), the Online Retail II names
  (Invoice, Price, Customer ID), or a user mapping ``{"name in file": "canonical name"}``.
- Encoding: UTF-8, falling back to ISO-8859-1 when the file is not valid UTF-8 (or as given).
- Dates: ISO 8601; ``DD-MM-YYYY HH:MM`` and ``M/D/YYYY H:MM`` (any of ``- / .`` as separator) are
  inferred only when the file itself shows the order (a first part > 12 means day-first, a second part
  > 12 means month-first); otherwise :class:`AmbiguousDateError` asks for ``date_format``.
- Never drops a row: unparseable values raise :class:`DataError` naming the file, the column and
  example lines; empty values stay missing and are counted by the cleaning step.

The result has the canonical columns (Description may be absent in the file and is then empty), with
InvoiceNo/StockCode/CustomerID/Country as pandas categoricals, Quantity and UnitPrice as float64 and
InvoiceDate as datetime64. ``frame.attrs`` records the source path, format and encoding.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clvdrift.data import schema
from clvdrift.errors import AmbiguousDateError, DataError

_MAX_EXAMPLES = 3
_ISO_RE = r"^\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
_DMY_RE = r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$"


def load_transactions(
    path: str | Path,
    *,
    date_format: str | None = None,
    columns: Mapping[str, str] | None = None,
    encoding: str | None = None,
) -> pd.DataFrame:
    """Read a transactions file and return it in the canonical schema (see module docstring).

    ``date_format`` is a ``strftime`` format such as ``"%d-%m-%Y %H:%M"``; ``columns`` maps names in
    the file to canonical names and wins over the built-in aliases.
    """
    path = Path(path)
    kind = _file_kind(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    table, used_encoding = _read_table(path, kind, encoding)
    table = _rename_columns(table, path, columns or {})
    if table.num_rows == 0:
        raise DataError(f"{path}: file has a header but no data rows")
    line = _line_namer(kind)
    data: dict[str, object] = {}
    for name in (schema.INVOICE, schema.STOCK_CODE, schema.CUSTOMER, schema.COUNTRY):
        data[name] = _categorical(table.column(name), customer=name == schema.CUSTOMER)
    if schema.DESCRIPTION in table.column_names:
        data[schema.DESCRIPTION] = _as_string(table.column(schema.DESCRIPTION)).to_pandas(
            types_mapper=pd.ArrowDtype
        )
    else:
        data[schema.DESCRIPTION] = pd.Series(pd.NA, index=range(table.num_rows), dtype="string[pyarrow]")
    data[schema.QUANTITY] = _numeric(table.column(schema.QUANTITY), path, schema.QUANTITY, line, whole=True)
    data[schema.UNIT_PRICE] = _numeric(table.column(schema.UNIT_PRICE), path, schema.UNIT_PRICE, line)
    data[schema.INVOICE_DATE] = _dates(table.column(schema.INVOICE_DATE), path, date_format, line)
    frame = pd.DataFrame({name: data[name] for name in schema.CANONICAL_COLUMNS})
    frame.attrs.update({"source": str(path), "format": kind, "encoding": used_encoding})
    return frame


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz", ".gz")):
        return "csv"
    if name.endswith((".xlsx", ".xlsm")):
        return "xlsx"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise DataError(f"{path}: unsupported file type; expected one of {', '.join(schema.SUPPORTED_SUFFIXES)}")


def _line_namer(kind: str):  # type: ignore[no-untyped-def]
    if kind == "parquet":
        return lambda i: f"row {i + 1}"
    return lambda i: f"line {i + 2}"  # header is line 1 (CSV) / row 1 (sheet)


def _read_table(path: Path, kind: str, encoding: str | None) -> tuple[pa.Table, str | None]:
    try:
        if kind == "csv":
            return _read_csv(path, encoding)
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path), None
        frame = pd.read_excel(path, engine="openpyxl")
        for name in frame.columns[frame.dtypes == object]:
            col = frame[name]
            frame[name] = col.where(col.isna(), col.astype(str))
        frame.columns = [str(c) for c in frame.columns]
        return pa.Table.from_pandas(frame, preserve_index=False), None
    except DataError:
        raise
    except Exception as exc:  # pyarrow, openpyxl, gzip, zipfile all raise their own types
        raise DataError(f"{path}: cannot read as {kind.upper()}: {_short(exc)}") from exc


def _read_csv(path: Path, encoding: str | None) -> tuple[pa.Table, str]:
    import pyarrow.csv as pacsv

    header = _csv_header(path, encoding)
    types = {name: pa.string() for name in header}
    convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
    for enc in [encoding] if encoding else ["utf8", "latin1"]:
        try:
            read = pacsv.ReadOptions(encoding=enc, block_size=1 << 24)
            return pacsv.read_csv(path, read_options=read, convert_options=convert), _enc_name(enc)
        except pa.ArrowInvalid as exc:
            if encoding is None and enc == "utf8" and "UTF8" in str(exc):
                continue  # not UTF-8: read again as ISO-8859-1
            raise
    raise AssertionError("unreachable")


def _csv_header(path: Path, encoding: str | None) -> list[str]:
    import csv
    import gzip
    import io

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        raw = fh.readline()
    if not raw.strip():
        raise DataError(f"{path}: no header line")
    text = raw.decode(encoding or "utf-8", errors="replace").lstrip("\ufeff")
    return next(csv.reader(io.StringIO(text)))


def _enc_name(enc: str) -> str:
    return {"utf8": "utf-8", "latin1": "iso-8859-1"}.get(enc, enc)


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def _rename_columns(table: pa.Table, path: Path, mapping: Mapping[str, str]) -> pa.Table:
    bad_targets = sorted(set(mapping.values()) - set(schema.CANONICAL_COLUMNS))
    if bad_targets:
        raise DataError(f"column mapping: unknown target name(s) {bad_targets}; expected {list(schema.CANONICAL_COLUMNS)}")
    missing_sources = sorted(set(mapping) - set(table.column_names))
    if missing_sources:
        raise DataError(f"{path}: column mapping names column(s) {missing_sources} not in the file; found {table.column_names}")
    renamed: list[str] = []
    for name in table.column_names:
        stripped = name.strip()
        renamed.append(mapping.get(name) or schema.ALIASES.get(stripped) or stripped)
    dupes = sorted({n for n in renamed if renamed.count(n) > 1 and n in schema.CANONICAL_COLUMNS})
    if dupes:
        raise DataError(f"{path}: more than one column maps to {dupes}; found {table.column_names}")
    table = table.rename_columns(renamed)
    missing = [c for c in schema.REQUIRED_COLUMNS if c not in renamed]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {missing}; found {table.column_names}. "
            "Accepted names: Online Retail (InvoiceNo, UnitPrice, CustomerID), Online Retail II "
            "(Invoice, Price, Customer ID), or a column mapping."
        )
    return table


def _as_string(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return pc.utf8_trim_whitespace(col)
    if pa.types.is_floating(col.type):  # e.g. CustomerID 17850.0 read from Parquet/XLSX
        as_int = pc.cast(col, pa.int64(), safe=False)
        whole = pc.equal(pc.cast(as_int, pa.float64()), col)
        return pc.if_else(whole, pc.cast(as_int, pa.string()), pc.cast(col, pa.string()))
    if pa.types.is_dictionary(col.type):
        return _as_string(pc.cast(col, col.type.value_type))
    return pc.cast(col, pa.string())


def _categorical(col: pa.ChunkedArray, *, customer: bool = False) -> pd.Categorical:
    strings = _as_string(col)
    if customer:  # "17850.0" and "17850" are the same customer
        strings = pc.replace_substring_regex(strings, pattern=r"\.0+$", replacement="")
    empty = pc.equal(strings, "")
    strings = pc.if_else(empty, pa.scalar(None, pa.string()), strings)
    encoded = pc.dictionary_encode(strings).combine_chunks()
    categories = pd.Index(encoded.dictionary.to_pylist(), dtype=object)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    codes = np.where(encoded.is_null().to_numpy(zero_copy_only=False), -1, codes).astype(np.int32)
    return pd.Categorical.from_codes(codes, categories=categories)


def _examples(values: pd.Series, bad: np.ndarray, line) -> str:  # type: ignore[no-untyped-def]
    idx = np.flatnonzero(bad)
    shown = ", ".join(f"{line(i)}: {values.iloc[i]!r}" for i in idx[:_MAX_EXAMPLES])
    more = f" and {len(idx) - _MAX_EXAMPLES} more" if len(idx) > _MAX_EXAMPLES else ""
    return f"{len(idx)} bad value(s), e.g. {shown}{more}"


def _numeric(col: pa.ChunkedArray, path: Path, name: str, line, *, whole: bool = False) -> np.ndarray:  # type: ignore[no-untyped-def]
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    else:
        strings = _as_string(col)
        try:
            values = pc.cast(strings, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = strings.to_pandas()
            parsed = pd.to_numeric(text, errors="coerce")
            bad = (text.notna() & parsed.isna()).to_numpy()
            raise DataError(f"{path}: column {name} must be numeric: {_examples(text, bad, line)}") from None
    values = np.asarray(values, dtype=np.float64)
    if whole:
        bad = np.isfinite(values) & (values != np.round(values))
        if bad.any():
            raise DataError(f"{path}: column {name} must hold whole numbers: "
                            f"{_examples(pd.Series(values), bad, line)}")
    if np.isinf(values).any():
        raise DataError(f"{path}: column {name} has infinite values: "
                        f"{_examples(pd.Series(values), np.isinf(values), line)}")
    return values


def _dates(col: pa.ChunkedArray, path: Path, date_format: str | None, line) -> np.ndarray:  # type: ignore[no-untyped-def]
    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        return pd.to_datetime(col.to_pandas()).to_numpy(dtype="datetime64[ns]")
    encoded = pc.dictionary_encode(_as_string(col)).combine_chunks()
    uniques = pd.Series(encoded.dictionary.to_pylist(), dtype=object)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    codes = np.where(encoded.is_null().to_numpy(zero_copy_only=False), -1, codes)

    def examples_of(bad_unique: np.ndarray) -> str:
        bad_rows = np.isin(codes, np.flatnonzero(bad_unique))
        return _examples(pd.Series(uniques.to_numpy()[np.where(codes >= 0, codes, 0)]), bad_rows, line)

    if date_format:
        parsed = pd.to_datetime(uniques, format=date_format, errors="coerce")
        bad = parsed.isna().to_numpy() & uniques.ne("").to_numpy()
        if bad.any():
            raise DataError(f"{path}: column InvoiceDate does not match --date-format {date_format!r}: "
                            f"{examples_of(bad)}")
    else:
        parsed = _infer_dates(uniques, path, examples_of)
    out = parsed.to_numpy(dtype="datetime64[ns]")
    result = out[np.where(codes >= 0, codes, 0)] if len(out) else np.full(len(codes), np.datetime64("NaT", "ns"))
    result[codes < 0] = np.datetime64("NaT")
    return result


def _infer_dates(uniques: pd.Series, path: Path, examples_of) -> pd.Series:  # type: ignore[no-untyped-def]
    if uniques.empty:
        return pd.Series([], dtype="datetime64[ns]")
    iso = uniques.str.match(_ISO_RE).to_numpy()
    if iso.all():
        return pd.to_datetime(uniques, format="ISO8601")
    parts = uniques.str.extract(_DMY_RE)
    dmy = parts[0].notna().to_numpy()
    if not dmy.all():
        bad = ~(dmy | iso)
        if bad.any():
            raise DataError(
                f"{path}: column InvoiceDate has dates in an unrecognised format: {examples_of(bad)}. "
                "Pass --date-format (e.g. '%d-%m-%Y %H:%M')."
            )
        raise DataError(f"{path}: column InvoiceDate mixes ISO and D/M/Y dates: {examples_of(~iso)}")
    first = parts[0].astype(int).to_numpy()
    second = parts[2].astype(int).to_numpy()
    sep = parts[1].iloc[0]
    hint = (f"pass --date-format '%d{sep}%m{sep}%Y %H:%M' (day first) or "
            f"'%m{sep}%d{sep}%Y %H:%M' (month first)")
    if first.max() > 12 and second.max() > 12:
        raise DataError(f"{path}: column InvoiceDate is neither consistently day-first nor month-first "
                        f"(e.g. {examples_of(first > 12)}); {hint}")
    if first.max() <= 12 and second.max() <= 12:
        raise AmbiguousDateError(
            f"{path}: column InvoiceDate is ambiguous: every date has day and month both ≤ 12, so "
            f"day-first and month-first both fit (e.g. {uniques.iloc[0]!r}); {hint}"
        )
    day, month = (parts[0], parts[2]) if first.max() > 12 else (parts[2], parts[0])
    iso_text = (parts[3] + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + " "
                + parts[4].fillna("0").str.zfill(2) + ":" + parts[5].fillna("00") + ":" + parts[6].fillna("00"))
    parsed = pd.to_datetime(iso_text, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise DataError(f"{path}: column InvoiceDate has impossible dates: {examples_of(bad)}")
    return parsed
