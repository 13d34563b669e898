"""Transaction rows sent as records (the service's ``POST /ingest/*``): validated one by one.

Each record is one line of the Online Retail schema (:mod:`clvdrift.data.schema`). A record that fails is
rejected with its reason; the others are kept. :func:`records_to_frame` returns the kept rows in the
canonical schema, exactly as :func:`clvdrift.data.load_transactions` returns a file's rows, so the history
stores and the cleaning treats them the same way.

Rules (besides types): text fields 1-64 characters (Description up to 512, Country 1-64),
``InvoiceDate`` an ISO 8601 date-time between 1990 and 2100 (a time zone is converted to UTC and
dropped: the history holds naive times), ``|Quantity|`` and ``|UnitPrice|`` at most 10⁹ and a line worth at
most 10¹² (the bounds that keep money sums exact). ``CustomerID`` may be missing (such lines are kept in
the history and removed by the cleaning, as in a file); a number-like id ``17850.0`` is ``17850``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
)

from clvdrift.data import schema
from clvdrift.jsonable import dataclass_dict

__all__ = ["RecordsResult", "Rejected", "TransactionRecord", "records_to_frame"]

Text64 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
EARLIEST, LATEST = datetime(1990, 1, 1), datetime(2100, 1, 1)


class TransactionRecord(BaseModel):
    """One transaction line (an invoice line of the Online Retail schema)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    InvoiceNo: Text64 = Field(description="invoice number; a leading C marks a cancellation")
    StockCode: Text64
    Description: Annotated[str, StringConstraints(max_length=512)] | None = None
    Quantity: StrictInt = Field(ge=-schema.MAX_ABS_QUANTITY, le=schema.MAX_ABS_QUANTITY)
    InvoiceDate: datetime = Field(description="ISO 8601, e.g. 2011-12-09T12:50:00")
    UnitPrice: float = Field(ge=-schema.MAX_ABS_UNIT_PRICE, le=schema.MAX_ABS_UNIT_PRICE, allow_inf_nan=False)
    CustomerID: Annotated[str, StringConstraints(max_length=64)] | StrictInt | StrictFloat | None = None
    Country: Text64

    @field_validator("InvoiceNo", "StockCode", "Description", "Country", "CustomerID")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.isprintable():
                raise ValueError("control characters are not allowed")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("not valid UTF-8 text (a lone surrogate)") from None
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("a customer id is a whole number or a text")
        return value

    @field_validator("InvoiceDate")
    @classmethod
    def _date_in_range(cls, value: datetime) -> datetime:
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        if not EARLIEST <= value < LATEST:
            raise ValueError("date outside 1990-01-01 … 2100-01-01")
        return value

    @field_validator("UnitPrice")
    @classmethod
    def _line_value(cls, value: float, info: Any) -> float:
        quantity = info.data.get("Quantity")
        if quantity is not None and abs(quantity * value) > schema.MAX_ABS_LINE_VALUE:
            raise ValueError(f"Quantity × UnitPrice is beyond ±{schema.MAX_ABS_LINE_VALUE:.0e}")
        return value


@dataclass(frozen=True)
class Rejected:
    """A record that was not kept: its position in the request (0-based) and why."""

    index: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


@dataclass(frozen=True)
class RecordsResult:
    frame: pd.DataFrame
    """The kept records in the canonical schema (as :func:`clvdrift.data.load_transactions` returns)."""
    rejected: list[Rejected]


def _reason(error: ValidationError) -> str:
    parts = []
    for e in error.errors(include_url=False)[:3]:
        where = ".".join(str(p) for p in e["loc"]) or "row"
        message = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


_ID_ZEROS = re.compile(r"\.0+$")


def _customer(value: str | int | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        value = int(value)
    text = _ID_ZEROS.sub("", str(value).strip())
    return text or None


def records_to_frame(records: Sequence[Any]) -> RecordsResult:
    """Validate each record (module docstring); the kept ones as a canonical frame, and the rejected."""
    kept: list[TransactionRecord] = []
    rejected: list[Rejected] = []
    for i, record in enumerate(records):
        if isinstance(record, Exception):  # a record the caller could not even parse, and why
            rejected.append(Rejected(i, f"row: {record}"))
            continue
        if not isinstance(record, dict):
            rejected.append(Rejected(i, f"row: expected an object, got {type(record).__name__}"))
            continue
        try:
            kept.append(TransactionRecord.model_validate(record))
        except ValidationError as exc:
            rejected.append(Rejected(i, _reason(exc)))
    columns: dict[str, Any] = {
        schema.INVOICE: [r.InvoiceNo for r in kept],
        schema.STOCK_CODE: [r.StockCode for r in kept],
        schema.DESCRIPTION: pd.array([r.Description for r in kept], dtype="string[pyarrow]"),
        schema.QUANTITY: np.array([r.Quantity for r in kept], dtype=np.float64),
        schema.INVOICE_DATE: pd.to_datetime(pd.Series([r.InvoiceDate for r in kept], dtype=object)).astype(
            "datetime64[ns]"
        ),
        schema.UNIT_PRICE: np.array([r.UnitPrice for r in kept], dtype=np.float64),
        schema.CUSTOMER: [_customer(r.CustomerID) for r in kept],
        schema.COUNTRY: [r.Country for r in kept],
    }
    for name in (schema.INVOICE, schema.STOCK_CODE, schema.CUSTOMER, schema.COUNTRY):
        columns[name] = pd.Categorical(pd.Series(columns[name], dtype=object))
    frame = pd.DataFrame({name: columns[name] for name in schema.CANONICAL_COLUMNS})
    frame.attrs.update({"source": "records", "format": "records", "rows": {"unit": "record", "first": 0}})
    return RecordsResult(frame, rejected)
