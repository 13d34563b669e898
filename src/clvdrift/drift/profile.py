"""Reference profiles: small, mergeable, immutable summaries of a reference data set.

A :class:`ReferenceProfile` holds everything the column tests need, so the reference frame itself
never has to be kept (the pieces live in :mod:`clvdrift.drift.columns` and
:mod:`clvdrift.drift.sketch`; conversions in :mod:`clvdrift.drift.convert`):

* per numerical column: finite-value count, missing count (NaN, None and +-inf), mean and standard
  deviation (merged with Chan's parallel formula on power-of-two-scaled values, so they never
  overflow), min, max, whether the column had an integer dtype, and a :class:`ValueSketch` of the
  value distribution (exact up to ``max_exact_values`` distinct values, beyond a histogram whose error
  is bounded relative to the column's spread and, in the tails, relative to the values);
* per categorical column: exact category counts up to ``max_categories`` categories, beyond a
  Misra-Gries frequent-items summary with an ``other`` cell and a bound on every count's error;
* over the numerical columns: mergeable co-moment statistics over the rows where every numerical
  column is finite, from which the correlation matrix is derived.

``profile(a).merge(profile(b))`` equals ``profile(a + b)``: exactly for counts, min, max, integer
flags, the value sketches and (below ``max_categories``) the category counts; up to floating-point
rounding for the moments and co-moments (see :meth:`ReferenceProfile.equals`).  Beyond
``max_categories`` the merged categorical summary is within its stated error bound of the union's.

**Size.**  Per numerical column: exact, at most ``max_exact_values`` (4,096) values with counts
(about 30 bytes each in JSON); histogram, at most ``uniform_buckets + L`` cells (``L``: log buckets
between min and max, about 100 per factor e of magnitude, counted per sign), at most about 60 bytes
each.  Per categorical column: at most ``max_categories`` (1,000) categories with counts.  Measured:
1,000,000 rows of 8 numerical columns (heavy-tailed, narrow-spread, integer, at the precision such
data has) and a 100,000-category column give a saved profile of 225 KB (25-47 bytes per cell, 19 KB
for the categorical column); about 350 KB when every value is a full-precision random float.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from clvdrift.drift.columns import CategoricalColumnProfile, CorrelationStats, NumericColumnProfile
from clvdrift.drift.convert import (
    CATEGORICAL,
    NUMERICAL,
    category_counts,
    detect_kinds,
    is_integer_column,
    normalize_category,
    resolve_kinds,
    to_float_array,
)
from clvdrift.drift.result import DriftInputError, ProfileIntegrityError
from clvdrift.drift.sketch import (
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_MAX_EXACT_VALUES,
    DEFAULT_RELATIVE_ACCURACY,
    DEFAULT_UNIFORM_BUCKETS,
    ValueSketch,
)
from clvdrift.io import atomic_write_text

__all__ = [
    "CATEGORICAL",
    "NUMERICAL",
    "CategoricalColumnProfile",
    "CorrelationStats",
    "NumericColumnProfile",
    "ProfileBuilder",
    "ReferenceProfile",
    "SketchSettings",
    "ValueSketch",
    "build_profile",
    "build_profile_from_csv",
    "category_counts",
    "detect_kinds",
    "normalize_category",
    "to_float_array",
]

FORMAT = "clvdrift.reference_profile"
FORMAT_VERSION = 3
MIN_MAX_EXACT_VALUES = 1024  # references of up to 1000 rows (KS, chi-square, z) stay exact
MIN_MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class SketchSettings:
    """How a profile's columns are summarised; profiles merge only with equal settings.

    ``max_exact_values``: distinct values kept exactly per numerical column (>= 1024);
    ``relative_accuracy``: width of the log buckets beyond that, in (0, 0.5);
    ``uniform_buckets``: uniform buckets spanning a column's [min, max] (>= 2);
    ``max_categories``: categories counted exactly per categorical column (>= 1000).
    """

    max_exact_values: int = DEFAULT_MAX_EXACT_VALUES
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
    uniform_buckets: int = DEFAULT_UNIFORM_BUCKETS
    max_categories: int = DEFAULT_MAX_CATEGORIES

    def __post_init__(self) -> None:
        if self.max_exact_values < MIN_MAX_EXACT_VALUES:
            raise DriftInputError(
                f"max_exact_values must be >= {MIN_MAX_EXACT_VALUES} (so references of up to 1000 rows "
                f"stay exact), got {self.max_exact_values}"
            )
        if not 0.0 < self.relative_accuracy < 0.5:
            raise DriftInputError(f"relative_accuracy must be in (0, 0.5), got {self.relative_accuracy}")
        if self.uniform_buckets < 2:
            raise DriftInputError(f"uniform_buckets must be >= 2, got {self.uniform_buckets}")
        if self.max_categories < MIN_MAX_CATEGORIES:
            raise DriftInputError(
                f"max_categories must be >= {MIN_MAX_CATEGORIES} (so references of up to 1000 rows stay "
                f"exact), got {self.max_categories}"
            )

    def empty_sketch(self) -> ValueSketch:
        """The empty value sketch with these settings."""
        return ValueSketch.empty(self.max_exact_values, self.relative_accuracy, self.uniform_buckets)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation."""
        return {
            "max_exact_values": self.max_exact_values,
            "relative_accuracy": self.relative_accuracy,
            "uniform_buckets": self.uniform_buckets,
            "max_categories": self.max_categories,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SketchSettings:
        """Inverse of :meth:`to_dict`."""
        return cls(
            int(d["max_exact_values"]),
            float(d["relative_accuracy"]),
            int(d["uniform_buckets"]),
            int(d["max_categories"]),
        )


# ====================================================================== the profile
@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Immutable, mergeable summary of a reference data set.

    Build it with :func:`build_profile` (or chunk by chunk with :class:`ProfileBuilder` /
    :func:`build_profile_from_csv`), combine profiles with :meth:`merge`, persist with :meth:`save`
    and :meth:`load`.
    """

    columns: tuple[str, ...]
    numerical: tuple[NumericColumnProfile, ...]
    categorical: tuple[CategoricalColumnProfile, ...]
    correlation: CorrelationStats
    rows: int
    kinds_auto_detected: bool
    settings: SketchSettings = SketchSettings()

    # ---------------------------------------------------------------- access
    @property
    def numerical_columns(self) -> list[str]:
        """Names of the numerical columns."""
        return [p.name for p in self.numerical]

    @property
    def categorical_columns(self) -> list[str]:
        """Names of the categorical columns."""
        return [p.name for p in self.categorical]

    def kind(self, column: str) -> str:
        """``"numerical"`` or ``"categorical"`` (``KeyError`` for unknown columns)."""
        return NUMERICAL if isinstance(self.column(column), NumericColumnProfile) else CATEGORICAL

    def column(self, name: str) -> NumericColumnProfile | CategoricalColumnProfile:
        """The profile of one column (``KeyError`` for unknown columns)."""
        for p in self.numerical:
            if p.name == name:
                return p
        for c in self.categorical:
            if c.name == name:
                return c
        raise KeyError(name)

    # ---------------------------------------------------------------- merging
    @classmethod
    def empty(
        cls,
        numerical_columns: Sequence[str],
        categorical_columns: Sequence[str],
        *,
        columns: Sequence[str] | None = None,
        kinds_auto_detected: bool = False,
        settings: SketchSettings | None = None,
    ) -> ReferenceProfile:
        """The profile of zero rows: the identity element of :meth:`merge`."""
        settings = settings or SketchSettings()
        order = list(columns) if columns is not None else [*numerical_columns, *categorical_columns]
        return cls(
            columns=tuple(order),
            numerical=tuple(
                NumericColumnProfile.empty(c, settings.empty_sketch()) for c in numerical_columns
            ),
            categorical=tuple(
                CategoricalColumnProfile.from_counts(c, {}, 0, settings.max_categories)
                for c in categorical_columns
            ),
            correlation=CorrelationStats.empty(numerical_columns),
            rows=0,
            kinds_auto_detected=kinds_auto_detected,
            settings=settings,
        )

    def merge(self, other: ReferenceProfile) -> ReferenceProfile:
        """Profile of the union of the rows summarised by ``self`` and ``other``."""
        if (
            self.numerical_columns != other.numerical_columns
            or self.categorical_columns != other.categorical_columns
        ):
            raise DriftInputError(
                "cannot merge profiles of different columns: "
                f"numerical {self.numerical_columns} vs {other.numerical_columns}, "
                f"categorical {self.categorical_columns} vs {other.categorical_columns}"
            )
        if self.settings != other.settings:
            raise DriftInputError(
                "cannot merge profiles built with different sketch settings: "
                f"{self.settings} vs {other.settings}"
            )
        return ReferenceProfile(
            columns=self.columns,
            numerical=tuple(a.merge(b) for a, b in zip(self.numerical, other.numerical, strict=True)),
            categorical=tuple(a.merge(b) for a, b in zip(self.categorical, other.categorical, strict=True)),
            correlation=self.correlation.merge(other.correlation),
            rows=self.rows + other.rows,
            kinds_auto_detected=self.kinds_auto_detected and other.kinds_auto_detected,
            settings=self.settings,
        )

    def equals(self, other: ReferenceProfile, rtol: float = 1e-9) -> bool:
        """Equality as defined for merging.

        Exact: columns, kinds, settings, row counts, missing counts, min, max, integer flags, category
        counts and the value sketches.  Within relative tolerance ``rtol`` of each column's scale:
        means, standard deviations and the correlation co-moments (floating-point sums depend on the
        order of addition).
        """
        return (
            self.columns == other.columns
            and self.rows == other.rows
            and self.numerical_columns == other.numerical_columns
            and self.categorical_columns == other.categorical_columns
            and self.settings == other.settings
            and all(a.equals(b, rtol) for a, b in zip(self.numerical, other.numerical, strict=True))
            and all(a.equals(b) for a, b in zip(self.categorical, other.categorical, strict=True))
            and self.correlation.equals(other.correlation, rtol)
        )

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "columns": list(self.columns),
            "rows": self.rows,
            "kinds_auto_detected": self.kinds_auto_detected,
            "settings": self.settings.to_dict(),
            "numerical": [p.to_dict() for p in self.numerical],
            "categorical": [c.to_dict() for c in self.categorical],
            "correlation": self.correlation.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "reference profile") -> ReferenceProfile:
        """Inverse of :meth:`to_dict`; ``where`` names the source in error messages."""
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            fmt = d.get("format") if isinstance(d, Mapping) else type(d).__name__
            raise DriftInputError(f"{where} is not a clvdrift reference profile (format={fmt!r})")
        if d.get("format_version") != FORMAT_VERSION:
            raise DriftInputError(
                f"{where} has format version {d.get('format_version')!r}, which is not supported "
                f"(expected {FORMAT_VERSION}); rebuild the profile"
            )
        try:
            return cls(
                columns=tuple(d["columns"]),
                numerical=tuple(NumericColumnProfile.from_dict(p) for p in d["numerical"]),
                categorical=tuple(CategoricalColumnProfile.from_dict(c) for c in d["categorical"]),
                correlation=CorrelationStats.from_dict(d["correlation"]),
                rows=int(d["rows"]),
                kinds_auto_detected=bool(d["kinds_auto_detected"]),
                settings=SketchSettings.from_dict(d["settings"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DriftInputError(
                f"{where} is malformed ({type(exc).__name__}: {exc}); rebuild the profile"
            ) from None

    def to_json(self) -> str:
        """Canonical JSON text of :meth:`to_dict` (sorted keys, no NaN)."""
        return _canonical_json(self.to_dict())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile as JSON with its sha256, atomically (:func:`clvdrift.io.atomic_write_text`)."""
        path = Path(path)
        body = self.to_dict()
        text = _canonical_json(body)
        envelope = {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "profile": body}
        atomic_write_text(path, _canonical_json(envelope))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReferenceProfile:
        """Read a profile written by :meth:`save`; refuses it if its sha256 does not match.

        Raises :class:`ProfileIntegrityError` on a checksum mismatch and :class:`DriftInputError`
        when the file is not a (supported) profile.
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DriftInputError(f"cannot read reference profile {str(path)!r}: {exc}") from None
        return cls.from_bytes(data, path)

    @classmethod
    def from_bytes(cls, data: bytes, path: str | os.PathLike[str]) -> ReferenceProfile:
        """:meth:`load` on the bytes of the file ``path`` already read (the same checks and errors),
        so what a caller checked is what it loads."""
        try:
            envelope = json.loads(data.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise DriftInputError(f"cannot read reference profile {str(path)!r}: {exc}") from None
        if not isinstance(envelope, dict) or "sha256" not in envelope or "profile" not in envelope:
            raise DriftInputError(f"{str(path)!r} is not a clvdrift reference profile file")
        actual = hashlib.sha256(_canonical_json(envelope["profile"]).encode("utf-8")).hexdigest()
        if actual != envelope["sha256"]:
            raise ProfileIntegrityError(
                f"reference profile {str(path)!r} fails its checksum: recorded sha256 "
                f"{envelope['sha256']}, content hashes to {actual}; refusing to use it"
            )
        return cls.from_dict(envelope["profile"], where=f"reference profile {str(path)!r}")

    @property
    def checksum(self) -> str:
        """sha256 of the canonical JSON of the profile."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def build_profile(
    frame: pd.DataFrame,
    *,
    numerical_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    max_exact_values: int = DEFAULT_MAX_EXACT_VALUES,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
    uniform_buckets: int = DEFAULT_UNIFORM_BUCKETS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> ReferenceProfile:
    """Build the :class:`ReferenceProfile` of ``frame``.

    When neither column list is given, every column is profiled and its kind auto-detected
    (numeric dtypes except bool are numerical; object, category, string and bool are categorical);
    ``kinds_auto_detected`` records that.  When either list is given, the two lists are exactly the
    columns profiled (``None`` meaning none of that kind).  The sketch settings (see
    :class:`SketchSettings`) bound the profile's size whatever the number of rows.
    """
    settings = SketchSettings(max_exact_values, relative_accuracy, uniform_buckets, max_categories)
    return _build(frame, numerical_columns, categorical_columns, settings)


def _build(
    frame: pd.DataFrame,
    numerical_columns: Sequence[str] | None,
    categorical_columns: Sequence[str] | None,
    settings: SketchSettings,
) -> ReferenceProfile:
    if not isinstance(frame, pd.DataFrame):
        raise DriftInputError(f"build_profile needs a pandas DataFrame, got {type(frame).__name__}")
    num, cat, auto = resolve_kinds(frame, numerical_columns, categorical_columns)
    order = [str(c) for c in frame.columns if str(c) in set(num) | set(cat)]
    arrays = [to_float_array(frame[c], c, "reference") for c in num]
    numerical = tuple(
        NumericColumnProfile.from_array(c, a, settings.empty_sketch(), is_integer_column(frame[c]))
        for c, a in zip(num, arrays, strict=True)
    )
    categorical = tuple(
        CategoricalColumnProfile.from_series(c, frame[c], settings.max_categories) for c in cat
    )
    return ReferenceProfile(
        columns=tuple(order),
        numerical=numerical,
        categorical=categorical,
        correlation=CorrelationStats.from_arrays(
            num, arrays, all_finite=all(p.missing == 0 for p in numerical)
        ),
        rows=len(frame),
        kinds_auto_detected=auto,
        settings=settings,
    )


class ProfileBuilder:
    """Builds a :class:`ReferenceProfile` chunk by chunk (for data larger than memory).

    Column kinds are fixed by the constructor arguments or, when both lists are ``None``,
    auto-detected from the first chunk.  ``update`` merges the profile of each chunk; ``profile``
    returns the profile so far (equal, in the sense of :meth:`ReferenceProfile.equals`, to the
    profile of all chunks concatenated).
    """

    def __init__(
        self,
        *,
        numerical_columns: Sequence[str] | None = None,
        categorical_columns: Sequence[str] | None = None,
        max_exact_values: int = DEFAULT_MAX_EXACT_VALUES,
        relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
        uniform_buckets: int = DEFAULT_UNIFORM_BUCKETS,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
    ) -> None:
        self._settings = SketchSettings(max_exact_values, relative_accuracy, uniform_buckets, max_categories)
        self._num = (
            None
            if numerical_columns is None and categorical_columns is None
            else list(numerical_columns or [])
        )
        self._cat = None if self._num is None else list(categorical_columns or [])
        self._auto = self._num is None
        self._profile: ReferenceProfile | None = None

    def update(self, chunk: pd.DataFrame) -> ProfileBuilder:
        """Add the rows of ``chunk``; returns ``self``."""
        if self._num is None or self._cat is None:
            self._num, self._cat = detect_kinds(chunk)
        part = _build(chunk, self._num, self._cat, self._settings)
        if self._auto:
            part = replace(part, kinds_auto_detected=True)
        self._profile = part if self._profile is None else self._profile.merge(part)
        return self

    def profile(self) -> ReferenceProfile:
        """The profile of all rows added so far."""
        if self._profile is None:
            if self._num is None or self._cat is None:
                raise DriftInputError("no data was added to the profile builder and no columns were given")
            return ReferenceProfile.empty(self._num, self._cat, settings=self._settings)
        return self._profile


def build_profile_from_chunks(
    chunks: Iterable[pd.DataFrame],
    *,
    numerical_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    **settings: Any,
) -> ReferenceProfile:
    """Profile of the concatenation of ``chunks`` without holding more than one chunk (``settings``:
    the sketch settings of :func:`build_profile`)."""
    builder = ProfileBuilder(
        numerical_columns=numerical_columns, categorical_columns=categorical_columns, **settings
    )
    for chunk in chunks:
        builder.update(chunk)
    return builder.profile()


def build_profile_from_csv(
    path: str | os.PathLike[str],
    *,
    chunksize: int = 200_000,
    numerical_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    max_exact_values: int = DEFAULT_MAX_EXACT_VALUES,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
    uniform_buckets: int = DEFAULT_UNIFORM_BUCKETS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    **read_csv_kwargs: Any,
) -> ReferenceProfile:
    """Profile of a CSV file read ``chunksize`` rows at a time (memory bounded by one chunk).

    Pass the column lists explicitly for files whose dtypes could differ between chunks; extra
    keyword arguments go to :func:`pandas.read_csv`.  When column lists are given and ``usecols`` is
    not, only those columns are read.
    """
    if numerical_columns is not None or categorical_columns is not None:
        read_csv_kwargs.setdefault("usecols", [*(numerical_columns or []), *(categorical_columns or [])])
    with pd.read_csv(path, chunksize=chunksize, **read_csv_kwargs) as reader:
        return build_profile_from_chunks(
            reader,
            numerical_columns=numerical_columns,
            categorical_columns=categorical_columns,
            max_exact_values=max_exact_values,
            relative_accuracy=relative_accuracy,
            uniform_buckets=uniform_buckets,
            max_categories=max_categories,
        )
