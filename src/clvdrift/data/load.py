"""Load retail transactions from CSV (plain or gzip), XLSX or Parquet into the canonical schema.

Rules:

- Columns: the Online Retail names (InvoiceNo, UnitPrice, CustomerID), the Online Retail II names
  (Invoice, Price, Customer ID), or a user mapping ``{"name in file": "canonical name"}``. Names are
  matched without regard to case, spaces and underscores (``customer_id`` is CustomerID). Columns
  that are not needed are not read; two columns for the same canonical name are an error.
- CSV: the delimiter (``,`` ``;`` tab ``|``) is taken from the header line. In a file not delimited by
  commas, numbers may use a decimal comma (``2,55``); a column mixing decimal commas and points (e.g.
  thousands separators ``1.234,56``) is refused rather than guessed. A UTF-8 byte-order mark is ignored.
- Encoding: UTF-8, falling back to ISO-8859-1 when the file is not valid UTF-8; UTF-16 when the file
  starts with its byte-order mark (Excel's "Unicode text" export); or as given.
- XLSX: every sheet whose header row has the required columns is read, in sheet order (Online Retail II
  ships two years as two sheets); other sheets (notes, pivots) are skipped.
- Dates: ISO 8601, with or without a UTC offset (offsets are converted to UTC, then dropped; a column
  mixing dates with and without an offset is refused); ``DD-MM-YYYY HH:MM`` and ``M/D/YYYY H:MM`` (any of
  ``- / .`` as separator) are inferred only when the file itself shows the order (a first part > 12
  means day-first, a second part > 12 means month-first); otherwise :class:`AmbiguousDateError` asks for
  ``date_format``.
- Values: Quantity must be whole; |Quantity| ≤ 10⁹, |UnitPrice| ≤ 10⁹ and |Quantity × UnitPrice| ≤ 10¹²
  (:mod:`clvdrift.data.schema`), so money summed in integer thousandths stays exact.
- Never drops a row: unparseable values raise :class:`DataError` naming the file, the column and
  example lines; empty values stay missing and are counted by the cleaning step.

The result has the canonical columns (Description may be absent in the file and is then empty), with
InvoiceNo/StockCode/CustomerID/Country as pandas categoricals, Quantity and UnitPrice as float64 and
InvoiceDate as datetime64. ``frame.attrs`` records the source path, format, encoding, CSV delimiter and
how rows are numbered in the source (``rows``, see :func:`clvdrift.data.schema.row_name`).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clvdrift.data import schema
from clvdrift.errors import AmbiguousDateError, ConfigError, DataError

_MAX_EXAMPLES = 3
_DELIMITERS = (",", ";", "\t", "|")
_OFFSET = r"(?:Z|[+-]\d{2}(?::?\d{2})?)"
_ISO_RE = rf"^\d{{4}}-\d{{1,2}}-\d{{1,2}}(?:[ T]\d{{1,2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?{_OFFSET}?)?$"
_DMY_RE = r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$"
_DECIMAL_COMMA_RE = r"^[+-]?\d*,\d+$"

RowNamer = Callable[[int], str]


@dataclass
class _Source:
    """What was read from a file before conversion: the needed columns and how to name its rows."""

    table: pa.Table
    rows: dict[str, Any]
    encoding: str | None = None
    delimiter: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a transactions file")
    kind = _file_kind(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    source = _read_source(path, kind, encoding, columns or {})
    table = source.table
    if table.num_rows == 0:
        raise DataError(f"{path}: file has a header but no data rows")

    def line(i: int) -> str:
        return schema.row_name({"rows": source.rows}, i)

    comma_ok = source.delimiter not in (None, ",")
    data: dict[str, object] = {}
    for name in (schema.INVOICE, schema.STOCK_CODE, schema.CUSTOMER, schema.COUNTRY):
        data[name] = _categorical(table.column(name), customer=name == schema.CUSTOMER)
    if schema.DESCRIPTION in table.column_names:
        description = _as_string(table.column(schema.DESCRIPTION))
        data[schema.DESCRIPTION] = description.to_pandas(types_mapper=pd.ArrowDtype)
    else:
        data[schema.DESCRIPTION] = pd.Series(pd.NA, index=range(table.num_rows), dtype="string[pyarrow]")
    qty = _numeric(table.column(schema.QUANTITY), path, schema.QUANTITY, line, comma_ok, whole=True)
    price = _numeric(table.column(schema.UNIT_PRICE), path, schema.UNIT_PRICE, line, comma_ok)
    validate_amounts(qty, price, where=str(path), row=line)
    data[schema.QUANTITY], data[schema.UNIT_PRICE] = qty, price
    data[schema.INVOICE_DATE] = _dates(table.column(schema.INVOICE_DATE), path, date_format, line)
    frame = pd.DataFrame({name: data[name] for name in schema.CANONICAL_COLUMNS})
    frame.attrs.update(
        {
            "source": str(path),
            "format": kind,
            "encoding": source.encoding,
            "delimiter": source.delimiter,
            "rows": source.rows,
            **source.extra,
        }
    )
    return frame


def _file_kind(path: Path) -> str:
    name = _lower_name(path)
    if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz", ".gz")):
        return "csv"
    if name.endswith((".xlsx", ".xlsm")):
        return "xlsx"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise DataError(f"{path}: unsupported file type; expected one of {', '.join(schema.SUPPORTED_SUFFIXES)}")


def _read_source(path: Path, kind: str, encoding: str | None, mapping: Mapping[str, str]) -> _Source:
    try:
        if kind == "csv":
            return _read_csv(path, encoding, mapping)
        if kind == "parquet":
            return _read_parquet(path, mapping)
        return _read_xlsx(path, mapping)
    except DataError:
        raise
    except Exception as exc:  # pyarrow, openpyxl, gzip, zipfile all raise their own types
        raise DataError(f"{path}: cannot read as {kind.upper()}: {_short(exc)}") from exc


def _column_plan(names: list[str], path: Path, mapping: Mapping[str, str], where: str = "") -> dict[str, str]:
    """``{name in the file: canonical name}`` for the columns to read; raises on missing or doubled ones."""
    bad_targets = sorted(set(mapping.values()) - set(schema.CANONICAL_COLUMNS))
    if bad_targets:
        raise DataError(
            f"column mapping: unknown target name(s) {bad_targets}; expected {list(schema.CANONICAL_COLUMNS)}"
        )
    missing_sources = sorted(set(mapping) - set(names))
    if missing_sources:
        raise DataError(
            f"{path}: column mapping names column(s) {missing_sources} not in the file; found {names}"
        )
    plan: dict[str, str] = {}
    sources: dict[str, list[str]] = {}
    for name in names:
        canonical = mapping.get(name) or schema.NAME_KEYS.get(schema.name_key(name))
        if canonical:
            plan[name] = canonical
            sources.setdefault(canonical, []).append(name)
    dupes = {c: n for c, n in sources.items() if len(n) > 1}
    if dupes:
        shown = "; ".join(f"{c} ← {n}" for c, n in dupes.items())
        raise DataError(
            f"{path}{where}: more than one column maps to the same name ({shown}); "
            "rename or drop one, or pass a column mapping"
        )
    missing = [c for c in schema.REQUIRED_COLUMNS if c not in sources]
    if missing:
        raise DataError(
            f"{path}{where}: missing required column(s) {missing}; found {names}. "
            "Accepted names: Online Retail (InvoiceNo, UnitPrice, CustomerID), Online Retail II "
            "(Invoice, Price, Customer ID), or a column mapping."
        )
    return plan


def _read_csv(path: Path, encoding: str | None, mapping: Mapping[str, str]) -> _Source:
    import pyarrow.csv as pacsv

    if encoding is None and _utf16(path):
        encoding = "utf-16"
    header, delimiter = _csv_header(path, encoding)
    where = (
        f" (delimiter {delimiter!r})"
        if len(header) > 1
        else (
            f" (the header line has none of the delimiters {', '.join(map(repr, _DELIMITERS))}, "
            "so it reads as one column)"
        )
    )
    plan = _column_plan(header, path, mapping, where)
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in plan},
        include_columns=list(plan),
        strings_can_be_null=True,
    )
    parse = pacsv.ParseOptions(delimiter=delimiter)
    for enc in [encoding] if encoding else ["utf8", "latin1"]:
        try:
            read = pacsv.ReadOptions(encoding=enc, block_size=1 << 24, column_names=header, skip_rows=1)
            with open(path, "rb") as fh:  # opened here: Arrow cannot open a name that is not UTF-8
                source = pa.CompressedInputStream(fh, "gzip") if _gzipped(path) else fh
                table = pacsv.read_csv(
                    source, read_options=read, parse_options=parse, convert_options=convert
                )
        except pa.ArrowInvalid as exc:
            if encoding is None and enc == "utf8" and "UTF8" in str(exc):
                continue  # not UTF-8: read again as ISO-8859-1
            raise
        table = table.rename_columns([plan[n] for n in table.column_names])
        return _Source(table, {"unit": "line", "first": 2}, _enc_name(enc), delimiter)
    raise AssertionError("unreachable")


def _csv_header(path: Path, encoding: str | None) -> tuple[list[str], str]:
    """The header's column names and the delimiter that splits it into the most columns."""
    opener = gzip.open if _gzipped(path) else open
    with opener(path, "rb") as fh:
        head = fh.read(1 << 16)
    if (encoding or "").lower().replace("-", "").startswith("utf16"):
        text = head.decode(encoding or "utf-16", errors="ignore")
    else:
        raw = head.split(b"\n", 1)[0]
        try:
            text = raw.decode(encoding or "utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin1" if encoding is None else encoding, errors="replace")
    text = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    if not text.strip():
        raise DataError(f"{path}: no header line")
    splits = [next(csv.reader(io.StringIO(text), delimiter=d)) for d in _DELIMITERS]
    best = max(range(len(_DELIMITERS)), key=lambda i: len(splits[i]))  # ties: the earlier delimiter
    return [name.strip() for name in splits[best]], _DELIMITERS[best]


def _utf16(path: Path) -> bool:
    """Whether the file starts with a UTF-16 byte-order mark (Excel's "Unicode text" export)."""
    opener = gzip.open if _gzipped(path) else open
    with opener(path, "rb") as fh:
        return fh.read(2) in (b"\xff\xfe", b"\xfe\xff")


def _gzipped(path: Path) -> bool:
    return _lower_name(path).endswith(".gz")


def _lower_name(path: Path) -> str:
    """The file name as suffixes are matched: without case and surrounding spaces (``"x.CSV "``)."""
    return path.name.strip().lower()


def _read_parquet(path: Path, mapping: Mapping[str, str]) -> _Source:
    import pyarrow.parquet as pq

    with open(path, "rb") as fh:  # opened here: Arrow cannot open a name that is not UTF-8
        names = pq.read_schema(fh).names
        plan = _column_plan(names, path, mapping)
        fh.seek(0)
        table = pq.read_table(fh, columns=list(plan))
    return _Source(table.rename_columns([plan[n] for n in table.column_names]), {"unit": "row", "first": 1})


def _read_xlsx(path: Path, mapping: Mapping[str, str]) -> _Source:
    """Every sheet whose header row has the required columns, concatenated in sheet order."""
    sheets = pd.read_excel(path, sheet_name=None, header=None, engine="openpyxl")
    parts: list[pd.DataFrame] = []
    counts: list[list[object]] = []
    skipped: dict[str, str] = {}
    for sheet, raw in sheets.items():
        if raw.empty:
            skipped[str(sheet)] = "empty"
            continue
        names = ["" if pd.isna(v) else str(v).strip() for v in raw.iloc[0]]
        try:
            plan = _column_plan(names, path, mapping, f" (sheet {sheet!r})")
        except DataError as exc:
            skipped[str(sheet)] = str(exc)
            continue
        body = raw.iloc[1:].copy()
        body.columns = names
        body = body[list(plan)].set_axis(list(plan.values()), axis=1).infer_objects()
        parts.append(body)
        counts.append([str(sheet), len(body)])
    if not parts:
        raise DataError(f"{path}: no sheet has the transaction columns: " + " | ".join(skipped.values()))
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    for name in frame.select_dtypes(include=object).columns:
        col = frame[name]
        frame[name] = col.where(col.isna(), col.astype(str))
    rows: dict[str, Any] = {"unit": "row", "first": 2}
    if len(parts) > 1:
        rows["sheets"] = counts
    extra = {"sheets_read": [c[0] for c in counts], "sheets_skipped": sorted(skipped)}
    return _Source(pa.Table.from_pandas(frame, preserve_index=False), rows, extra=extra)


def _enc_name(enc: str) -> str:
    return {"utf8": "utf-8", "latin1": "iso-8859-1"}.get(enc, enc)


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


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


def _examples(values: pd.Series, bad: np.ndarray, line: RowNamer) -> str:
    idx = np.flatnonzero(bad)
    shown = ", ".join(f"{line(i)}: {_show(values.iloc[i])}" for i in idx[:_MAX_EXAMPLES])
    more = f" and {len(idx) - _MAX_EXAMPLES} more" if len(idx) > _MAX_EXAMPLES else ""
    return f"{len(idx)} bad value(s), e.g. {shown}{more}"


def _show(value: object) -> str:
    """A value as the user typed it: text quoted, numbers plain (``9.2e+18``, not ``np.float64(...)``)."""
    return f"{value:.6g}" if isinstance(value, (float, np.floating)) else repr(value)


def _numeric(
    col: pa.ChunkedArray, path: Path, name: str, line: RowNamer, decimal_comma: bool, *, whole: bool = False
) -> np.ndarray:
    """Float64 values of a numeric column; refuses text, fractions (``whole``), ±inf and values beyond
    the column's bound. ``decimal_comma`` allows ``2,55`` (files not delimited by commas)."""
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    else:
        strings = _as_string(col)
        if decimal_comma:
            strings = _decimal_commas(strings, path, name, line)
        try:
            values = pc.cast(strings, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = strings.to_pandas()
            parsed = pd.to_numeric(text, errors="coerce")
            bad = (text.notna() & parsed.isna()).to_numpy()
            hint = (
                "; decimal commas are read only in files delimited by ';', tab or '|'"
                if text[bad].str.contains(",").any()
                else ""
            )
            raise DataError(
                f"{path}: column {name} must be numeric: {_examples(text, bad, line)}{hint}"
            ) from None
    values = np.asarray(values, dtype=np.float64)
    shown = pd.Series(values)
    if np.isinf(values).any():
        raise DataError(
            f"{path}: column {name} has infinite values: {_examples(shown, np.isinf(values), line)}"
        )
    if whole:
        bad = np.isfinite(values) & (values != np.round(values))
        if bad.any():
            raise DataError(f"{path}: column {name} must hold whole numbers: {_examples(shown, bad, line)}")
    return values


def _decimal_commas(strings: pa.ChunkedArray, path: Path, name: str, line: RowNamer) -> pa.ChunkedArray:
    """``2,55`` → ``2.55`` when the column uses decimal commas only; a column mixing them with points
    (``1.234,56``, or ``2,55`` next to ``2.55``) is ambiguous and refused."""
    has_comma = pc.fill_null(pc.match_substring(strings, ","), False)
    if not pc.any(has_comma).as_py():
        return strings
    text = strings.to_pandas()
    mixed = (text.str.contains(".", regex=False) & text.notna()).to_numpy()
    odd = (
        has_comma.to_numpy(zero_copy_only=False) & ~text.str.match(_DECIMAL_COMMA_RE).fillna(False).to_numpy()
    )
    if mixed.any() or odd.any():
        first_comma = int(np.flatnonzero(has_comma.to_numpy(zero_copy_only=False))[0])
        raise DataError(
            f"{path}: column {name} mixes decimal commas ({line(first_comma)}: {text.iloc[first_comma]!r}) "
            f"with points or separators: {_examples(text, mixed | odd, line)}; write every number one way, "
            "without thousands separators"
        )
    return pc.replace_substring(strings, ",", ".")


def validate_amounts(quantity: np.ndarray, unit_price: np.ndarray, *, where: str, row: RowNamer) -> None:
    """Refuse values money cannot be summed exactly for: |Quantity| or |UnitPrice| above 10⁹, or a line
    worth more than 10¹² (:mod:`clvdrift.data.schema`). Missing values pass (cleaning counts them).

    ``row(i)`` names the i-th row for the message (see :func:`clvdrift.data.schema.row_name`).
    """
    quantity = np.asarray(quantity, dtype=np.float64)
    unit_price = np.asarray(unit_price, dtype=np.float64)
    for name, values, bound in (
        (schema.QUANTITY, quantity, schema.MAX_ABS_QUANTITY),
        (schema.UNIT_PRICE, unit_price, schema.MAX_ABS_UNIT_PRICE),
    ):
        with np.errstate(invalid="ignore"):
            bad = np.abs(values) > bound
        if bad.any():
            raise DataError(
                f"{where}: column {name} has values beyond ±{bound:.0e} (the bound that keeps money "
                f"sums exact): {_examples(pd.Series(values), bad, row)}"
            )
    with np.errstate(invalid="ignore"):
        bad = np.abs(quantity * unit_price) > schema.MAX_ABS_LINE_VALUE
    if bad.any():
        idx = np.flatnonzero(bad)
        examples = ", ".join(f"{row(i)}: {quantity[i]:.0f} × {unit_price[i]:g}" for i in idx[:_MAX_EXAMPLES])
        raise DataError(
            f"{where}: Quantity × UnitPrice is beyond ±{schema.MAX_ABS_LINE_VALUE:.0e} on "
            f"{len(idx)} line(s), e.g. {examples}; such values are errors or need another unit"
        )


def _dates(col: pa.ChunkedArray, path: Path, date_format: str | None, line: RowNamer) -> np.ndarray:
    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        return _typed_dates(col, path)
    encoded = pc.dictionary_encode(_as_string(col)).combine_chunks()
    uniques = pd.Series(encoded.dictionary.to_pylist(), dtype=object)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    codes = np.where(encoded.is_null().to_numpy(zero_copy_only=False), -1, codes)

    def examples_of(bad_unique: np.ndarray) -> str:
        bad_rows = np.isin(codes, np.flatnonzero(bad_unique))
        return _examples(pd.Series(uniques.to_numpy()[np.where(codes >= 0, codes, 0)]), bad_rows, line)

    if date_format:
        aware = "%z" in date_format or "%Z" in date_format
        try:
            parsed = _naive(pd.to_datetime(uniques, format=date_format, errors="coerce", utc=aware))
        except ValueError as e:  # a bad directive such as %Q: the format, not the data, is wrong
            raise ConfigError(f"--date-format {date_format!r}: {e}") from None
        bad = parsed.isna().to_numpy() & uniques.ne("").to_numpy()
        if bad.any():
            raise DataError(
                f"{path}: column InvoiceDate does not match --date-format {date_format!r} "
                f"(or is out of range): {examples_of(bad)}"
            )
    else:
        parsed = _infer_dates(uniques, path, examples_of)
    out = parsed.to_numpy(dtype="datetime64[ns]")
    result = (
        out[np.where(codes >= 0, codes, 0)] if len(out) else np.full(len(codes), np.datetime64("NaT", "ns"))
    )
    result[codes < 0] = np.datetime64("NaT")
    return result


def _typed_dates(col: pa.ChunkedArray, path: Path) -> np.ndarray:
    """Timestamps stored as such (Parquet, XLSX); time-zone-aware ones become naive UTC."""
    try:
        values = pd.to_datetime(col.to_pandas())
    except (ValueError, OverflowError, pa.ArrowInvalid) as exc:
        raise DataError(
            f"{path}: column InvoiceDate has dates pandas cannot hold "
            f"(1677-09-21 to 2262-04-11): {_short(exc)}"
        ) from None
    return _naive(values).to_numpy(dtype="datetime64[ns]")


def _naive(values: pd.Series) -> pd.Series:
    return values.dt.tz_convert(None) if isinstance(values.dtype, pd.DatetimeTZDtype) else values


def _infer_dates(uniques: pd.Series, path: Path, examples_of: Callable[[np.ndarray], str]) -> pd.Series:
    if uniques.empty:
        return pd.Series([], dtype="datetime64[ns]")
    iso = uniques.str.match(_ISO_RE).to_numpy()
    if iso.all():
        return _iso_dates(uniques, path, examples_of)
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
    hint = (
        f"pass --date-format '%d{sep}%m{sep}%Y %H:%M' (day first) or '%m{sep}%d{sep}%Y %H:%M' (month first)"
    )
    if first.max() > 12 and second.max() > 12:
        raise DataError(
            f"{path}: column InvoiceDate is neither consistently day-first nor month-first "
            f"(e.g. {examples_of(first > 12)}); {hint}"
        )
    if first.max() <= 12 and second.max() <= 12:
        raise AmbiguousDateError(
            f"{path}: column InvoiceDate is ambiguous: every date has day and month both ≤ 12, so "
            f"day-first and month-first both fit (e.g. {uniques.iloc[0]!r}); {hint}"
        )
    day, month = (parts[0], parts[2]) if first.max() > 12 else (parts[2], parts[0])
    iso_text = (
        parts[3]
        + "-"
        + month.str.zfill(2)
        + "-"
        + day.str.zfill(2)
        + " "
        + parts[4].fillna("0").str.zfill(2)
        + ":"
        + parts[5].fillna("00")
        + ":"
        + parts[6].fillna("00")
    )
    parsed = pd.to_datetime(iso_text, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise DataError(f"{path}: column InvoiceDate has impossible dates: {examples_of(bad)}")
    return parsed


def _iso_dates(uniques: pd.Series, path: Path, examples_of: Callable[[np.ndarray], str]) -> pd.Series:
    """ISO 8601 dates; with UTC offsets they are converted to UTC (all of them must have one)."""
    aware = uniques.str.contains(rf":\d{{2}}(?:\.\d+)?{_OFFSET}$", regex=True).to_numpy()
    if aware.any() and not aware.all():
        raise DataError(
            f"{path}: column InvoiceDate mixes dates with and without a UTC offset: "
            f"{examples_of(~aware)} have none"
        )
    parsed = _naive(pd.to_datetime(uniques, format="ISO8601", errors="coerce", utc=bool(aware.any())))
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise DataError(
            f"{path}: column InvoiceDate has impossible or out-of-range dates "
            f"(pandas holds 1677-09-21 to 2262-04-11): {examples_of(bad)}"
        )
    return parsed
