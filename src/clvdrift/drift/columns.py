"""Column summaries of a reference profile: numerical and categorical columns, and the mergeable
co-moment statistics of the correlation matrix.

Sums of squares of values near 1e154 or beyond overflow float64, so moments and co-moments are
accumulated on values scaled by a power of two chosen from the largest magnitude (exact scaling: it
only moves the exponent).  A numerical column stores its mean and population standard deviation,
both bounded by the largest magnitude, so they are finite for any finite data; co-moments are stored
in the scaled units, and the correlation matrix does not depend on the scale.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from clvdrift.drift.convert import CATEGORICAL, NUMERICAL, category_counts, category_sort_key
from clvdrift.drift.sketch import ValueSketch, reduce_counts

__all__ = ["CategoricalColumnProfile", "CorrelationStats", "NumericColumnProfile"]

FloatArray = np.ndarray
CORR_CHUNK_ROWS = 131_072
WASSERSTEIN_MIN_NORM = 0.001  # Evidently's floor of the reference std in the normed Wasserstein distance


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


ZERO_EXPONENT = -1074  # below the exponent of any nonzero float (the smallest subnormal has -1073)


def pow2_exponent(magnitude: float) -> int:
    """``k`` with ``magnitude / 2**k`` in ``[0.5, 1)`` (0 for 0): the scale of the moment sums."""
    return math.frexp(magnitude)[1] if magnitude > 0 else 0


def _moments(vals: FloatArray, cnts: np.ndarray, n: int) -> tuple[float, float]:
    """Mean and population std of sorted distinct ``vals`` with multiplicities ``cnts``."""
    k = pow2_exponent(max(abs(float(vals[0])), abs(float(vals[-1]))))
    x = np.ldexp(vals, -k)
    mean = float(np.dot(x, cnts)) / n
    dev = x - mean
    var = float(np.dot(dev * dev, cnts)) / n
    return math.ldexp(mean, k), math.ldexp(math.sqrt(var), k)


def _merge_moments(na: int, ma: float, sa: float, nb: int, mb: float, sb: float) -> tuple[int, float, float]:
    """Chan's parallel update of (n, mean, std), on values scaled by a power of two."""
    if na == 0:
        return nb, mb, sb
    if nb == 0:
        return na, ma, sa
    k = pow2_exponent(max(abs(ma), abs(mb), sa, sb))
    a, b, xa, xb = (math.ldexp(v, -k) for v in (ma, mb, sa, sb))
    n = na + nb
    delta = b - a
    mean = a + delta * (nb / n)
    var = (na * xa * xa + nb * xb * xb + delta * delta * (na * nb / n)) / n
    return n, math.ldexp(mean, k), math.ldexp(math.sqrt(var), k)


def _opt_float(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


@dataclass(frozen=True, eq=False)
class NumericColumnProfile:
    """Summary of one numerical column: finite-value count, missing count (NaN, None, +-inf), mean and
    population std (``ddof=0``, as ``np.std``) of the finite values, min, max, whether the reference
    column had an integer dtype (merged with AND), and the :class:`ValueSketch` of the values."""

    name: str
    count: int
    missing: int
    mean: float
    std: float
    min: float
    max: float
    integer: bool
    sketch: ValueSketch

    @classmethod
    def empty(cls, name: str, sketch: ValueSketch, integer: bool = True) -> NumericColumnProfile:
        """Profile of a column with no values (``sketch`` must be empty; ``integer`` True is the
        identity of the AND merge)."""
        return cls(name, 0, 0, 0.0, 0.0, math.inf, -math.inf, integer, sketch)

    @classmethod
    def from_array(
        cls, name: str, arr: FloatArray, empty_sketch: ValueSketch, integer: bool
    ) -> NumericColumnProfile:
        """Profile of a float64 array (non-finite values count as missing), sketched with the settings
        of ``empty_sketch``."""
        finite = np.isfinite(arr)
        n_finite = int(np.count_nonzero(finite))
        x = arr if n_finite == arr.size else arr[finite]
        if x.size == 0:
            return replace(cls.empty(name, empty_sketch, integer), missing=int(arr.size))
        vals, cnts = np.unique(x + 0.0, return_counts=True)
        mean, std = _moments(vals, cnts, n_finite)
        return cls(
            name=name,
            count=n_finite,
            missing=int(arr.size - n_finite),
            mean=mean,
            std=std,
            min=float(vals[0]),
            max=float(vals[-1]),
            integer=integer,
            sketch=ValueSketch.from_distinct(vals, cnts, *empty_sketch.settings),
        )

    def merge(self, other: NumericColumnProfile) -> NumericColumnProfile:
        """Profile of the union of both columns' values."""
        n, mean, std = _merge_moments(self.count, self.mean, self.std, other.count, other.mean, other.std)
        return NumericColumnProfile(
            name=self.name,
            count=n,
            missing=self.missing + other.missing,
            mean=mean,
            std=std,
            min=min(self.min, other.min),
            max=max(self.max, other.max),
            integer=self.integer and other.integer,
            sketch=self.sketch.merge(other.sketch),
        )

    def error_bound(self) -> dict[str, float]:
        """Bounds of the sketch's error: ``wasserstein_normed`` (W1 bound / max(std, 0.001), the scale
        of Evidently's normed Wasserstein distance) and ``cdf`` (largest CDF error); 0 when exact."""
        b = self.sketch.error_bound()
        return {"wasserstein_normed": b["wasserstein"] / max(self.std, WASSERSTEIN_MIN_NORM), "cdf": b["cdf"]}

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
        cum = self.sketch.cdf(edges, side="left") * self.count
        cum[-1] = self.count
        counts = np.rint(np.diff(cum)).astype(np.int64)
        return edges.tolist(), counts.tolist()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation (derived quantile bins and error bound included for readers,
        ignored on load)."""
        edges, counts = self.quantile_bins()
        return {
            "name": self.name,
            "kind": NUMERICAL,
            "count": self.count,
            "missing": self.missing,
            "mean": self.mean,
            "std": self.std,
            "min": _opt_float(self.min),
            "max": _opt_float(self.max),
            "integer": self.integer,
            "sketch": self.sketch.to_dict(),
            "quantile_bins": {"edges": edges, "counts": counts},
            "error_bound": self.error_bound(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericColumnProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(d["name"]),
            count=int(d["count"]),
            missing=int(d["missing"]),
            mean=float(d["mean"]),
            std=float(d["std"]),
            min=math.inf if d["min"] is None else float(d["min"]),
            max=-math.inf if d["max"] is None else float(d["max"]),
            integer=bool(d["integer"]),
            sketch=ValueSketch.from_dict(d["sketch"]),
        )

    def equals(self, other: NumericColumnProfile, rtol: float = 1e-9) -> bool:
        """Exact equality of counts, min, max, integer flag and sketch; mean and std within ``rtol`` of
        the column's scale ``max(|mean|, std)`` (floating-point sums depend on the order of addition)."""
        tol = rtol * max(abs(self.mean), self.std)
        return (
            self.name == other.name
            and self.count == other.count
            and self.missing == other.missing
            and self.min == other.min
            and self.max == other.max
            and self.integer == other.integer
            and abs(self.mean - other.mean) <= tol
            and abs(self.std - other.std) <= tol
            and self.sketch.equals(other.sketch)
        )


HASH_BUCKETS = 1024


def _dense_buckets(d: Mapping[str, Any]) -> list[int]:
    """The bucket counts of a profile's JSON (``[]`` for a profile written before buckets existed)."""
    out = [0] * int(d.get("hash_buckets") or 0)
    for i, c in d.get("buckets") or []:
        out[int(i)] = int(c)
    return out


def hash_buckets(counts: Mapping[Any, int], buckets: int = HASH_BUCKETS) -> np.ndarray:
    """Exact counts per hash bucket of the categories: ``str(category)`` hashed with BLAKE2b (the same
    bucket in every process and on every platform, for any text, NUL characters and lone surrogates
    included)."""
    out = np.zeros(buckets, dtype=np.int64)
    for key, count in counts.items():
        digest = hashlib.blake2b(str(key).encode("utf-8", "surrogatepass"), digest_size=8).digest()
        out[int.from_bytes(digest, "little") % buckets] += int(count)
    return out


@dataclass(frozen=True, eq=False)
class CategoricalColumnProfile:
    """Summary of one categorical column: category counts, the ``other`` cell and the missing count.

    Exact (``other == 0``) while the column has at most ``max_categories`` categories.  Beyond, a
    Misra-Gries frequent-items summary (:func:`~clvdrift.drift.sketch.reduce_counts`): the kept
    categories with counts that underestimate the true ones by at most :attr:`count_error_bound`,
    and ``other``, the mass not held by a kept count, so that ``count == sum(kept) + other``.

    ``buckets`` holds the exact count of every category's values in :data:`HASH_BUCKETS` hash buckets
    (merged by adding): what a bounded profile is compared on, so new and vanished categories move mass
    between buckets at any cardinality. Empty in profiles written before it existed.
    """

    name: str
    count: int
    missing: int
    categories: tuple[tuple[Any, int], ...]  # kept categories, sorted by (type name, repr)
    other: int
    max_categories: int
    buckets: tuple[int, ...] = ()

    @classmethod
    def from_counts(
        cls,
        name: str,
        counts: Mapping[Any, int],
        missing: int,
        max_categories: int,
        other: int = 0,
        buckets: Sequence[int] | None = None,
    ) -> CategoricalColumnProfile:
        """Profile from ``{category: count}`` (exact, or kept counts plus ``other``), reduced to at most
        ``max_categories`` kept categories. ``buckets`` (default: those of ``counts``, exact when
        ``other`` is 0) are the hash-bucket counts of all values."""
        exact = {k: int(v) for k, v in counts.items() if v}
        if buckets is None:
            buckets = tuple(int(b) for b in hash_buckets(exact)) if not other else ()
        kept, removed = reduce_counts(exact, max_categories)
        items = tuple(sorted(kept.items(), key=category_sort_key))
        total = sum(v for _, v in items) + other + removed
        return cls(
            name, int(total), int(missing), items, int(other + removed), max_categories, tuple(buckets)
        )

    @classmethod
    def from_series(cls, name: str, series: pd.Series, max_categories: int) -> CategoricalColumnProfile:
        """Profile of a pandas Series."""
        counts, missing = category_counts(series)
        return cls.from_counts(name, counts, missing, max_categories)

    @property
    def exact(self) -> bool:
        """Whether every category is kept with its exact count."""
        return self.other == 0

    @property
    def count_error_bound(self) -> float:
        """Largest underestimate of any category's count (kept or not): ``other / (max_categories + 1)``."""
        return self.other / (self.max_categories + 1)

    def counts_dict(self) -> dict[Any, int]:
        """``{category: count}`` of the kept categories."""
        return dict(self.categories)

    def merge(self, other: CategoricalColumnProfile) -> CategoricalColumnProfile:
        """Profile of the union: exact while the union has at most ``max_categories`` categories (then
        equal to the profile of the union); beyond, kept counts are added and reduced again, and stay
        within :attr:`count_error_bound` of the true counts."""
        counts = self.counts_dict()
        for k, v in other.categories:
            counts[k] = counts.get(k, 0) + v
        both = bool(self.buckets) and bool(other.buckets)
        buckets = tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)) if both else ()
        return CategoricalColumnProfile.from_counts(
            self.name,
            counts,
            self.missing + other.missing,
            self.max_categories,
            self.other + other.other,
            buckets,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation."""
        return {
            "name": self.name,
            "kind": CATEGORICAL,
            "count": self.count,
            "missing": self.missing,
            "categories": [[k, v] for k, v in self.categories],
            "other": self.other,
            "max_categories": self.max_categories,
            "hash_buckets": len(self.buckets),
            "buckets": [[i, c] for i, c in enumerate(self.buckets) if c],  # the non-empty ones
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalColumnProfile:
        """Inverse of :meth:`to_dict`."""
        return cls.from_counts(
            str(d["name"]),
            {k: int(v) for k, v in d["categories"]},
            int(d["missing"]),
            int(d["max_categories"]),
            int(d["other"]),
            _dense_buckets(d),
        )

    def equals(self, other: CategoricalColumnProfile) -> bool:
        """Exact equality."""
        return (
            self.name == other.name
            and self.count == other.count
            and self.missing == other.missing
            and self.other == other.other
            and self.max_categories == other.max_categories
            and self.counts_dict() == other.counts_dict()
            and self.buckets == other.buckets
        )


def _max_magnitude(a: np.ndarray, ok: np.ndarray | None) -> float:
    """The largest ``|value|`` of ``a`` where ``ok`` (0.0 for none), without copying the column."""
    where = True if ok is None else ok
    top = float(np.max(a, where=where, initial=-np.inf))
    bottom = float(np.min(a, where=where, initial=np.inf))
    return max(top, -bottom, 0.0)


@dataclass(frozen=True, eq=False)
class CorrelationStats:
    """Mergeable sufficient statistics of the Pearson correlation matrix.

    Over the rows where every column in ``columns`` is finite: their number ``n``, the column means,
    per column the exponent ``k_j`` of its largest magnitude (:data:`ZERO_EXPONENT` for a column of zeros),
    and the co-moment matrix
    ``sum((x - mean)(x - mean)^T)`` in units of ``2**(k_i + k_j)``.
    """

    columns: tuple[str, ...]
    n: int
    mean: FloatArray
    exponents: tuple[int, ...]
    comoment: FloatArray  # scaled: entry (i, j) is in units of 2**(exponents[i] + exponents[j])

    @classmethod
    def empty(cls, columns: Sequence[str]) -> CorrelationStats:
        """Statistics of no rows."""
        k = len(columns)
        return cls(tuple(columns), 0, _frozen(np.zeros(k)), (0,) * k, _frozen(np.zeros((k, k))))

    @classmethod
    def from_arrays(
        cls, columns: Sequence[str], arrays: Sequence[np.ndarray], *, all_finite: bool = False
    ) -> CorrelationStats:
        """Statistics of equally long numeric arrays (one per column), accumulated in row chunks.

        Values are scaled by ``2**-k_j``; each chunk is shifted by a per-column constant (the mean of
        the first chunk) before the sums and the Gram matrix are accumulated, which keeps the
        co-moments accurate.  Pass ``all_finite=True`` when no array holds NaN or inf.
        """
        k = len(columns)
        if k == 0 or not arrays or len(arrays[0]) == 0:
            return cls.empty(columns)
        ok = None if all_finite else np.logical_and.reduce([np.isfinite(a) for a in arrays])
        if ok is not None and not ok.any():
            return cls.empty(columns)
        if ok is not None and ok.all():  # nothing to leave out: no copy of every chunk (half the time)
            ok = None
        # an all-zero column gets the smallest exponent, so that merging (which keeps the larger one)
        # gives the exponent of the union's largest magnitude, as profiling the union does
        tops = [_max_magnitude(np.asarray(a, dtype=np.float64), ok) for a in arrays]
        exps = tuple(pow2_exponent(top) if top > 0 else ZERO_EXPONENT for top in tops)
        # 2**-k as a float where it is one (|k| <= 1022): multiplying by it is exact, as ldexp is
        scales = [math.ldexp(1.0, -e) if -1022 <= -e <= 1023 else None for e in exps]
        n_rows = len(arrays[0])
        chunk = min(CORR_CHUNK_ROWS, n_rows)
        buf = np.empty((k, chunk))
        shift = np.zeros(k)
        total = 0
        sums = np.zeros(k)
        gram = np.zeros((k, k))
        for start in range(0, n_rows, chunk):
            length = min(chunk, n_rows - start)
            block = buf[:, :length]
            with np.errstate(over="ignore"):  # only in rows left out below (a non-finite value in the row)
                for i, a in enumerate(arrays):
                    scale = scales[i]
                    if scale is None:
                        np.ldexp(a[start : start + length], -exps[i], out=block[i])
                    else:  # the same exact power-of-two scaling, several times faster than ldexp
                        np.multiply(a[start : start + length], scale, out=block[i])
            if ok is not None:
                block = block[:, ok[start : start + length]]
            if block.shape[1] == 0:
                continue
            if total == 0:
                shift = block.mean(axis=1)
            block -= shift[:, None]
            total += block.shape[1]
            sums += block.sum(axis=1)
            gram += block @ block.T
        mean = np.ldexp(shift + sums / total, np.array(exps))
        com = gram - np.outer(sums, sums) / total
        return cls(tuple(columns), total, _frozen(mean), exps, _frozen(com))

    def merge(self, other: CorrelationStats) -> CorrelationStats:
        """Statistics of the union of rows (Chan's parallel co-moment update, in common scaled units)."""
        if self.n == 0:
            return other
        if other.n == 0:
            return self
        exps = np.maximum(self.exponents, other.exponents)
        da = np.asarray(self.exponents) - exps
        db = np.asarray(other.exponents) - exps
        ca = np.ldexp(self.comoment, da[:, None] + da[None, :])
        cb = np.ldexp(other.comoment, db[:, None] + db[None, :])
        ma, mb = np.ldexp(self.mean, -exps), np.ldexp(other.mean, -exps)
        n = self.n + other.n
        delta = mb - ma
        mean = np.ldexp(ma + delta * (other.n / n), exps)
        com = ca + cb + np.outer(delta, delta) * (self.n * other.n / n)
        return CorrelationStats(self.columns, n, _frozen(mean), tuple(int(e) for e in exps), _frozen(com))

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
            "exponents": list(self.exponents),
            "comoment_scaled": self.comoment.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CorrelationStats:
        """Inverse of :meth:`to_dict`."""
        k = len(d["columns"])
        return cls(
            tuple(d["columns"]),
            int(d["n"]),
            _frozen(np.asarray(d["mean"], dtype=np.float64).reshape(k)),
            tuple(int(e) for e in d["exponents"]),
            _frozen(np.asarray(d["comoment_scaled"], dtype=np.float64).reshape(k, k)),
        )

    def equals(self, other: CorrelationStats, rtol: float = 1e-9) -> bool:
        """Same columns, row count and exponents; means and co-moments close to ``rtol`` of their scale."""
        if self.columns != other.columns or self.n != other.n or self.exponents != other.exponents:
            return False
        if self.n == 0:
            return True
        exps = np.asarray(self.exponents)
        scale = np.sqrt(np.maximum(np.diag(self.comoment), 0.0) / self.n)  # std in scaled units
        m_self, m_other = np.ldexp(self.mean, -exps), np.ldexp(other.mean, -exps)
        mscale = np.maximum(np.abs(m_self), scale)
        if not np.all(np.abs(m_self - m_other) <= rtol * mscale):
            return False
        cscale = np.outer(mscale, mscale) * self.n
        return bool(np.all(np.abs(self.comoment - other.comoment) <= rtol * cscale))
