"""Conversions of pandas columns for profiling and checking: numbers as float64 arrays, categories
as stable JSON-able values, and the auto-detection of column kinds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from clvdrift.drift.result import DriftInputError

__all__ = [
    "CATEGORICAL",
    "NUMERICAL",
    "category_counts",
    "category_sort_key",
    "detect_kinds",
    "is_integer_column",
    "normalize_category",
    "resolve_kinds",
    "to_float_array",
]

NUMERICAL = "numerical"
CATEGORICAL = "categorical"

FloatArray = np.ndarray


def normalize_category(value: Any) -> Any:
    """JSON-able, stable representation of a category value.

    numpy scalars become Python scalars, integral floats become ``int`` (so ``1.0`` and ``1`` are one
    category, as pandas counts them), ``str``/``int``/``float``/``bool`` stay, anything else is
    ``str(value)``.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return str(value)


def category_sort_key(item: tuple[Any, int]) -> tuple[str, str]:
    """Deterministic order of ``(category, count)`` pairs whatever the category types."""
    return (type(item[0]).__name__, repr(item[0]))


def category_counts(series: pd.Series) -> tuple[dict[Any, int], int]:
    """Counts of the non-missing values of ``series`` (normalised, see :func:`normalize_category`)
    and the number of missing values."""
    vc = series.value_counts(dropna=True, sort=False)
    counts: dict[Any, int] = {}
    for key, cnt in zip(vc.index.tolist(), vc.to_numpy().tolist(), strict=True):
        if cnt == 0:  # unused levels of a pandas Categorical
            continue
        k = normalize_category(key)
        counts[k] = counts.get(k, 0) + int(cnt)
    missing = int(len(series) - sum(counts.values()))
    return counts, missing


def to_float_array(series: pd.Series, name: str, where: str) -> FloatArray:
    """``series`` as a float64 array (a view when it already is float64); NaN for missing.

    Raises :class:`DriftInputError` naming the column and example values when the column holds
    values that are not numbers.
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        if dtype == np.float64:
            return series.to_numpy()
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        coerced = pd.to_numeric(series, errors="coerce")
        bad = coerced.isna() & series.notna()
        if bad.any():
            examples = series[bad].drop_duplicates().head(5).tolist()
            raise DriftInputError(
                f"column {name!r} in the {where} data should be numerical but has {int(bad.sum())} "
                f"non-numeric value(s), e.g. {examples!r} (rows {series.index[bad][:5].tolist()!r})"
            )
        return coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    raise DriftInputError(
        f"column {name!r} in the {where} data has dtype {dtype}, which is neither numerical nor "
        "categorical; convert it or leave it out"
    )


def detect_kinds(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Auto-detect column kinds: numeric (non-bool) dtypes are numerical; object, category,
    string and bool dtypes are categorical.  Other dtypes (datetime, timedelta, complex) raise."""
    numerical: list[str] = []
    categorical: list[str] = []
    bad: list[str] = []
    for col in frame.columns:
        dtype = frame[col].dtype
        if pd.api.types.is_bool_dtype(dtype):
            categorical.append(str(col))
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
            numerical.append(str(col))
        elif (
            pd.api.types.is_object_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(dtype)
        ):
            categorical.append(str(col))
        else:
            bad.append(f"{col!r} ({dtype})")
    if bad:
        raise DriftInputError(
            "cannot auto-detect the kind of column(s) " + ", ".join(bad) + "; pass numerical_columns="
            " and categorical_columns= explicitly (leaving these columns out)"
        )
    return numerical, categorical


def is_integer_column(series: pd.Series) -> bool:
    """Whether ``series`` has an integer dtype (NumPy or pandas nullable; not bool), as NumPy's
    histogram sees it: bins of integer data are at least 1 wide."""
    dtype = series.dtype
    return bool(pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))


def resolve_kinds(
    frame: pd.DataFrame,
    numerical_columns: Sequence[str] | None,
    categorical_columns: Sequence[str] | None,
) -> tuple[list[str], list[str], bool]:
    """The numerical and categorical columns to profile, and whether they were auto-detected (both
    lists ``None``); explicit lists must be disjoint and name columns of ``frame``."""
    if numerical_columns is None and categorical_columns is None:
        num, cat = detect_kinds(frame)
        return num, cat, True
    num = list(numerical_columns or [])
    cat = list(categorical_columns or [])
    both = sorted(set(num) & set(cat))
    if both:
        raise DriftInputError(f"column(s) {both} are listed as both numerical and categorical")
    missing = [c for c in [*num, *cat] if c not in frame.columns]
    if missing:
        raise DriftInputError(
            f"column(s) {missing} are not in the reference frame (it has {list(map(str, frame.columns))})"
        )
    return num, cat, False
