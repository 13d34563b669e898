"""Reference profiles: small, mergeable, immutable summaries of a reference data set.

A :class:`ReferenceProfile` holds everything the column tests need, so the reference frame itself
never has to be kept:

* per numerical column: finite-value count, missing count (NaN, None and +-inf), mean and sum of
  squared deviations (merged with Chan's parallel formula), min, max, and a :class:`ValueSketch`
  of the value distribution; quantile bin edges and counts are derived from the sketch;
* per categorical column: the count of every category and the missing count;
* over the numerical columns: mergeable co-moment statistics (n, means, co-moment matrix) over the
  rows where every numerical column is finite, from which the correlation matrix is derived.

The value sketch is *exact* (every distinct value with its multiplicity) while a column has at most
``max_exact_values`` distinct values (default 4096).  Beyond that it is a log-bucket histogram in the
style of DDSketch: bucket ``k`` holds the values whose magnitude lies in ``(g**(k-1), g**k]`` with
``g = (1 + a) / (1 - a)`` (relative accuracy ``a``, default 0.5 %), plus a zero bucket for
``|x| <= 1e-12``; every bucket stores its count and the min and max value that fell into it.
Both forms are exactly mergeable: counts add, min/max combine, and an exact sketch whose union
exceeds ``max_exact_values`` distinct values becomes the histogram of the union, which is what the
concatenated data would have given.  So ``profile(a).merge(profile(b))`` equals ``profile(a + b)``
exactly for counts, min, max, categories and sketch, and up to floating-point rounding for the
moments and co-moments (see :meth:`ReferenceProfile.equals`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from clvdrift.drift.result import DriftInputError, ProfileIntegrityError

__all__ = [
    "CategoricalColumnProfile",
    "CorrelationStats",
    "NumericColumnProfile",
    "ProfileBuilder",
    "ReferenceProfile",
    "ValueSketch",
    "build_profile",
    "build_profile_from_csv",
    "to_float_array",
]

FORMAT = "clvdrift.reference_profile"
FORMAT_VERSION = 1
DEFAULT_MAX_EXACT_VALUES = 4096
DEFAULT_RELATIVE_ACCURACY = 0.005
ZERO_BUCKET_LIMIT = 1e-12
NUMERICAL = "numerical"
CATEGORICAL = "categorical"
_CORR_CHUNK_ROWS = 131_072

FloatArray = np.ndarray
IntArray = np.ndarray


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _log_gamma(relative_accuracy: float) -> float:
    return math.log1p(2.0 * relative_accuracy / (1.0 - relative_accuracy))


def bucket_keys(values: FloatArray, relative_accuracy: float) -> IntArray:
    """Signed log-bucket key of each value; keys are ordered like the values.

    ``0`` is the zero bucket (``|x| <= 1e-12``); positive values get keys ``>= 1``, negative values
    the mirrored keys ``<= -1``.
    """
    lg = _log_gamma(relative_accuracy)
    offset = math.floor(math.log(ZERO_BUCKET_LIMIT) / lg)
    ax = np.abs(values)
    big = ax > ZERO_BUCKET_LIMIT
    keys = np.zeros(values.shape, dtype=np.int64)
    keys[big] = np.ceil(np.log(ax[big]) / lg).astype(np.int64) - offset
    np.negative(keys, out=keys, where=values < 0)
    return keys


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    if sorted_keys.size == 0:
        return np.zeros(0, dtype=np.intp)
    return np.concatenate(([0], np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1))


@dataclass(frozen=True, eq=False)
class ValueSketch:
    """Distribution of a numerical column's finite values: exact or a log-bucket histogram.

    Exact form (``exact`` true): ``values`` are the sorted distinct values, ``counts`` their
    multiplicities; ``keys``/``lo``/``hi`` are empty.  Histogram form: ``keys`` are the sorted bucket
    keys (see :func:`bucket_keys`), ``counts`` the bucket counts and ``lo``/``hi`` the smallest and
    largest value seen in each bucket; ``values`` is empty.
    """

    max_exact: int
    relative_accuracy: float
    exact: bool
    values: FloatArray
    counts: IntArray
    keys: IntArray
    lo: FloatArray
    hi: FloatArray

    # ---------------------------------------------------------------- construction
    @classmethod
    def empty(cls, max_exact: int, relative_accuracy: float) -> ValueSketch:
        """The sketch of no values (identity of :meth:`merge`)."""
        f = _frozen(np.zeros(0, dtype=np.float64))
        i = _frozen(np.zeros(0, dtype=np.int64))
        return cls(max_exact, relative_accuracy, True, f, i, i, f, f)

    @classmethod
    def from_distinct(
        cls, values: FloatArray, counts: IntArray, max_exact: int, relative_accuracy: float
    ) -> ValueSketch:
        """Sketch of sorted distinct ``values`` with multiplicities ``counts``."""
        values = np.asarray(values, dtype=np.float64)
        counts = np.asarray(counts, dtype=np.int64)
        if values.size <= max_exact:
            e = _frozen(np.zeros(0, dtype=np.float64))
            return cls(
                max_exact,
                relative_accuracy,
                True,
                _frozen(values.copy()),
                _frozen(counts.copy()),
                _frozen(np.zeros(0, dtype=np.int64)),
                e,
                e,
            )
        keys = bucket_keys(values, relative_accuracy)
        starts = _group_starts(keys)
        ends = np.concatenate((starts[1:], [values.size])) - 1
        return cls(
            max_exact,
            relative_accuracy,
            False,
            _frozen(np.zeros(0, dtype=np.float64)),
            _frozen(np.add.reduceat(counts, starts)),
            _frozen(keys[starts]),
            _frozen(values[starts].copy()),
            _frozen(values[ends].copy()),
        )

    @classmethod
    def from_values(cls, finite_values: FloatArray, max_exact: int, relative_accuracy: float) -> ValueSketch:
        """Sketch of an array of finite values (``-0.0`` is counted as ``0.0``)."""
        vals, cnts = np.unique(np.asarray(finite_values, dtype=np.float64) + 0.0, return_counts=True)
        return cls.from_distinct(vals, cnts, max_exact, relative_accuracy)

    def _as_histogram(self) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
        if not self.exact:
            return self.keys, self.counts, self.lo, self.hi
        keys = bucket_keys(self.values, self.relative_accuracy)
        starts = _group_starts(keys)
        if starts.size == 0:
            return keys, self.counts, self.values, self.values
        ends = np.concatenate((starts[1:], [self.values.size])) - 1
        return keys[starts], np.add.reduceat(self.counts, starts), self.values[starts], self.values[ends]

    def merge(self, other: ValueSketch) -> ValueSketch:
        """Sketch of the union of both underlying multisets."""
        if (self.max_exact, self.relative_accuracy) != (other.max_exact, other.relative_accuracy):
            raise DriftInputError(
                "cannot merge value sketches built with different settings: "
                f"max_exact_values {self.max_exact} vs {other.max_exact}, "
                f"relative_accuracy {self.relative_accuracy} vs {other.relative_accuracy}"
            )
        if self.exact and other.exact:
            vals = np.concatenate((self.values, other.values))
            cnts = np.concatenate((self.counts, other.counts))
            order = np.argsort(vals, kind="stable")
            vals, cnts = vals[order], cnts[order]
            starts = _group_starts(vals)
            if starts.size == 0:
                return self
            return ValueSketch.from_distinct(
                vals[starts], np.add.reduceat(cnts, starts), self.max_exact, self.relative_accuracy
            )
        ka, ca, la, ha = self._as_histogram()
        kb, cb, lb, hb = other._as_histogram()
        keys = np.concatenate((ka, kb))
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        cnts = np.concatenate((ca, cb))[order]
        lo = np.concatenate((la, lb))[order]
        hi = np.concatenate((ha, hb))[order]
        starts = _group_starts(keys)
        e = _frozen(np.zeros(0, dtype=np.float64))
        return ValueSketch(
            self.max_exact,
            self.relative_accuracy,
            False,
            e,
            _frozen(np.add.reduceat(cnts, starts)),
            _frozen(keys[starts]),
            _frozen(np.minimum.reduceat(lo, starts)),
            _frozen(np.maximum.reduceat(hi, starts)),
        )

    # ---------------------------------------------------------------- distribution access
    @property
    def total(self) -> int:
        """Number of values summarised."""
        return int(self.counts.sum())

    @property
    def n_distinct(self) -> int | None:
        """Exact number of distinct values, or ``None`` when it exceeds ``max_exact``."""
        return int(self.values.size) if self.exact else None

    def support(self, points_per_bucket: int = 1) -> tuple[FloatArray, FloatArray]:
        """Sorted support points and their weights (counts).

        Exact form: the distinct values.  Histogram form: each bucket's count spread evenly over
        ``points_per_bucket`` points at the mid-quantiles of a uniform distribution on the bucket's
        ``[lo, hi]`` range (one point: the midpoint, within a relative ``a`` of every value in the
        bucket); a bucket with ``lo == hi`` stays a single atom.
        """
        if self.exact:
            return self.values, self.counts.astype(np.float64)
        if points_per_bucket <= 1:
            return (self.lo + self.hi) * 0.5, self.counts.astype(np.float64)
        q = (np.arange(points_per_bucket) + 0.5) / points_per_bucket
        pts = self.lo[:, None] + (self.hi - self.lo)[:, None] * q[None, :]
        w = np.repeat(self.counts.astype(np.float64) / points_per_bucket, points_per_bucket).reshape(
            pts.shape
        )
        atoms = self.lo == self.hi
        keep = np.ones(pts.shape, dtype=bool)
        keep[atoms, 1:] = False
        w[atoms, 0] = self.counts[atoms]
        return pts[keep], w[keep]

    def cdf(self, x: FloatArray, side: Literal["left", "right"] = "right") -> FloatArray:
        """Reference CDF at ``x``: ``P(X <= x)`` (``side='right'``) or ``P(X < x)`` (``'left'``).

        Exact form: the empirical CDF.  Histogram form: piecewise linear inside each bucket's
        ``[lo, hi]`` range (a bucket with ``lo == hi`` is an exact atom).
        """
        x = np.asarray(x, dtype=np.float64)
        total = float(self.counts.sum())
        if total == 0:
            return np.zeros(x.shape)
        if self.exact:
            cum = np.concatenate(([0.0], np.cumsum(self.counts, dtype=np.float64)))
            return cum[np.searchsorted(self.values, x, side=side)] / total
        cum = np.concatenate(([0.0], np.cumsum(self.counts, dtype=np.float64)))
        i = np.searchsorted(self.lo, x, side=side) - 1  # bucket with lo <= x (right) / lo < x (left)
        valid = i >= 0
        ic = np.where(valid, i, 0)
        lo, hi = self.lo[ic], self.hi[ic]
        width = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(width > 0, (x - lo) / np.where(width > 0, width, 1.0), 1.0)
        frac = np.clip(frac, 0.0, 1.0)
        out = cum[ic] + self.counts[ic] * frac
        return np.where(valid, out, 0.0) / total

    def quantile(self, q: FloatArray) -> FloatArray:
        """Quantiles of the summarised distribution (inverse of :meth:`cdf`)."""
        q = np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)
        total = float(self.counts.sum())
        if total == 0:
            return np.full(q.shape, np.nan)
        cum = np.cumsum(self.counts, dtype=np.float64)
        if self.exact:
            idx = np.minimum(np.searchsorted(cum, q * total, side="left"), self.values.size - 1)
            return self.values[idx]
        target = q * total
        idx = np.minimum(np.searchsorted(cum, target, side="left"), self.counts.size - 1)
        before = cum[idx] - self.counts[idx]
        frac = np.clip((target - before) / self.counts[idx], 0.0, 1.0)
        return self.lo[idx] + (self.hi[idx] - self.lo[idx]) * frac

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation."""
        d: dict[str, Any] = {
            "max_exact_values": self.max_exact,
            "relative_accuracy": self.relative_accuracy,
            "exact": self.exact,
            "counts": self.counts.tolist(),
        }
        if self.exact:
            d["values"] = self.values.tolist()
        else:
            d["keys"] = self.keys.tolist()
            d["lo"] = self.lo.tolist()
            d["hi"] = self.hi.tolist()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ValueSketch:
        """Inverse of :meth:`to_dict`."""
        f0 = _frozen(np.zeros(0, dtype=np.float64))
        i0 = _frozen(np.zeros(0, dtype=np.int64))
        counts = _frozen(np.asarray(d["counts"], dtype=np.int64))
        if d["exact"]:
            return cls(
                int(d["max_exact_values"]),
                float(d["relative_accuracy"]),
                True,
                _frozen(np.asarray(d["values"], dtype=np.float64)),
                counts,
                i0,
                f0,
                f0,
            )
        return cls(
            int(d["max_exact_values"]),
            float(d["relative_accuracy"]),
            False,
            f0,
            counts,
            _frozen(np.asarray(d["keys"], dtype=np.int64)),
            _frozen(np.asarray(d["lo"], dtype=np.float64)),
            _frozen(np.asarray(d["hi"], dtype=np.float64)),
        )

    def equals(self, other: ValueSketch) -> bool:
        """Exact equality of settings, form, counts and values."""
        return (
            self.max_exact == other.max_exact
            and self.relative_accuracy == other.relative_accuracy
            and self.exact == other.exact
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.counts, other.counts)
            and np.array_equal(self.keys, other.keys)
            and np.array_equal(self.lo, other.lo)
            and np.array_equal(self.hi, other.hi)
        )


# ====================================================================== column profiles
def _merge_moments(
    na: int, ma: float, m2a: float, nb: int, mb: float, m2b: float
) -> tuple[int, float, float]:
    if na == 0:
        return nb, mb, m2b
    if nb == 0:
        return na, ma, m2a
    n = na + nb
    delta = mb - ma
    return n, ma + delta * nb / n, m2a + m2b + delta * delta * na * nb / n


def _opt_float(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


@dataclass(frozen=True, eq=False)
class NumericColumnProfile:
    """Summary of one numerical column (see the module docstring)."""

    name: str
    count: int
    missing: int
    mean: float
    m2: float
    min: float
    max: float
    sketch: ValueSketch

    @property
    def std(self) -> float:
        """Population standard deviation (``ddof=0``, as ``np.std``) of the finite values."""
        return math.sqrt(self.m2 / self.count) if self.count else float("nan")

    @classmethod
    def empty(cls, name: str, max_exact: int, relative_accuracy: float) -> NumericColumnProfile:
        """Profile of a column with no rows."""
        return cls(name, 0, 0, 0.0, 0.0, math.inf, -math.inf, ValueSketch.empty(max_exact, relative_accuracy))

    @classmethod
    def from_array(
        cls, name: str, arr: FloatArray, max_exact: int, relative_accuracy: float
    ) -> NumericColumnProfile:
        """Profile of a float64 array (non-finite values count as missing)."""
        finite = np.isfinite(arr)
        n_finite = int(np.count_nonzero(finite))
        x = arr if n_finite == arr.size else arr[finite]
        if x.size == 0:
            return replace(cls.empty(name, max_exact, relative_accuracy), missing=int(arr.size))
        vals, cnts = np.unique(x + 0.0, return_counts=True)
        mean = float(np.dot(vals, cnts) / n_finite)
        dev = vals - mean
        m2 = float(np.dot(dev * dev, cnts))
        return cls(
            name=name,
            count=n_finite,
            missing=int(arr.size - n_finite),
            mean=mean,
            m2=m2,
            min=float(vals[0]),
            max=float(vals[-1]),
            sketch=ValueSketch.from_distinct(vals, cnts, max_exact, relative_accuracy),
        )

    def merge(self, other: NumericColumnProfile) -> NumericColumnProfile:
        """Profile of the union of both columns' values."""
        n, mean, m2 = _merge_moments(self.count, self.mean, self.m2, other.count, other.mean, other.m2)
        return NumericColumnProfile(
            name=self.name,
            count=n,
            missing=self.missing + other.missing,
            mean=mean,
            m2=m2,
            min=min(self.min, other.min),
            max=max(self.max, other.max),
            sketch=self.sketch.merge(other.sketch),
        )

    def quantile_bins(self, n_bins: int = 10) -> tuple[list[float], list[int]]:
        """Quantile bin edges (deduplicated) and the reference count in each bin.

        Derived from the sketch, so they are consistent with merging.  Bins are ``[e_i, e_i+1)``,
        the last one closed; counts are exact for an exact sketch, interpolated otherwise.
        """
        if self.count == 0:
            return [], []
        edges = np.unique(self.sketch.quantile(np.linspace(0.0, 1.0, n_bins + 1)))
        edges[0], edges[-1] = self.min, self.max
        edges = np.unique(edges)
        if edges.size < 2:
            return edges.tolist(), [self.count]
        left = self.sketch.cdf(edges, side="left") * self.count
        cum = left.copy()
        cum[-1] = self.count
        counts = np.rint(np.diff(cum)).astype(np.int64)
        return edges.tolist(), counts.tolist()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation (derived quantile bins included for readers, ignored on load)."""
        edges, counts = self.quantile_bins()
        return {
            "name": self.name,
            "kind": NUMERICAL,
            "count": self.count,
            "missing": self.missing,
            "mean": self.mean,
            "m2": self.m2,
            "std": _opt_float(self.std),
            "min": _opt_float(self.min),
            "max": _opt_float(self.max),
            "sketch": self.sketch.to_dict(),
            "quantile_bins": {"edges": edges, "counts": counts},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericColumnProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(d["name"]),
            count=int(d["count"]),
            missing=int(d["missing"]),
            mean=float(d["mean"]),
            m2=float(d["m2"]),
            min=math.inf if d["min"] is None else float(d["min"]),
            max=-math.inf if d["max"] is None else float(d["max"]),
            sketch=ValueSketch.from_dict(d["sketch"]),
        )

    def equals(self, other: NumericColumnProfile, rtol: float = 1e-9) -> bool:
        """Exact equality of counts, min, max and sketch; ``rtol`` closeness of the moments."""
        scale = max(abs(self.mean), math.sqrt(self.m2 / self.count) if self.count else 0.0, 1e-300)
        return (
            self.name == other.name
            and self.count == other.count
            and self.missing == other.missing
            and self.min == other.min
            and self.max == other.max
            and math.isclose(self.mean, other.mean, rel_tol=rtol, abs_tol=rtol * scale)
            and math.isclose(self.m2, other.m2, rel_tol=rtol, abs_tol=rtol * scale * scale)
            and self.sketch.equals(other.sketch)
        )


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


def _category_sort_key(item: tuple[Any, int]) -> tuple[str, str]:
    return (type(item[0]).__name__, repr(item[0]))


def category_counts(series: pd.Series) -> tuple[dict[Any, int], int]:
    """Counts of the non-missing values of ``series`` (normalised, see :func:`normalize_category`)
    and the number of missing values."""
    vc = series.value_counts(dropna=True, sort=False)
    counts: dict[Any, int] = {}
    for key, cnt in zip(vc.index.tolist(), vc.to_numpy().tolist()):
        if cnt == 0:  # unused levels of a pandas Categorical
            continue
        k = normalize_category(key)
        counts[k] = counts.get(k, 0) + int(cnt)
    missing = int(len(series) - sum(counts.values()))
    return counts, missing


@dataclass(frozen=True, eq=False)
class CategoricalColumnProfile:
    """Summary of one categorical column: the count of every category and the missing count."""

    name: str
    count: int
    missing: int
    categories: tuple[tuple[Any, int], ...]  # sorted by (type name, repr)

    @classmethod
    def from_counts(cls, name: str, counts: Mapping[Any, int], missing: int) -> CategoricalColumnProfile:
        """Profile from a ``{category: count}`` mapping."""
        items = tuple(sorted(((k, int(v)) for k, v in counts.items() if v), key=_category_sort_key))
        return cls(name, int(sum(v for _, v in items)), int(missing), items)

    @classmethod
    def from_series(cls, name: str, series: pd.Series) -> CategoricalColumnProfile:
        """Profile of a pandas Series."""
        counts, missing = category_counts(series)
        return cls.from_counts(name, counts, missing)

    def counts_dict(self) -> dict[Any, int]:
        """``{category: count}``."""
        return dict(self.categories)

    def merge(self, other: CategoricalColumnProfile) -> CategoricalColumnProfile:
        """Profile of the union."""
        counts = self.counts_dict()
        for k, v in other.categories:
            counts[k] = counts.get(k, 0) + v
        return CategoricalColumnProfile.from_counts(self.name, counts, self.missing + other.missing)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation."""
        return {
            "name": self.name,
            "kind": CATEGORICAL,
            "count": self.count,
            "missing": self.missing,
            "categories": [[k, v] for k, v in self.categories],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalColumnProfile:
        """Inverse of :meth:`to_dict`."""
        return cls.from_counts(str(d["name"]), {k: int(v) for k, v in d["categories"]}, int(d["missing"]))

    def equals(self, other: CategoricalColumnProfile) -> bool:
        """Exact equality."""
        return (
            self.name == other.name
            and self.count == other.count
            and self.missing == other.missing
            and self.counts_dict() == other.counts_dict()
        )


@dataclass(frozen=True, eq=False)
class CorrelationStats:
    """Mergeable sufficient statistics of the Pearson correlation matrix.

    Over the rows where every column in ``columns`` is finite: their number ``n``, the column
    means and the co-moment matrix ``sum((x - mean)(x - mean)^T)``.
    """

    columns: tuple[str, ...]
    n: int
    mean: FloatArray
    comoment: FloatArray

    @classmethod
    def empty(cls, columns: Sequence[str]) -> CorrelationStats:
        """Statistics of no rows."""
        k = len(columns)
        return cls(tuple(columns), 0, _frozen(np.zeros(k)), _frozen(np.zeros((k, k))))

    @classmethod
    def from_arrays(
        cls, columns: Sequence[str], arrays: Sequence[np.ndarray], *, all_finite: bool = False
    ) -> CorrelationStats:
        """Statistics of equally long numeric arrays (one per column), accumulated in row chunks.

        Each chunk is shifted by a per-column constant (the mean of the first chunk) before the
        sums and the Gram matrix are accumulated, which keeps the co-moments accurate.  Pass
        ``all_finite=True`` when no array holds NaN or inf to skip the complete-row filter.
        """
        k = len(columns)
        if k == 0 or not arrays or len(arrays[0]) == 0:
            return cls.empty(columns)
        n_rows = len(arrays[0])
        chunk = min(_CORR_CHUNK_ROWS, n_rows)
        buf = np.empty((k, chunk))
        shift = np.zeros(k)
        total = 0
        sums = np.zeros(k)
        gram = np.zeros((k, k))
        for start in range(0, n_rows, chunk):
            length = min(chunk, n_rows - start)
            block = buf[:, :length]
            for i, a in enumerate(arrays):
                block[i] = a[start : start + length]
            if not all_finite:
                ok = np.isfinite(block).all(axis=0)
                if not ok.all():
                    block = block[:, ok]
            if block.shape[1] == 0:
                continue
            if total == 0:
                shift = block.mean(axis=1)
            block -= shift[:, None]
            total += block.shape[1]
            sums += block.sum(axis=1)
            gram += block @ block.T
        if total == 0:
            return cls.empty(columns)
        mean = shift + sums / total
        com = gram - np.outer(sums, sums) / total
        return cls(tuple(columns), total, _frozen(mean), _frozen(com))

    def merge(self, other: CorrelationStats) -> CorrelationStats:
        """Statistics of the union of rows (Chan's parallel co-moment update)."""
        if self.n == 0:
            return other
        if other.n == 0:
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        com = self.comoment + other.comoment + np.outer(delta, delta) * (self.n * other.n / n)
        return CorrelationStats(self.columns, n, _frozen(mean), _frozen(com))

    def correlation(self, columns: Sequence[str] | None = None) -> FloatArray:
        """Pearson correlation matrix (``nan`` where a column has zero variance)."""
        idx = [self.columns.index(c) for c in (columns if columns is not None else self.columns)]
        com = self.comoment[np.ix_(idx, idx)]
        d = np.sqrt(np.diag(com))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = com / np.outer(d, d)
        return np.clip(corr, -1.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation."""
        return {
            "columns": list(self.columns),
            "n": self.n,
            "mean": self.mean.tolist(),
            "comoment": self.comoment.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CorrelationStats:
        """Inverse of :meth:`to_dict`."""
        k = len(d["columns"])
        return cls(
            tuple(d["columns"]),
            int(d["n"]),
            _frozen(np.asarray(d["mean"], dtype=np.float64).reshape(k)),
            _frozen(np.asarray(d["comoment"], dtype=np.float64).reshape(k, k)),
        )

    def equals(self, other: CorrelationStats, rtol: float = 1e-9) -> bool:
        """Same columns and row count; means and co-moments close to ``rtol`` (relative to scale)."""
        if self.columns != other.columns or self.n != other.n:
            return False
        if self.n == 0:
            return True
        scale = np.sqrt(np.maximum(np.diag(self.comoment), 0.0) / self.n)
        mscale = np.maximum(np.abs(self.mean), scale) + 1e-300
        if not np.all(np.abs(self.mean - other.mean) <= rtol * mscale):
            return False
        cscale = np.outer(scale, scale) * self.n + 1e-300
        return bool(np.all(np.abs(self.comoment - other.comoment) <= rtol * cscale))


# ====================================================================== conversion helpers
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
    max_exact_values: int = DEFAULT_MAX_EXACT_VALUES
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY

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
        for p in self.numerical:
            if p.name == column:
                return NUMERICAL
        for c in self.categorical:
            if c.name == column:
                return CATEGORICAL
        raise KeyError(column)

    def column(self, name: str) -> NumericColumnProfile | CategoricalColumnProfile:
        """The profile of one column."""
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
        max_exact_values: int = DEFAULT_MAX_EXACT_VALUES,
        relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
    ) -> ReferenceProfile:
        """The profile of zero rows: the identity element of :meth:`merge`."""
        _check_settings(max_exact_values, relative_accuracy)
        order = list(columns) if columns is not None else [*numerical_columns, *categorical_columns]
        return cls(
            columns=tuple(order),
            numerical=tuple(
                NumericColumnProfile.empty(c, max_exact_values, relative_accuracy) for c in numerical_columns
            ),
            categorical=tuple(CategoricalColumnProfile.from_counts(c, {}, 0) for c in categorical_columns),
            correlation=CorrelationStats.empty(numerical_columns),
            rows=0,
            kinds_auto_detected=kinds_auto_detected,
            max_exact_values=max_exact_values,
            relative_accuracy=relative_accuracy,
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
        if (self.max_exact_values, self.relative_accuracy) != (
            other.max_exact_values,
            other.relative_accuracy,
        ):
            raise DriftInputError("cannot merge profiles built with different sketch settings")
        return ReferenceProfile(
            columns=self.columns,
            numerical=tuple(a.merge(b) for a, b in zip(self.numerical, other.numerical)),
            categorical=tuple(a.merge(b) for a, b in zip(self.categorical, other.categorical)),
            correlation=self.correlation.merge(other.correlation),
            rows=self.rows + other.rows,
            kinds_auto_detected=self.kinds_auto_detected and other.kinds_auto_detected,
            max_exact_values=self.max_exact_values,
            relative_accuracy=self.relative_accuracy,
        )

    def equals(self, other: ReferenceProfile, rtol: float = 1e-9) -> bool:
        """Equality as defined for merging.

        Exact: columns, kinds, row counts, missing counts, min, max, category counts and the value
        sketches.  Within relative tolerance ``rtol``: means, sums of squared deviations and the
        correlation co-moments (floating-point sums depend on the order of addition).
        """
        return (
            self.columns == other.columns
            and self.rows == other.rows
            and self.numerical_columns == other.numerical_columns
            and self.categorical_columns == other.categorical_columns
            and self.max_exact_values == other.max_exact_values
            and self.relative_accuracy == other.relative_accuracy
            and all(a.equals(b, rtol) for a, b in zip(self.numerical, other.numerical))
            and all(a.equals(b) for a, b in zip(self.categorical, other.categorical))
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
            "max_exact_values": self.max_exact_values,
            "relative_accuracy": self.relative_accuracy,
            "numerical": [p.to_dict() for p in self.numerical],
            "categorical": [c.to_dict() for c in self.categorical],
            "correlation": self.correlation.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceProfile:
        """Inverse of :meth:`to_dict`."""
        if d.get("format") != FORMAT:
            raise DriftInputError(f"not a clvdrift reference profile (format={d.get('format')!r})")
        if int(d.get("format_version", -1)) != FORMAT_VERSION:
            raise DriftInputError(
                f"reference profile format version {d.get('format_version')!r} is not supported "
                f"(expected {FORMAT_VERSION}); rebuild the profile"
            )
        return cls(
            columns=tuple(d["columns"]),
            numerical=tuple(NumericColumnProfile.from_dict(p) for p in d["numerical"]),
            categorical=tuple(CategoricalColumnProfile.from_dict(c) for c in d["categorical"]),
            correlation=CorrelationStats.from_dict(d["correlation"]),
            rows=int(d["rows"]),
            kinds_auto_detected=bool(d["kinds_auto_detected"]),
            max_exact_values=int(d["max_exact_values"]),
            relative_accuracy=float(d["relative_accuracy"]),
        )

    def to_json(self) -> str:
        """Canonical JSON text of :meth:`to_dict` (sorted keys, no NaN)."""
        return _canonical_json(self.to_dict())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile as JSON with its sha256, atomically (temp file + ``os.replace``)."""
        path = Path(path)
        body = self.to_dict()
        text = _canonical_json(body)
        envelope = {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "profile": body}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(_canonical_json(envelope))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReferenceProfile:
        """Read a profile written by :meth:`save`; refuses it if its sha256 does not match.

        Raises :class:`ProfileIntegrityError` on a checksum mismatch and :class:`DriftInputError`
        when the file is not a profile.
        """
        path = Path(path)
        try:
            envelope = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DriftInputError(f"cannot read reference profile {str(path)!r}: {exc}") from exc
        if not isinstance(envelope, dict) or "sha256" not in envelope or "profile" not in envelope:
            raise DriftInputError(f"{str(path)!r} is not a clvdrift reference profile file")
        actual = hashlib.sha256(_canonical_json(envelope["profile"]).encode("utf-8")).hexdigest()
        if actual != envelope["sha256"]:
            raise ProfileIntegrityError(
                f"reference profile {str(path)!r} fails its checksum: recorded sha256 "
                f"{envelope['sha256']}, content hashes to {actual}; refusing to use it"
            )
        return cls.from_dict(envelope["profile"])

    @property
    def checksum(self) -> str:
        """sha256 of the canonical JSON of the profile."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _check_settings(max_exact_values: int, relative_accuracy: float) -> None:
    if max_exact_values < 1024:
        raise DriftInputError(
            f"max_exact_values must be >= 1024 (so references of up to 1000 rows stay exact), "
            f"got {max_exact_values}"
        )
    if not 0.0 < relative_accuracy < 0.5:
        raise DriftInputError(f"relative_accuracy must be in (0, 0.5), got {relative_accuracy}")


def _resolve_kinds(
    frame: pd.DataFrame,
    numerical_columns: Sequence[str] | None,
    categorical_columns: Sequence[str] | None,
) -> tuple[list[str], list[str], bool]:
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


def build_profile(
    frame: pd.DataFrame,
    *,
    numerical_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    max_exact_values: int = DEFAULT_MAX_EXACT_VALUES,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
) -> ReferenceProfile:
    """Build the :class:`ReferenceProfile` of ``frame``.

    When neither column list is given, every column is profiled and its kind auto-detected
    (numeric dtypes except bool are numerical; object, category, string and bool are categorical);
    ``kinds_auto_detected`` records that.  When either list is given, the two lists are exactly the
    columns profiled (``None`` meaning none of that kind).

    ``max_exact_values`` bounds the exact value sketch of numerical columns (beyond it a log-bucket
    histogram of relative accuracy ``relative_accuracy`` is kept), so the profile size does not grow
    with the number of rows.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DriftInputError(f"build_profile needs a pandas DataFrame, got {type(frame).__name__}")
    _check_settings(max_exact_values, relative_accuracy)
    num, cat, auto = _resolve_kinds(frame, numerical_columns, categorical_columns)
    order = [str(c) for c in frame.columns if str(c) in set(num) | set(cat)]
    arrays = [to_float_array(frame[c], c, "reference") for c in num]
    numerical = tuple(
        NumericColumnProfile.from_array(c, a, max_exact_values, relative_accuracy)
        for c, a in zip(num, arrays)
    )
    categorical = tuple(CategoricalColumnProfile.from_series(c, frame[c]) for c in cat)
    return ReferenceProfile(
        columns=tuple(order),
        numerical=numerical,
        categorical=categorical,
        correlation=CorrelationStats.from_arrays(
            num, arrays, all_finite=all(p.missing == 0 for p in numerical)
        ),
        rows=len(frame),
        kinds_auto_detected=auto,
        max_exact_values=max_exact_values,
        relative_accuracy=relative_accuracy,
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
    ) -> None:
        _check_settings(max_exact_values, relative_accuracy)
        self._num = (
            None
            if numerical_columns is None and categorical_columns is None
            else list(numerical_columns or [])
        )
        self._cat = None if self._num is None else list(categorical_columns or [])
        self._auto = self._num is None
        self._max_exact = max_exact_values
        self._accuracy = relative_accuracy
        self._profile: ReferenceProfile | None = None

    def update(self, chunk: pd.DataFrame) -> ProfileBuilder:
        """Add the rows of ``chunk``; returns ``self``."""
        if self._num is None or self._cat is None:
            self._num, self._cat = detect_kinds(chunk)
        part = build_profile(
            chunk,
            numerical_columns=self._num,
            categorical_columns=self._cat,
            max_exact_values=self._max_exact,
            relative_accuracy=self._accuracy,
        )
        if self._auto:
            part = replace(part, kinds_auto_detected=True)
        self._profile = part if self._profile is None else self._profile.merge(part)
        return self

    def profile(self) -> ReferenceProfile:
        """The profile of all rows added so far."""
        if self._profile is None:
            if self._num is None or self._cat is None:
                raise DriftInputError("no data was added to the profile builder and no columns were given")
            return ReferenceProfile.empty(
                self._num,
                self._cat,
                max_exact_values=self._max_exact,
                relative_accuracy=self._accuracy,
            )
        return self._profile


def build_profile_from_chunks(
    chunks: Iterable[pd.DataFrame],
    *,
    numerical_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    max_exact_values: int = DEFAULT_MAX_EXACT_VALUES,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
) -> ReferenceProfile:
    """Profile of the concatenation of ``chunks`` without holding more than one chunk."""
    builder = ProfileBuilder(
        numerical_columns=numerical_columns,
        categorical_columns=categorical_columns,
        max_exact_values=max_exact_values,
        relative_accuracy=relative_accuracy,
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
        )
