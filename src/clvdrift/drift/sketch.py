"""Mergeable sketches of one reference column: :class:`ValueSketch` (numerical) and the frequent-items
reduction behind categorical profiles (:func:`reduce_counts`).

**Numerical.** A :class:`ValueSketch` is *exact* (every distinct finite value with its multiplicity)
while the column has at most ``max_exact`` distinct values (default 4,096).  Beyond that it is a
histogram over the cells of the common refinement of two interval partitions of the real line:

* log buckets of relative accuracy ``a`` (default 0.5 %, as DDSketch): bucket ``k`` holds the values
  whose magnitude lies in ``(g**(k-1), g**k]``, ``g = (1 + a) / (1 - a)``, mirrored for negative
  values, plus a zero bucket for ``|x| <= 1e-12``: a *relative* error, right for heavy tails;
* uniform buckets ``[j 2**e, (j + 1) 2**e)``, ``e`` the smallest integer such that the column's
  ``[min, max]`` meets at most ``B`` buckets (``uniform_buckets``, default 1,024) and
  ``max|x| / 2**e < 2**60`` (int64 keys): an error relative to the column's *spread*, right for
  narrow-spread, large-offset columns (coordinates, kelvin, epoch timestamps, prices around a high
  base), where one log bucket would be wider than the whole data.

A value's cell is ``(floor(x / 2**e), log_key(x))``; cells sorted by that pair are in value order.
Each non-empty cell stores its count and the smallest and largest value in it (``lo == hi``: an exact
atom).  A histogram has at most ``B + (log buckets between min and max)`` cells.

*Exact merging.*  ``e`` depends only on ``(min, max)``, which a merge knows exactly, and never
decreases when the interval grows; a merge coarsens both sides to the merged ``e`` with
``key >> (e_new - e_old)`` (exact floor division) and adds the cells that then coincide: the
histogram of the concatenated data.

*Error bound* (:meth:`ValueSketch.error_bound`).  Any representation of a cell's mass inside its
``[lo, hi]`` is within ``hi - lo`` of the data in it, so ``W1(sketch, data) <= sum_c p_c (hi_c - lo_c)``;
the CDF is exact at cell boundaries and atoms, so its error is at most the largest probability of a
cell with ``lo < hi``.

**Categorical.** Exact counts up to ``max_categories`` categories (default 1,000); beyond, the
mergeable Misra-Gries summary of at most ``max_categories`` counters (:func:`reduce_counts`), whose
removed mass is the ``other`` cell.  Every category's kept count underestimates its true count by at
most ``other / (max_categories + 1) <= N / (max_categories + 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np

from clvdrift.drift.result import DriftInputError

__all__ = [
    "DEFAULT_MAX_CATEGORIES",
    "DEFAULT_MAX_EXACT_VALUES",
    "DEFAULT_RELATIVE_ACCURACY",
    "DEFAULT_UNIFORM_BUCKETS",
    "ValueSketch",
    "bucket_keys",
    "reduce_counts",
    "uniform_exponent",
]

DEFAULT_MAX_EXACT_VALUES = 4096
DEFAULT_RELATIVE_ACCURACY = 0.005
DEFAULT_UNIFORM_BUCKETS = 1024
DEFAULT_MAX_CATEGORIES = 1000
ZERO_BUCKET_LIMIT = 1e-12
KEY_BITS = 60  # |x| / 2**e < 2**KEY_BITS keeps uniform keys (and their shifts) inside int64
MAX_SHIFT = 63

FloatArray = np.ndarray
IntArray = np.ndarray
K = TypeVar("K")


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


_F0 = _frozen(np.zeros(0, dtype=np.float64))
_I0 = _frozen(np.zeros(0, dtype=np.int64))


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


def _floor_scaled(x: float, e: int) -> int:
    """``floor(x / 2**e)`` exactly (a negative ``x`` whose quotient underflows is in bucket -1)."""
    k = math.floor(math.ldexp(x, -e))
    return -1 if k == 0 and x < 0 else k


def scaled_floor(values: FloatArray, e: int) -> FloatArray:
    """``floor(values / 2**e)`` as float64, exact for every finite value (see :func:`_floor_scaled`)."""
    k = np.floor(np.ldexp(values, -e))
    k[(k == 0) & (values < 0)] = -1.0
    return k


def _span(lo: float, hi: float, e: int) -> int:
    return _floor_scaled(hi, e) - _floor_scaled(lo, e) + 1


def uniform_exponent(lo: float, hi: float, buckets: int) -> int:
    """Smallest ``e`` such that ``[lo, hi]`` meets at most ``buckets`` uniform buckets of width ``2**e``
    and ``max(|lo|, |hi|) / 2**e < 2**60``.  Non-decreasing when ``[lo, hi]`` grows."""
    m = max(abs(lo), abs(hi))
    e_min = math.frexp(m)[1] - KEY_BITS
    half_width = hi * 0.5 - lo * 0.5
    e = e_min if half_width <= 0 else max(e_min, math.frexp(half_width / buckets)[1] + 1)
    while e > e_min and _span(lo, hi, e - 1) <= buckets:
        e -= 1
    while _span(lo, hi, e) > buckets:
        e += 1
    return e


def _runs(*keys: np.ndarray) -> tuple[IntArray, IntArray]:
    """Start and end (inclusive) index of each run of equal key tuples in sorted keys."""
    n = keys[0].size
    if n == 0:
        return _I0, _I0
    change = np.zeros(n - 1, dtype=bool)
    for k in keys:
        change |= k[1:] != k[:-1]
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    ends = np.concatenate((starts[1:], [n])) - 1
    return starts, ends


@dataclass(frozen=True)
class _Cells:
    """Histogram cells in value order: uniform key, log key, count, smallest and largest value."""

    ukeys: np.ndarray
    keys: IntArray
    counts: np.ndarray
    lo: FloatArray
    hi: FloatArray

    @classmethod
    def of_sorted(cls, values: FloatArray, counts: np.ndarray, ukeys: np.ndarray, keys: IntArray) -> _Cells:
        """Cells of sorted distinct values with their multiplicities and cell keys."""
        starts, ends = _runs(ukeys, keys)
        if starts.size == 0:
            return cls(ukeys, keys, counts, values, values)
        return cls(
            ukeys[starts], keys[starts], np.add.reduceat(counts, starts, axis=0), values[starts], values[ends]
        )

    @classmethod
    def combine(cls, parts: list[_Cells]) -> _Cells:
        """Cells of the union: sorted by (uniform key, log key); equal cells added."""
        u = np.concatenate([p.ukeys for p in parts])
        k = np.concatenate([p.keys for p in parts])
        order = np.lexsort((k, u))
        u, k = u[order], k[order]
        counts = np.concatenate([p.counts for p in parts])[order]
        lo = np.concatenate([p.lo for p in parts])[order]
        hi = np.concatenate([p.hi for p in parts])[order]
        starts, _ = _runs(u, k)
        return cls(
            u[starts],
            k[starts],
            np.add.reduceat(counts, starts, axis=0),
            np.minimum.reduceat(lo, starts),
            np.maximum.reduceat(hi, starts),
        )


@dataclass(frozen=True, eq=False)
class ValueSketch:
    """Distribution of a numerical column's finite values: exact, or a histogram (module docstring).

    Exact form (``exact`` true): ``values`` are the sorted distinct values, ``counts`` their
    multiplicities; the cell arrays are empty.  Histogram form: ``ukeys`` (uniform keys at width
    ``2**exponent``) and ``keys`` (log keys, see :func:`bucket_keys`) identify the cells in value order,
    ``counts`` are the cell counts and ``lo``/``hi`` the smallest and largest value seen in each cell;
    ``values`` is empty.
    """

    max_exact: int
    relative_accuracy: float
    uniform_buckets: int
    exact: bool
    values: FloatArray
    counts: IntArray
    exponent: int = 0
    ukeys: IntArray = field(default_factory=lambda: _I0)
    keys: IntArray = field(default_factory=lambda: _I0)
    lo: FloatArray = field(default_factory=lambda: _F0)
    hi: FloatArray = field(default_factory=lambda: _F0)

    # ---------------------------------------------------------------- construction
    @classmethod
    def empty(cls, max_exact: int, relative_accuracy: float, uniform_buckets: int) -> ValueSketch:
        """The sketch of no values (identity of :meth:`merge`)."""
        return cls(max_exact, relative_accuracy, uniform_buckets, True, _F0, _I0)

    @classmethod
    def from_distinct(
        cls,
        values: FloatArray,
        counts: IntArray,
        max_exact: int,
        relative_accuracy: float,
        uniform_buckets: int,
    ) -> ValueSketch:
        """Sketch of sorted distinct finite ``values`` with multiplicities ``counts``."""
        values = np.asarray(values, dtype=np.float64)
        counts = np.asarray(counts, dtype=np.int64)
        if values.size <= max_exact:
            return cls(
                max_exact,
                relative_accuracy,
                uniform_buckets,
                True,
                _frozen(values.copy()),
                _frozen(counts.copy()),
            )
        e = uniform_exponent(float(values[0]), float(values[-1]), uniform_buckets)
        cells = _Cells.of_sorted(
            values, counts, scaled_floor(values, e).astype(np.int64), bucket_keys(values, relative_accuracy)
        )
        return cls._histogram(max_exact, relative_accuracy, uniform_buckets, e, cells)

    @classmethod
    def from_values(
        cls, finite_values: FloatArray, max_exact: int, relative_accuracy: float, uniform_buckets: int
    ) -> ValueSketch:
        """Sketch of an array of finite values (``-0.0`` is counted as ``0.0``)."""
        vals, cnts = np.unique(np.asarray(finite_values, dtype=np.float64) + 0.0, return_counts=True)
        return cls.from_distinct(vals, cnts, max_exact, relative_accuracy, uniform_buckets)

    @classmethod
    def _histogram(
        cls, max_exact: int, relative_accuracy: float, uniform_buckets: int, e: int, cells: _Cells
    ) -> ValueSketch:
        return cls(
            max_exact,
            relative_accuracy,
            uniform_buckets,
            False,
            _F0,
            _frozen(np.asarray(cells.counts, dtype=np.int64)),
            e,
            _frozen(np.asarray(cells.ukeys, dtype=np.int64)),
            _frozen(np.asarray(cells.keys, dtype=np.int64)),
            _frozen(np.asarray(cells.lo, dtype=np.float64)),
            _frozen(np.asarray(cells.hi, dtype=np.float64)),
        )

    @property
    def settings(self) -> tuple[int, float, int]:
        """``(max_exact, relative_accuracy, uniform_buckets)``: sketches merge only with equal settings."""
        return (self.max_exact, self.relative_accuracy, self.uniform_buckets)

    @property
    def minimum(self) -> float:
        """Smallest value summarised (``inf`` when empty)."""
        if self.total == 0:
            return math.inf
        return float(self.values[0] if self.exact else self.lo[0])

    @property
    def maximum(self) -> float:
        """Largest value summarised (``-inf`` when empty)."""
        if self.total == 0:
            return -math.inf
        return float(self.values[-1] if self.exact else self.hi[-1])

    def _cells(self, e: int) -> _Cells:
        """This sketch's cells on the grid of exponent ``e >= self.exponent``."""
        if self.exact:
            ukeys = scaled_floor(self.values, e).astype(np.int64)
            return _Cells.of_sorted(
                self.values, self.counts, ukeys, bucket_keys(self.values, self.relative_accuracy)
            )
        shift = min(e - self.exponent, MAX_SHIFT)
        return _Cells(np.right_shift(self.ukeys, shift), self.keys, self.counts, self.lo, self.hi)

    def merge(self, other: ValueSketch) -> ValueSketch:
        """Sketch of the union of both underlying multisets (exactly the sketch of the union)."""
        if self.settings != other.settings:
            raise DriftInputError(
                "cannot merge value sketches built with different settings (max_exact_values, "
                f"relative_accuracy, uniform_buckets): {self.settings} vs {other.settings}"
            )
        if other.total == 0:
            return self
        if self.total == 0:
            return other
        if self.exact and other.exact:
            vals = np.concatenate((self.values, other.values))
            cnts = np.concatenate((self.counts, other.counts))
            order = np.argsort(vals, kind="stable")
            vals, cnts = vals[order], cnts[order]
            starts, _ = _runs(vals)
            return ValueSketch.from_distinct(vals[starts], np.add.reduceat(cnts, starts), *self.settings)
        e = uniform_exponent(
            min(self.minimum, other.minimum), max(self.maximum, other.maximum), self.uniform_buckets
        )
        cells = _Cells.combine([self._cells(e), other._cells(e)])
        return ValueSketch._histogram(*self.settings, e, cells)

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

        Exact form: the distinct values.  Histogram form: each cell's count spread evenly over
        ``points_per_bucket`` points at the mid-quantiles of a uniform distribution on the cell's
        ``[lo, hi]`` range (one point: the midpoint); a cell with ``lo == hi`` stays a single atom.
        """
        if self.exact:
            return self.values, self.counts.astype(np.float64)
        width = self.hi - self.lo
        if points_per_bucket <= 1:
            return self.lo + width * 0.5, self.counts.astype(np.float64)
        q = (np.arange(points_per_bucket) + 0.5) / points_per_bucket
        pts = self.lo[:, None] + width[:, None] * q[None, :]
        w = np.repeat(self.counts.astype(np.float64) / points_per_bucket, points_per_bucket).reshape(
            pts.shape
        )
        atoms = width == 0
        keep = np.ones(pts.shape, dtype=bool)
        keep[atoms, 1:] = False
        w[atoms, 0] = self.counts[atoms]
        return pts[keep], w[keep]

    def cdf(self, x: FloatArray, side: Literal["left", "right"] = "right") -> FloatArray:
        """Reference CDF at ``x``: ``P(X <= x)`` (``side='right'``) or ``P(X < x)`` (``'left'``).

        Exact form: the empirical CDF.  Histogram form: piecewise linear inside each cell's
        ``[lo, hi]`` range (a cell with ``lo == hi`` is an exact atom).
        """
        x = np.asarray(x, dtype=np.float64)
        total = float(self.counts.sum())
        if total == 0:
            return np.zeros(x.shape)
        cum = np.concatenate(([0.0], np.cumsum(self.counts, dtype=np.float64)))
        if self.exact:
            return cum[np.searchsorted(self.values, x, side=side)] / total
        i = np.searchsorted(self.lo, x, side=side) - 1  # cell with lo <= x (right) / lo < x (left)
        valid = i >= 0
        ic = np.where(valid, i, 0)
        lo, width = self.lo[ic], self.hi[ic] - self.lo[ic]
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
        target = q * total
        idx = np.minimum(np.searchsorted(cum, target, side="left"), self.counts.size - 1)
        if self.exact:
            return self.values[idx]
        before = cum[idx] - self.counts[idx]
        frac = np.clip((target - before) / self.counts[idx], 0.0, 1.0)
        return self.lo[idx] + (self.hi[idx] - self.lo[idx]) * frac

    def error_bound(self) -> dict[str, float]:
        """``{'wasserstein': absolute W1 bound, 'cdf': max CDF error}`` of the sketch against the data
        it summarises (both 0 for an exact sketch): ``sum_c p_c (hi_c - lo_c)`` and the largest
        probability of a cell with ``lo < hi``."""
        total = self.total
        if self.exact or total == 0:
            return {"wasserstein": 0.0, "cdf": 0.0}
        p = self.counts / float(total)
        width = self.hi - self.lo
        spread = width > 0
        return {
            "wasserstein": float(np.dot(p, width)),
            "cdf": float(p[spread].max()) if spread.any() else 0.0,
        }

    def discretize(
        self, cur_values: FloatArray, cur_counts: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Common grid of this reference sketch and a current window given as sorted distinct finite
        values with their counts.  Returns ``(positions, ref_counts, cur_counts)``, aligned and sorted
        by position, float64.

        Exact sketch: positions are the union of reference and current distinct values.  Histogram
        sketch: one cell per cell of the sketch's grid holding reference or current values; every
        current value is counted in the grid cell it *falls in* (by cell boundaries, never by nearest
        midpoint); position = midpoint of the ``[lo, hi]`` of the values of both sides in that cell.
        """
        cur_values = np.asarray(cur_values, dtype=np.float64)
        cur_counts = np.asarray(cur_counts, dtype=np.float64)
        if self.exact:
            pos = np.union1d(self.values, cur_values)
            ref = np.zeros(pos.size)
            ref[np.searchsorted(pos, self.values)] = self.counts
            cur = np.zeros(pos.size)
            cur[np.searchsorted(pos, cur_values)] = cur_counts
            return pos, ref, cur
        # float keys: exact for every current value, even far outside the reference's int64-safe range
        cur_cells = _Cells.of_sorted(
            cur_values,
            np.column_stack((np.zeros(cur_values.size), cur_counts)),
            scaled_floor(cur_values, self.exponent),
            bucket_keys(cur_values, self.relative_accuracy),
        )
        ref_counts = np.column_stack((self.counts.astype(np.float64), np.zeros(self.counts.size)))
        ref_cells = _Cells(self.ukeys.astype(np.float64), self.keys, ref_counts, self.lo, self.hi)
        both = _Cells.combine([ref_cells, cur_cells])
        return both.lo + (both.hi - both.lo) * 0.5, both.counts[:, 0].copy(), both.counts[:, 1].copy()

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation; a histogram's cell keys are written as their first value and
        successive differences (``*_steps``: mostly 0 and 1, a third of the size)."""
        d: dict[str, Any] = {
            "max_exact_values": self.max_exact,
            "relative_accuracy": self.relative_accuracy,
            "uniform_buckets": self.uniform_buckets,
            "exact": self.exact,
            "counts": self.counts.tolist(),
        }
        if self.exact:
            d["values"] = self.values.tolist()
        else:
            d["exponent"] = self.exponent
            d["ukey_steps"] = np.diff(self.ukeys, prepend=0).tolist()
            d["key_steps"] = np.diff(self.keys, prepend=0).tolist()
            d["lo"] = self.lo.tolist()
            d["hi"] = self.hi.tolist()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ValueSketch:
        """Inverse of :meth:`to_dict`."""
        settings = (int(d["max_exact_values"]), float(d["relative_accuracy"]), int(d["uniform_buckets"]))
        counts = _frozen(np.asarray(d["counts"], dtype=np.int64))
        if d["exact"]:
            return cls(*settings, True, _frozen(np.asarray(d["values"], dtype=np.float64)), counts)
        return cls(
            *settings,
            False,
            _F0,
            counts,
            int(d["exponent"]),
            _frozen(np.cumsum(np.asarray(d["ukey_steps"], dtype=np.int64))),
            _frozen(np.cumsum(np.asarray(d["key_steps"], dtype=np.int64))),
            _frozen(np.asarray(d["lo"], dtype=np.float64)),
            _frozen(np.asarray(d["hi"], dtype=np.float64)),
        )

    def equals(self, other: ValueSketch) -> bool:
        """Exact equality of settings, form, counts, cells and values."""
        return (
            self.settings == other.settings
            and self.exact == other.exact
            and self.exponent == other.exponent
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.counts, other.counts)
            and np.array_equal(self.ukeys, other.ukeys)
            and np.array_equal(self.keys, other.keys)
            and np.array_equal(self.lo, other.lo)
            and np.array_equal(self.hi, other.hi)
        )


# ====================================================================== categorical: frequent items
def reduce_counts(counts: Mapping[K, int], max_categories: int) -> tuple[dict[K, int], int]:
    """Misra-Gries reduction of exact or summarised counts to at most ``max_categories`` counters.

    With more than ``max_categories`` keys, the ``(max_categories + 1)``-th largest count ``t`` is
    subtracted from every count and the keys left with nothing are dropped; returns the kept counts
    and the mass removed.  Each reduction takes ``t`` from at least ``max_categories + 1`` counters
    and at most ``t`` from any one key, so a key's kept count underestimates its input count by at
    most ``removed / (max_categories + 1)``; applied to summed summaries it is the mergeable
    frequent-items summary of Agarwal et al. (2012), whose total error stays below
    ``other / (max_categories + 1)`` with ``other`` all mass removed so far.
    """
    if len(counts) <= max_categories:
        return dict(counts), 0
    vals = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    t = int(np.partition(vals, vals.size - max_categories - 1)[vals.size - max_categories - 1])
    kept = {k: int(v) - t for k, v in counts.items() if v > t}
    return kept, int(vals.sum()) - sum(kept.values())
