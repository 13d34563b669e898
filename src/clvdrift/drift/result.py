"""Result types and errors of the data-drift check.

Every result is a small frozen dataclass whose ``to_dict()`` returns plain JSON types (``dict``,
``list``, ``str``, ``int``, ``float``, ``bool``, ``None``).  Non-finite floats (an infinite
chi-square statistic when the current window holds a category the reference never saw) become
``None`` in ``to_dict()``; the ``note`` of the column says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from clvdrift.errors import ArtifactIntegrityError, DataError

__all__ = [
    "ColumnDriftResult",
    "ColumnMissingValues",
    "CorrelationChange",
    "DataDriftResult",
    "DriftInputError",
    "MissingValuesResult",
    "ProfileIntegrityError",
]


class DriftInputError(DataError, ValueError):
    """The data or the configuration given to the drift check cannot be used.

    The message names the column(s) and says what the reference profile expects.
    It is a :class:`clvdrift.errors.DataError` (and so a ``ClvdriftError``) and a ``ValueError``.
    """


class ProfileIntegrityError(ArtifactIntegrityError):
    """A saved reference profile does not match the sha256 recorded in its file."""


def _json_float(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    """Turn a result value into plain JSON types (recursively)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _json_float(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    return str(value)


def _dataclass_dict(obj: Any) -> dict[str, Any]:
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}


@dataclass(frozen=True)
class ColumnDriftResult:
    """Outcome of one column's drift test.

    ``drifted`` is the final decision: the calibrated decision when calibration was used, else the
    Benjamini-Hochberg decision when ``fdr`` was used (p-value tests only), else the plain test
    decision (``raw_drifted``).
    """

    column: str
    kind: str  # "numerical" | "categorical"
    test: str  # "ks" | "chisquare" | "z" | "wasserstein" | "jensenshannon" | "psi" | "no-values"
    test_chosen_by: str  # "default" | "configured"
    test_reason: str
    statistic: float | None
    p_value: float | None
    threshold: float | None
    decision_rule: str
    effect_size: float | None
    effect_size_name: str | None
    drifted: bool
    raw_drifted: bool
    reference_size: int
    current_size: int
    n_unique: int | None = None
    exact_reference: bool = True
    adjusted_p_value: float | None = None
    calibrated_threshold: float | None = None
    calibrated_p_value: float | None = None
    calibration_method: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation (non-finite floats become ``None``)."""
        return _dataclass_dict(self)


@dataclass(frozen=True)
class ColumnMissingValues:
    """Missing share of one column in reference and current (NaN, None and +-inf count as missing)."""

    column: str
    reference_missing: int
    reference_share: float
    current_missing: int
    current_share: float
    change: float  # current_share - reference_share
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation."""
        return _dataclass_dict(self)


@dataclass(frozen=True)
class MissingValuesResult:
    """Missing-values change between reference and current over the checked columns."""

    threshold: float
    reference_share: float
    current_share: float
    change: float
    flagged: bool
    flagged_columns: list[str]
    columns: list[ColumnMissingValues]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation."""
        return _dataclass_dict(self)


@dataclass(frozen=True)
class CorrelationChange:
    """Largest change of the Pearson correlation over numeric column pairs."""

    threshold: float
    columns: list[str]
    max_abs_change: float | None
    pair: list[str] | None
    reference_correlation: float | None
    current_correlation: float | None
    flagged: bool
    reference_rows: int
    current_rows: int
    note: str | None = None

    @classmethod
    def unmeasured(cls, threshold: float, columns: list[str], reference_rows: int, current_rows: int,
                   note: str) -> CorrelationChange:
        """No correlation could be compared; ``note`` says why."""
        return cls(threshold, columns, None, None, None, None, False, reference_rows, current_rows, note=note)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation."""
        return _dataclass_dict(self)


@dataclass(frozen=True)
class DataDriftResult:
    """Dataset-level drift verdict with its per-column evidence.

    ``dataset_drift`` is ``drift_share >= drift_share_threshold`` OR any key column drifted;
    ``reasons`` names the rule(s) that fired (empty when no drift).
    """

    dataset_drift: bool
    drift_share: float
    drift_share_threshold: float
    number_of_columns: int
    number_of_drifted_columns: int
    drifted_columns: list[str]
    key_columns: list[str]
    drifted_key_columns: list[str]
    reasons: list[str]
    columns: list[ColumnDriftResult]
    missing_values: MissingValuesResult
    correlations: CorrelationChange
    reference_rows: int
    current_rows: int
    settings: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> ColumnDriftResult:
        """The result of column ``name`` (``KeyError`` if it was not checked)."""
        for col in self.columns:
            if col.column == name:
                return col
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation of the whole result."""
        return _dataclass_dict(self)
