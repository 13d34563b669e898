"""The one JSON convention of every result: ``to_dict()`` returns plain JSON types.

Non-finite floats (NaN, ±inf) become ``None`` (JSON has no NaN, PostgreSQL JSON columns refuse it); a
result whose meaning depends on such a value says so in a ``note`` of its own. numpy scalars become
Python scalars, dates ISO strings, paths strings, nested results their ``to_dict()``.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

__all__ = ["TRANSIENT", "dataclass_dict", "dumps", "plain"]


def plain(value: Any) -> Any:
    """``value`` as plain JSON types, recursively (see the module docstring)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return dataclass_dict(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "item"):  # numpy scalar
        return plain(value.item())
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    return str(value)


TRANSIENT = {"transient": True}
"""``field(metadata=TRANSIENT)`` marks a field that lives in memory only: :func:`dataclass_dict` leaves
it out."""


def dataclass_dict(obj: Any) -> dict[str, Any]:
    """The fields of a dataclass instance as plain JSON types (without :data:`TRANSIENT` fields)."""
    return {f.name: plain(getattr(obj, f.name)) for f in fields(obj) if not f.metadata.get("transient")}


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """JSON text of :func:`plain` of ``value`` (never NaN or Infinity in the output)."""
    return json.dumps(plain(value), indent=indent, allow_nan=False, ensure_ascii=False)
