"""Column drift tests, computed against a :class:`~clvdrift.drift.profile.ReferenceProfile`.

The tests, their default thresholds, drift rules and the default choice reproduce Evidently 0.7
(``evidently/legacy/calculations/stattests``), so that per-column verdicts agree with Evidently's
on the same data (see ``docs/drift.md`` for the source lines matched):

============== ======== ========= =================================== ==============================
name           returns  threshold drift when                          implementation
============== ======== ========= =================================== ==============================
ks             p-value  0.05      ``p <= threshold``                  ``scipy.stats.ks_2samp``
chisquare      p-value  0.05      ``p < threshold``                   ``scipy.stats.chisquare``
z              p-value  0.05      ``p < threshold``                   two-proportion z, ``scipy.stats.norm``
wasserstein    distance 0.1       ``d >= threshold``                  scipy W1 / max(std_ref, 0.001)
jensenshannon  distance 0.1       ``d >= threshold``                  ``scipy.spatial.distance.jensenshannon``
psi            distance 0.1       ``d >= threshold``                  Evidently's binning and zero filling
============== ======== ========= =================================== ==============================

All functions here are pure numpy/scipy; the hot paths work on a sorted array of the current
window's finite values and the reference sketch, never on the reference rows.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.spatial import distance as spd

from clvdrift.drift.profile import CATEGORICAL, NUMERICAL, NumericColumnProfile, ValueSketch
from clvdrift.errors import DriftInputError

_QUIET = threading.Lock()
"""Held around each ``warnings.catch_warnings`` block here: the block saves the process's one list of
warning filters and puts it back on the way out, so two threads inside at once (columns tested in
parallel, a replay's policies) could leave a filter of one of them in place for the rest of the process."""

__all__ = [
    "DECISION_RULES",
    "DEFAULT_THRESHOLDS",
    "P_VALUE_TESTS",
    "TEST_NAMES",
    "TestOutcome",
    "bh_adjust",
    "default_test",
    "is_drift",
]

TEST_NAMES: tuple[str, ...] = ("chisquare", "jensenshannon", "ks", "psi", "wasserstein", "z")
P_VALUE_TESTS = frozenset({"ks", "chisquare", "z"})
NUMERICAL_ONLY_TESTS = frozenset({"ks", "wasserstein"})
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
}
DECISION_RULES: dict[str, str] = {
    "ks": "p_value <= threshold",
    "chisquare": "p_value < threshold",
    "z": "p_value < threshold",
    "wasserstein": "statistic >= threshold",
    "jensenshannon": "statistic >= threshold",
    "psi": "statistic >= threshold",
}
SMALL_REFERENCE_ROWS = 1000  # Evidently: reference_data.shape[0] <= 1000
FEW_VALUES = 5  # Evidently: n_values <= 5
BINARY_VALUES = 2  # Evidently: chi_stat_test if n_values > 2 else z_stat_test
BINNING_MIN_UNIQUE = 20  # Evidently get_binned_data: numerical and n_vals > 20 -> histogram
KS_MAX_AUTO_N = 10_000  # scipy.stats ks_2samp: exact p-value when max(n1, n2) <= 10000
WASSERSTEIN_MIN_NORM = 0.001  # Evidently: max(float(np.std(reference_data)), 0.001)
W_POINTS_PER_BUCKET = 8  # histogram sketch: each bucket as 8 points spread uniformly over [lo, hi]

FloatArray = np.ndarray


def default_test(kind: str, reference_size: int, n_unique: int) -> tuple[str, str]:
    """Evidently 0.7's default test for a column, with a sentence saying why.

    ``reference_size`` is the number of non-missing reference values and ``n_unique`` the number of
    distinct non-missing values over reference and current together (``_get_default_stattest``).
    """
    if kind not in (NUMERICAL, CATEGORICAL):
        raise ValueError(f"unknown column kind {kind!r}")
    if reference_size <= SMALL_REFERENCE_ROWS:
        where = f"reference has {reference_size} values (<= {SMALL_REFERENCE_ROWS})"
        if kind == NUMERICAL and n_unique > FEW_VALUES:
            return "ks", f"{where}; numerical with {n_unique} distinct values (> {FEW_VALUES})"
        what = (
            f"numerical with {n_unique} distinct values (<= {FEW_VALUES})"
            if kind == NUMERICAL
            else f"categorical with {n_unique} distinct values"
        )
        if n_unique > BINARY_VALUES:
            return "chisquare", f"{where}; {what} (> {BINARY_VALUES})"
        return "z", f"{where}; {what} (<= {BINARY_VALUES})"
    where = f"reference has {reference_size} values (> {SMALL_REFERENCE_ROWS})"
    if kind == NUMERICAL and n_unique > FEW_VALUES:
        return "wasserstein", f"{where}; numerical with {n_unique} distinct values (> {FEW_VALUES})"
    what = (
        f"numerical with {n_unique} distinct values (<= {FEW_VALUES})"
        if kind == NUMERICAL
        else f"categorical with {n_unique} distinct values"
    )
    return "jensenshannon", f"{where}; {what}"


def is_drift(test: str, value: float, threshold: float) -> bool:
    """Evidently's decision: p-value tests compare the p-value, distances the distance."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if test == "ks":
        return bool(value <= threshold)
    if test in ("chisquare", "z"):
        return bool(value < threshold)
    return bool(value >= threshold)


@dataclass(frozen=True)
class TestOutcome:
    """Statistic and (for p-value tests) p-value of one test on one column."""

    statistic: float
    p_value: float | None


# ====================================================================== numeric helpers
def sorted_finite(arr: FloatArray) -> tuple[FloatArray, int]:
    """Sorted finite values of ``arr`` (``-0.0`` as ``0.0``) and the number of non-finite ones."""
    finite = np.isfinite(arr)
    n_finite = int(np.count_nonzero(finite))
    x = np.sort(arr[finite]) if n_finite != arr.size else np.sort(arr)
    x += 0.0
    return x, int(arr.size - n_finite)


def runs(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Distinct values of a sorted array and their multiplicities (as float64)."""
    if x.size == 0:
        return x, np.zeros(0)
    new = x[1:] != x[:-1]
    if new.all():  # every value distinct, as in most continuous columns: no gather needed
        return x, np.ones(x.size)
    starts = np.flatnonzero(np.concatenate(([True], new)))
    counts = np.diff(np.append(starts, x.size)).astype(np.float64)
    return x[starts], counts


_EXACT_INT = 2**53  # integers up to this magnitude are exact in float64


def distinct_counts(values: np.ndarray) -> tuple[FloatArray, FloatArray, int]:
    """The sorted distinct finite values of ``values`` (float64, ``-0.0`` as ``0.0``), their counts
    (float64) and the number of non-finite values: :func:`sorted_finite` then :func:`runs`.

    A NumPy integer array whose values lie within ±2**53 and span less than its size (or
    65,536) is counted with ``np.bincount`` in one pass instead of sorted: the same result, in O(n)."""
    if values.dtype.kind in "iu" and values.size:
        lo, hi = int(values.min()), int(values.max())
        if lo >= -_EXACT_INT and hi <= _EXACT_INT and hi - lo < max(values.size, 1 << 16):
            counts = np.bincount(values.astype(np.int64, copy=False) - lo, minlength=1)  # int8: no wrap
            present = np.flatnonzero(counts)
            return (present + lo).astype(np.float64), counts[present].astype(np.float64), 0
    x, n_missing = sorted_finite(np.asarray(values, dtype=np.float64))
    uniques, counts = runs(x)
    return uniques, counts, n_missing


def wide_integers_note(values: np.ndarray, ref_min: float, ref_max: float, ref_integer: bool) -> str | None:
    """A note when integers beyond ±2**53 (where float64 no longer holds every integer) take part:
    ``values`` (the current column, any dtype) or an integer reference reaching there (its min or max).
    On the current side it counts the distinct integers that became equal as float64."""
    current_wide = (
        values.dtype.kind in "iu"
        and values.size
        and (int(values.min()) < -_EXACT_INT or int(values.max()) > _EXACT_INT)
    )
    reference_wide = ref_integer and max(-ref_min, ref_max) > _EXACT_INT
    if not (current_wide or reference_wide):
        return None
    note = "integers beyond ±2**53 are compared as float64, where neighbouring integers can be equal"
    if current_wide:
        ints = np.unique(values).size
        floats = np.unique(values.astype(np.float64)).size
        note += f"; the current window's {ints:,} distinct integers are {floats:,} distinct float64 values"
    return note


def wasserstein_weighted(u: FloatArray, uw: FloatArray, v: FloatArray, vw: FloatArray) -> float:
    """First Wasserstein distance between two weighted point sets, each sorted with distinct
    values: the integral of ``|F_u - F_v|`` that ``scipy.stats.wasserstein_distance`` computes.

    In O(n + m log n) with ``u`` the larger set (the distance is symmetric): the integral over ``u``'s
    own intervals with ``F_v`` taken at each interval's start, then, for each point of ``v`` inside an
    interval, the change its step makes on the rest of that interval (these telescope when several
    fall in one interval), and the stretches of ``v`` below and above ``u``."""
    if u.size < v.size:
        u, uw, v, vw = v, vw, u, uw
    n, m = u.size, v.size
    tu, tv = float(uw.sum()), float(vw.sum())
    if n == 0 or m == 0 or tu <= 0 or tv <= 0:
        return float("nan")
    first, last = float(min(u[0], v[0])), float(max(u[-1], v[-1]))
    if math.isfinite(first) and math.isfinite(last) and math.isinf(last - first):
        # a gap of u could exceed the largest float (values near ±1.8e308, found by an adversarial
        # check): the same integral at half scale, a power of two, so exact but for subnormals
        return 2.0 * wasserstein_weighted(u * 0.5, uw, v * 0.5, vw)
    cu = np.cumsum(uw, dtype=np.float64)
    cu /= tu  # F_u on [u_j, u_j+1)
    cv = np.concatenate(([0.0], np.cumsum(vw, dtype=np.float64) / tv))  # cv[k]: F_v after k points
    below = np.searchsorted(u, v, side="left")  # number of u values below each v
    # F_v at each u value (v points at or below it), then the integral over [u_0, u_n-1]
    fv = np.repeat(cv, np.diff(np.concatenate(([0], below, [n]))))
    fv -= cu
    np.abs(fv, out=fv)
    total = float(np.dot(fv[:-1], np.diff(u)))
    # a v point strictly inside (u_j, u_j+1): F_v steps from cv[k] to cv[k+1] on [v_k, u_j+1)
    inside = (below > 0) & (below < n)
    inside[inside] = u[below[inside]] != v[inside]
    k = np.flatnonzero(inside)
    if k.size:
        j = below[k] - 1
        level = cu[j]
        total += float(np.dot(np.abs(level - cv[k + 1]) - np.abs(level - cv[k]), u[j + 1] - v[k]))
    # v below u_0 (F_u = 0) and above u_n-1 (F_u = 1): segments between consecutive breakpoints
    lo = np.flatnonzero(below == 0)
    if lo.size:
        ends = np.minimum(np.append(v[lo[1:]], u[0]), u[0])
        total += float(np.dot(cv[lo + 1], ends - v[lo]))
    hi = np.flatnonzero(below == n)
    if hi.size:
        starts = np.concatenate(([u[-1]], v[hi]))
        total += float(np.dot(1.0 - cv[np.concatenate(([hi[0]], hi + 1))][:-1], np.diff(starts)))
    return total


def wasserstein_normed(ref: NumericColumnProfile, cur_values: FloatArray, cur_counts: FloatArray) -> float:
    """Evidently's normed Wasserstein distance ``W1(ref, cur) / max(std(ref), 0.001)``; the current
    window is given as its sorted distinct values and their counts (see :func:`runs`)."""
    pts, w = ref.sketch.support(points_per_bucket=W_POINTS_PER_BUCKET)
    return wasserstein_weighted(cur_values, cur_counts, pts, w) / max(ref.std, WASSERSTEIN_MIN_NORM)


def ks_statistic(sketch: ValueSketch, cur_values: FloatArray, cur_counts: FloatArray) -> float:
    """Two-sample KS statistic ``sup |F_cur - F_ref|`` with the reference CDF from the sketch.

    The current window is given as sorted distinct values with counts; the supremum is attained
    at a current value, from the right or from the left.  Equal to ``scipy.stats.ks_2samp``'s
    statistic when the sketch is exact.
    """
    n = float(cur_counts.sum())
    if n == 0:
        return float("nan")
    cum = np.cumsum(cur_counts)
    d_right = np.abs(cum / n - sketch.cdf(cur_values, side="right"))
    d_left = np.abs((cum - cur_counts) / n - sketch.cdf(cur_values, side="left"))
    return float(max(d_right.max(), d_left.max()))


def ks_pvalue(d: float, n1: int, n2: int) -> float:
    """Two-sided p-value of the two-sample KS statistic as ``scipy.stats.ks_2samp(method='auto')``
    computes it: exact when ``max(n1, n2) <= 10000``, else Smirnov's asymptotic ``kstwo``."""
    if max(n1, n2) <= KS_MAX_AUTO_N:
        try:  # scipy's own exact computation (private helper; fall back to asymptotic if it moves)
            from scipy.stats._stats_py import _attempt_exact_2kssamp

            g = math.gcd(n1, n2)
            success, _, prob = _attempt_exact_2kssamp(n1, n2, g, d, "two-sided")
            if success:
                return float(np.clip(prob, 0.0, 1.0))
        except (ImportError, TypeError, ValueError, FloatingPointError, OverflowError):
            pass
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(sps.kstwo.sf(d, np.round(en)), 0.0, 1.0))


def ks_test(ref: NumericColumnProfile, cur_values: FloatArray, cur_counts: FloatArray) -> TestOutcome:
    """KS test of the current window (sorted distinct values with counts); calls
    ``scipy.stats.ks_2samp`` directly when the exact reference and the window are small."""
    n_ref, n_cur = ref.count, int(cur_counts.sum())
    if ref.sketch.exact and max(n_ref, n_cur) <= KS_MAX_AUTO_N:
        ref_values = np.repeat(ref.sketch.values, ref.sketch.counts)
        cur_sorted = np.repeat(cur_values, cur_counts.astype(np.int64))
        with _QUIET, warnings.catch_warnings():  # scipy warns, then uses the asymptotic p-value; so do we
            warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
            res = sps.ks_2samp(ref_values, cur_sorted)
        return TestOutcome(float(res.statistic), float(res.pvalue))
    d = ks_statistic(ref.sketch, cur_values, cur_counts)
    return TestOutcome(d, ks_pvalue(d, n_ref, n_cur))


def sturges_edges(lo: float, hi: float, size: int, integer: bool = False) -> FloatArray:
    """``np.histogram_bin_edges(combined, bins='sturges')`` from the min, max, size and dtype of the
    combined data (numpy's ``_hist_bin_sturges``, ``_get_outer_edges`` and ``_get_bin_edges``: for an
    integer array a width below 1 is raised to 1)."""
    first, last = float(lo), float(hi)
    if not np.isfinite(last - first):  # e.g. ±1e308: numpy's own binning fails there too
        raise DriftInputError(
            f"values from {first:.6g} to {last:.6g} span more than the largest float: they cannot be binned"
        )
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = (float(hi) - float(lo)) / (np.log2(size) + 1.0)
    if integer and 0 < width < 1:
        width = 1.0
    n_bins = int(np.ceil((last - first) / width)) if width else 1
    return np.linspace(first, last, n_bins + 1, endpoint=True)


def numeric_binned_counts(
    ref: NumericColumnProfile, cur_values: FloatArray, cur_weights: FloatArray, integer: bool
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Evidently's histogram path of ``get_binned_data`` (numerical, > 20 reference values):
    Sturges bins over reference and current together (``integer``: both columns have an integer dtype,
    so the concatenation Evidently bins is an integer array); returns edges, reference and current
    counts. Reference counts are exact for an exact sketch, interpolated within buckets otherwise."""
    lo = min(ref.min, float(cur_values[0]))
    hi = max(ref.max, float(cur_values[-1]))
    edges = sturges_edges(lo, hi, ref.count + int(cur_weights.sum()), integer)
    cur_counts = np.histogram(cur_values, bins=edges, weights=cur_weights)[0].astype(np.float64)
    if ref.sketch.exact:
        ref_counts = np.histogram(ref.sketch.values, bins=edges, weights=ref.sketch.counts)[0]
    else:
        left = ref.sketch.cdf(edges, side="left") * ref.count
        left[-1] = ref.count
        ref_counts = np.diff(left)
    return edges, np.asarray(ref_counts, dtype=np.float64), cur_counts


def fill_zeroes(percents: FloatArray) -> FloatArray:
    """Evidently's ``feel_zeroes``: zeros become ``min_nonzero / 1e6`` if ``min_nonzero <= 1e-4``,
    else ``1e-4``."""
    out = np.array(percents, dtype=np.float64)
    nonzero = out[out != 0]
    if nonzero.size == 0:
        return out
    mn = float(nonzero.min())
    np.place(out, out == 0, mn / 10**6 if mn <= 0.0001 else 0.0001)
    return out


def psi_from_percents(ref_percents: FloatArray, cur_percents: FloatArray) -> float:
    """PSI of two percent vectors after Evidently's zero filling:
    ``sum((r - c) * ln(r / c))``."""
    r = fill_zeroes(ref_percents)
    c = fill_zeroes(cur_percents)
    return float(np.sum((r - c) * np.log(r / c)))


def jensenshannon_from_percents(ref_percents: FloatArray, cur_percents: FloatArray) -> float:
    """``scipy.spatial.distance.jensenshannon`` (natural log), Evidently's ``base=None``."""
    return float(spd.jensenshannon(ref_percents, cur_percents))


# ====================================================================== value-count tests
def chisquare_counts(ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """Evidently's chi-square: expected = reference counts * (n_cur / n_ref) over the union of
    values; ``scipy.stats.chisquare``.  A value unseen in the reference gives ``inf`` and p = 0."""
    n_ref, n_cur = float(ref_counts.sum()), float(cur_counts.sum())
    f_exp = ref_counts * (n_cur / n_ref)
    with _QUIET, warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.chisquare(cur_counts, f_exp)
    return float(res.statistic), float(res.pvalue)


def z_counts(ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """Evidently's two-proportion z-test over values sorted ascending: the proportion of values
    different from the first (smallest) value in reference vs current; p = 1 when both are the
    same single value.  Returns ``(z, two-sided p)``."""
    ref_nz, cur_nz = ref_counts > 0, cur_counts > 0
    if np.count_nonzero(ref_nz) == 1 and np.count_nonzero(cur_nz) == 1 and np.array_equal(ref_nz, cur_nz):
        return 0.0, 1.0
    n1, n2 = float(ref_counts.sum()), float(cur_counts.sum())
    p1 = (n1 - ref_counts[0]) / n1
    p2 = (n2 - cur_counts[0]) / n2
    big_p = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(big_p * (1 - big_p) * (1.0 / n1 + 1.0 / n2))
    p = 2 * (1 - sps.norm.cdf(np.abs(z)))
    return float(z), float(p)


def value_count_test(test: str, ref_counts: FloatArray, cur_counts: FloatArray) -> TestOutcome:
    """Run a value-count test; counts are aligned over the union of values (sorted for ``z``)."""
    if test == "chisquare":
        return TestOutcome(*chisquare_counts(ref_counts, cur_counts))
    if test == "z":
        return TestOutcome(*z_counts(ref_counts, cur_counts))
    ref_pct = ref_counts / ref_counts.sum()
    cur_pct = cur_counts / cur_counts.sum()
    if test == "jensenshannon":
        return TestOutcome(jensenshannon_from_percents(ref_pct, cur_pct), None)
    if test == "psi":
        return TestOutcome(psi_from_percents(ref_pct, cur_pct), None)
    raise ValueError(f"{test!r} is not a value-count test")


def bh_adjust(p_values: FloatArray) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    return np.asarray(sps.false_discovery_control(p, method="bh"), dtype=np.float64)
