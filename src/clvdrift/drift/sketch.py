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
Each non-empty cell stores its count, the smallest and largest value in it (``lo``, ``hi``) and how many
values equal each (``count_lo``, ``count_hi``; both the count when ``lo == hi``): a heavy value at a
cell's edge (a floor, a cap, a spike just below a tail) stays an exact atom instead of being spread over
the cell.  A histogram has at most ``B + (log buckets between min and max)`` cells.

*Exact merging.*  ``e`` depends only on ``(min, max)``, which a merge knows exactly, and never
decreases when the interval grows; a merge coarsens both sides to the merged ``e`` with
``key >> (e_new - e_old)`` (exact floor division) and adds the cells that then coincide, the atoms of
the sides whose ``lo`` (``hi``) is the merged one added: the histogram of the concatenated data.

*Error bound* (:meth:`ValueSketch.error_bound`).  The atoms are exact; the ``m_c`` values strictly
inside a cell are spread uniformly over ``(lo, hi)``, within ``hi - lo`` of where they are, so
``W1(sketch, data) <= sum_c m_c / N (hi_c - lo_c)``; the CDF is exact at cell boundaries and atoms, so
its error is at most the largest ``m_c / N``.  A spike strictly inside a cell is still spread (within
that bound).

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


def _rows(mask: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``a`` where ``mask`` (one flag per row), else 0; ``a`` may have extra trailing axes."""
    return np.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, 0)


@dataclass(frozen=True)
class _Cells:
    """Histogram cells in value order: uniform key, log key, count, smallest and largest value, and the
    number of values equal to the smallest (``count_lo``) and to the largest (``count_hi``); both equal
    ``count`` when ``lo == hi``.  Counts may have a trailing axis (reference and current columns)."""

    ukeys: np.ndarray
    keys: IntArray
    counts: np.ndarray
    lo: FloatArray
    hi: FloatArray
    count_lo: np.ndarray
    count_hi: np.ndarray

    @classmethod
    def of_sorted(cls, values: FloatArray, counts: np.ndarray, ukeys: np.ndarray, keys: IntArray) -> _Cells:
        """Cells of sorted distinct values with their multiplicities and cell keys."""
        starts, ends = _runs(ukeys, keys)
        if starts.size == 0:
            return cls(ukeys, keys, counts, values, values, counts, counts)
        return cls(
            ukeys[starts],
            keys[starts],
            np.add.reduceat(counts, starts, axis=0),
            values[starts],
            values[ends],
            counts[starts],
            counts[ends],
        )

    @classmethod
    def combine(cls, parts: list[_Cells]) -> _Cells:
        """Cells of the union: sorted by (uniform key, log key); equal cells added.  The merged
        ``count_lo`` adds the ``count_lo`` of the parts whose ``lo`` is the merged ``lo`` (and likewise
        for ``hi``): exact, as the parts hold disjoint values."""
        u = np.concatenate([p.ukeys for p in parts])
        k = np.concatenate([p.keys for p in parts])
        order = np.lexsort((k, u))
        u, k = u[order], k[order]

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])[order]

        lo, hi = cat("lo"), cat("hi")
        starts, ends = _runs(u, k)
        run = np.repeat(np.arange(starts.size), ends - starts + 1)
        lo_m, hi_m = np.minimum.reduceat(lo, starts), np.maximum.reduceat(hi, starts)
        return cls(
            u[starts],
            k[starts],
            np.add.reduceat(cat("counts"), starts, axis=0),
            lo_m,
            hi_m,
            np.add.reduceat(_rows(lo == lo_m[run], cat("count_lo")), starts, axis=0),
            np.add.reduceat(_rows(hi == hi_m[run], cat("count_hi")), starts, axis=0),
        )


@dataclass(frozen=True, eq=False)
class ValueSketch:
    """Distribution of a numerical column's finite values: exact, or a histogram (module docstring).

    Exact form (``exact`` true): ``values`` are the sorted distinct values, ``counts`` their
    multiplicities; the cell arrays are empty.  Histogram form: ``ukeys`` (uniform keys at width
    ``2**exponent``) and ``keys`` (log keys, see :func:`bucket_keys`) identify the cells in value order,
    ``counts`` are the cell counts, ``lo``/``hi`` the smallest and largest value seen in each cell and
    ``count_lo``/``count_hi`` how many values equal them (the cell's *atoms*; both are ``counts`` when
    ``lo == hi``); ``values`` is empty.
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
    count_lo: IntArray = field(default_factory=lambda: _I0)
    count_hi: IntArray = field(default_factory=lambda: _I0)

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
            _frozen(np.asarray(cells.count_lo, dtype=np.int64)),
            _frozen(np.asarray(cells.count_hi, dtype=np.int64)),
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
        return _Cells(
            np.right_shift(self.ukeys, shift),
            self.keys,
            self.counts,
            self.lo,
            self.hi,
            self.count_lo,
            self.count_hi,
        )

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

    def _interior(self) -> IntArray:
        """Per histogram cell, the number of values strictly inside ``(lo, hi)`` (0 when ``lo == hi``)."""
        return np.where(self.hi > self.lo, self.counts - self.count_lo - self.count_hi, 0)

    def support(self, points_per_bucket: int = 1) -> tuple[FloatArray, FloatArray]:
        """Sorted support points and their weights (counts).

        Exact form: the distinct values.  Histogram form: per cell, the atoms ``count_lo`` at ``lo`` and
        ``count_hi`` at ``hi`` (exact), and the values strictly inside spread evenly over
        ``points_per_bucket`` points at the mid-quantiles of a uniform distribution on ``(lo, hi)`` (one
        point: the midpoint); a cell with ``lo == hi`` is a single atom.
        """
        if self.exact:
            return self.values, self.counts.astype(np.float64)
        k = max(points_per_bucket, 1)
        width = self.hi - self.lo
        inner = self._interior().astype(np.float64)
        q = (np.arange(k) + 0.5) / k
        pts = np.column_stack((self.lo, self.lo[:, None] + width[:, None] * q[None, :], self.hi))
        w = np.column_stack((self.count_lo, np.repeat(inner / k, k).reshape(-1, k), self.count_hi))
        spread = width > 0
        keep = np.zeros(pts.shape, dtype=bool)
        keep[:, 0] = True
        keep[:, 1:-1] = (inner > 0)[:, None]
        keep[:, -1] = spread
        return pts[keep], w[keep].astype(np.float64)

    def cdf(self, x: FloatArray, side: Literal["left", "right"] = "right") -> FloatArray:
        """Reference CDF at ``x``: ``P(X <= x)`` (``side='right'``) or ``P(X < x)`` (``'left'``).

        Exact form: the empirical CDF.  Histogram form: exact jumps ``count_lo`` at each cell's ``lo`` and
        ``count_hi`` at its ``hi``, linear in between (the values strictly inside the cell).
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
        lo, hi, width = self.lo[ic], self.hi[ic], self.hi[ic] - self.lo[ic]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.clip(np.where(width > 0, (x - lo) / np.where(width > 0, width, 1.0), 1.0), 0.0, 1.0)
        out = cum[ic] + self.count_lo[ic] + self._interior()[ic] * frac
        after = cum[ic + 1]
        if side == "right":
            out = np.where(x >= hi, after, out)
        else:
            out = np.where(x > hi, after, np.where(x == hi, after - self.count_hi[ic], out))
        return np.where(valid, out, 0.0) / total

    def quantile(self, q: FloatArray) -> FloatArray:
        """Quantiles of the summarised distribution: the smallest ``x`` with ``cdf(x) >= q`` (the atoms
        at a cell's ``lo`` and ``hi`` are exact, the values strictly inside are interpolated)."""
        q = np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)
        total = float(self.counts.sum())
        if total == 0:
            return np.full(q.shape, np.nan)
        cum = np.cumsum(self.counts, dtype=np.float64)
        target = q * total
        idx = np.minimum(np.searchsorted(cum, target, side="left"), self.counts.size - 1)
        if self.exact:
            return self.values[idx]
        rank = target - (cum[idx] - self.counts[idx]) - self.count_lo[idx]  # rank among the inner values
        inner = self._interior()[idx]
        frac = np.clip(rank / np.maximum(inner, 1), 0.0, 1.0)
        lo, hi = self.lo[idx], self.hi[idx]
        return np.where(rank <= 0, lo, np.where(rank > inner, hi, lo + (hi - lo) * frac))

    def error_bound(self) -> dict[str, float]:
        """``{'wasserstein': absolute W1 bound, 'cdf': max CDF error}`` of the sketch against the data
        it summarises (both 0 for an exact sketch).  The atoms at each cell's ``lo`` and ``hi`` are
        exact; only the ``m_c`` values strictly inside a cell can be misplaced, within ``hi_c - lo_c``:
        ``sum_c m_c / N (hi_c - lo_c)`` and the largest ``m_c / N``."""
        total = self.total
        if self.exact or total == 0:
            return {"wasserstein": 0.0, "cdf": 0.0}
        p = self._interior() / float(total)
        return {"wasserstein": float(np.dot(p, self.hi - self.lo)), "cdf": float(p.max())}

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

        def as_ref(c: IntArray) -> FloatArray:
            return np.column_stack((c.astype(np.float64), np.zeros(c.size)))

        ref_cells = _Cells(
            self.ukeys.astype(np.float64),
            self.keys,
            as_ref(self.counts),
            self.lo,
            self.hi,
            as_ref(self.count_lo),
            as_ref(self.count_hi),
        )
        both = _Cells.combine([ref_cells, cur_cells])
        return both.lo + (both.hi - both.lo) * 0.5, both.counts[:, 0].copy(), both.counts[:, 1].copy()

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation; a histogram's cell keys are written as their first value and
        successive differences (``*_steps``: mostly 0 and 1, a third of the size), and its atom counts
        (``count_lo``, ``count_hi``) only for the cells with ``lo < hi`` (the others' are their count)."""
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
            spread = self.hi > self.lo
            d["count_lo"] = self.count_lo[spread].tolist()
            d["count_hi"] = self.count_hi[spread].tolist()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ValueSketch:
        """Inverse of :meth:`to_dict`."""
        settings = (int(d["max_exact_values"]), float(d["relative_accuracy"]), int(d["uniform_buckets"]))
        counts = _frozen(np.asarray(d["counts"], dtype=np.int64))
        if d["exact"]:
            return cls(*settings, True, _frozen(np.asarray(d["values"], dtype=np.float64)), counts)
        lo, hi = np.asarray(d["lo"], dtype=np.float64), np.asarray(d["hi"], dtype=np.float64)
        spread = hi > lo
        count_lo, count_hi = counts.copy(), counts.copy()
        count_lo[spread] = np.asarray(d["count_lo"], dtype=np.int64)
        count_hi[spread] = np.asarray(d["count_hi"], dtype=np.int64)
        return cls(
            *settings,
            False,
            _F0,
            counts,
            int(d["exponent"]),
            _frozen(np.cumsum(np.asarray(d["ukey_steps"], dtype=np.int64))),
            _frozen(np.cumsum(np.asarray(d["key_steps"], dtype=np.int64))),
            _frozen(lo),
            _frozen(hi),
            _frozen(count_lo),
            _frozen(count_hi),
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
            and np.array_equal(self.count_lo, other.count_lo)
            and np.array_equal(self.count_hi, other.count_hi)
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
