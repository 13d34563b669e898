"""Result types and errors of the data-drift check.

Every result is a small frozen dataclass whose ``to_dict()`` returns plain JSON types (``dict``,
``list``, ``str``, ``int``, ``float``, ``bool``, ``None``), all through :mod:`clvdrift.jsonable`, the
project's one NaN-safe convention: a non-finite float (NaN, +-inf) becomes ``None``, because JSON has no
infinity and PostgreSQL's JSON columns refuse NaN. Where the non-finite value carries meaning (an
infinite chi-square statistic when the current window holds a category the reference never saw), the
result's ``note`` says so in words; ``None`` alone never stands for both "not computed" and
"infinite".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clvdrift.errors import DriftInputError, ProfileIntegrityError
from clvdrift.jsonable import dataclass_dict

__all__ = [
    "ColumnDriftResult",
    "ColumnMissingValues",
    "CorrelationChange",
    "DataDriftResult",
    "DriftInputError",
    "MissingValuesResult",
    "ProfileIntegrityError",
]


@dataclass(frozen=True)
class ColumnDriftResult:
    """Outcome of one column's drift test.

    ``drifted`` is the final decision and ``decided_by`` says what made it: ``"test"`` (the test's own
    rule, ``raw_decision_rule``), ``"calibration"`` (the calibrated p-value of a permutation null),
    ``"fdr"`` (the Benjamini-Hochberg adjusted p-value, of the calibrated p-values when calibration is
    on) or ``"no-values"`` (one side has no values). ``decision_rule`` is the rule that decided, in
    words with its numbers; ``raw_drifted`` is the test's own decision whatever decided.

    ``calibrated_statistic`` is the observed value of the calibrated statistic
    (``calibrated_statistic_name``) on the calibration grid, ``calibrated_threshold`` the null's
    ``1 - alpha`` quantile on the same scale (``None`` with a ``note`` when infinite: then no split of
    the pooled counts can reach the level). ``sketch_error_bound`` is the reference sketch's error bound
    (``None`` when the reference is exact).
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
    raw_decision_rule: str
    decided_by: str  # "test" | "calibration" | "fdr" | "no-values"
    effect_size: float | None
    effect_size_name: str | None
    drifted: bool
    raw_drifted: bool
    reference_size: int
    current_size: int
    n_unique: int | None = None
    exact_reference: bool = True
    sketch_error_bound: dict[str, float] | None = None
    adjusted_p_value: float | None = None
    calibrated_statistic: float | None = None
    calibrated_statistic_name: str | None = None
    calibrated_threshold: float | None = None
    calibrated_p_value: float | None = None
    calibration_method: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation (see :mod:`clvdrift.jsonable`)."""
        return dataclass_dict(self)


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
        return dataclass_dict(self)


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
        return dataclass_dict(self)


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
    def unmeasured(
        cls, threshold: float, columns: list[str], reference_rows: int, current_rows: int, note: str
    ) -> CorrelationChange:
        """No correlation could be compared; ``note`` says why."""
        return cls(threshold, columns, None, None, None, None, False, reference_rows, current_rows, note=note)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation."""
        return dataclass_dict(self)


@dataclass(frozen=True)
class DataDriftResult:
    """Dataset-level drift verdict with its per-column evidence.

    ``dataset_drift`` is ``drift_share >= drift_share_threshold`` OR a key column drifted, with the
    key-column rule as ``dataset_rule`` states it (with calibration: a key column's calibrated p-value
    at most its level divided by the number of key columns, Bonferroni); ``reasons`` names the
    rule(s) that fired (empty when no drift).
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
    dataset_rule: str
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
        return dataclass_dict(self)
