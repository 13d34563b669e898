"""The value sketch: accuracy against SciPy on columns unlike the bundled data (narrow spread, large
offset, heavy tails, integers, zero inflation, negative values), its error bound, exact merging across
grid exponents, and the common grid the calibration uses (``discretize``)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from clvdrift.config import DriftConfig
from clvdrift.drift import build_profile, detect_data_drift
from clvdrift.drift.columns import NumericColumnProfile
from clvdrift.drift.sketch import (
    DEFAULT_RELATIVE_ACCURACY,
    DEFAULT_UNIFORM_BUCKETS,
    ValueSketch,
    bucket_keys,
    scaled_floor,
    uniform_exponent,
)

Gen = Callable[[np.random.Generator, int], np.ndarray]
DAY = 86_400.0

# Columns whose spread is small next to their magnitude (one 0.5 % log bucket is wider than the data),
# and the shapes the log buckets were made for; every one has far more than 4,096 distinct values.
COLUMNS: dict[str, Gen] = {
    "latitude": lambda r, n: np.round(51.5 + r.normal(0.0, 0.04, n), 6),
    "kelvin": lambda r, n: np.round(290.0 + r.normal(0.0, 5.0, n), 3),
    "epoch_s_month": lambda r, n: 1.7e9 + r.integers(0, 30 * 86_400, n).astype(np.float64),
    "epoch_ms_year": lambda r, n: 1.7e12 + r.integers(0, 365 * 86_400_000, n).astype(np.float64),
    "price_1000": lambda r, n: np.round(1000.0 + r.normal(0.0, 5.0, n), 4),
    "lognormal_s2": lambda r, n: r.lognormal(0.0, 2.0, n),
    "integer_counts": lambda r, n: r.negative_binomial(2, 0.0004, n).astype(np.float64),
    "zero_inflated": lambda r, n: np.where(r.random(n) < 0.4, 0.0, np.round(r.lognormal(3.0, 1.2, n), 2)),
    "negative": lambda r, n: np.round(-r.lognormal(5.0, 0.7, n), 3),
}
N_REF, N_CUR = 60_000, 40_000


@pytest.mark.parametrize("kind", sorted(COLUMNS))
def test_normed_wasserstein_matches_scipy_on_no_drift_windows(kind: str) -> None:
    rng = np.random.default_rng(sum(map(ord, kind)))
    ref_raw, cur_raw = COLUMNS[kind](rng, N_REF), COLUMNS[kind](rng, N_CUR)
    profile = build_profile(pd.DataFrame({"x": ref_raw}))
    assert not profile.column("x").sketch.exact  # the histogram is what is tested
    result = detect_data_drift(profile, pd.DataFrame({"x": cur_raw}), DriftConfig(stattest="wasserstein"))
    ours = result.column("x").statistic
    scipy = sps.wasserstein_distance(ref_raw, cur_raw) / max(float(np.std(ref_raw)), 0.001)
    assert abs(ours - scipy) <= max(0.01 * scipy, 0.002), (kind, ours, scipy)
    assert result.column("x").drifted is False  # as Evidently decides: distance far below 0.1


@pytest.mark.parametrize("kind", sorted(COLUMNS))
def test_error_bound_holds_against_the_raw_reference(kind: str) -> None:
    rng = np.random.default_rng(7)
    raw = COLUMNS[kind](rng, N_REF)
    col = build_profile(pd.DataFrame({"x": raw})).column("x")
    bound = col.error_bound()
    pts, w = col.sketch.support(points_per_bucket=8)
    w1 = sps.wasserstein_distance(pts, raw, u_weights=w) / max(float(np.std(raw)), 0.001)
    assert w1 <= bound["wasserstein_normed"] * (1 + 1e-9)
    assert bound["wasserstein_normed"] < 0.05  # and it is a useful bound, not a vacuous one
    xs = np.unique(raw)
    ecdf = np.searchsorted(np.sort(raw), xs, side="right") / raw.size
    assert np.max(np.abs(col.sketch.cdf(xs) - ecdf)) <= bound["cdf"] + 1e-12
    assert bound["cdf"] < 0.02


def test_exact_sketch_has_zero_error_bound() -> None:
    col = build_profile(pd.DataFrame({"x": np.arange(1000.0) * 1e9})).column("x")
    assert col.sketch.exact and col.error_bound() == {"wasserstein_normed": 0.0, "cdf": 0.0}


def _sketch(values: np.ndarray, max_exact: int = 1024, buckets: int = 64) -> ValueSketch:
    return ValueSketch.from_values(values, max_exact, DEFAULT_RELATIVE_ACCURACY, buckets)


@pytest.mark.parametrize("buckets", [2, 64, DEFAULT_UNIFORM_BUCKETS])
def test_histograms_of_different_spreads_merge_exactly(buckets: int) -> None:
    rng = np.random.default_rng(3)
    parts = [
        51.5 + rng.normal(0, 1e-4, 3000),  # narrow: a fine grid
        rng.normal(0, 1e6, 3000),  # wide, both signs: a coarse grid
        np.concatenate([np.zeros(500), rng.uniform(-1e-9, 1e-9, 2000)]),  # zero bucket, tiny values
        np.repeat(rng.integers(-50, 50, 40).astype(float), 30),  # few distinct values: exact
        np.array([1e300, -1e300, 5e-324]),
    ]
    whole = _sketch(np.concatenate(parts), buckets=buckets)
    for order in (parts, parts[::-1], [parts[2], parts[0], parts[4], parts[1], parts[3]]):
        merged = _sketch(order[0], buckets=buckets)
        for p in order[1:]:
            merged = merged.merge(_sketch(p, buckets=buckets))
        assert merged.equals(whole)
    assert not whole.exact and whole.counts.size <= buckets + np.unique(whole.keys).size


def test_uniform_exponent_is_the_smallest_int64_safe_one() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        scale = 10.0 ** rng.uniform(-300, 300)
        lo, hi = np.sort(rng.normal(rng.normal() * 1e6, 1.0, 2) * scale)
        b = int(rng.integers(2, 5000))
        e = uniform_exponent(float(lo), float(hi), b)
        span = math.floor(math.ldexp(hi, -e)) - math.floor(math.ldexp(lo, -e)) + 1
        top = max(abs(lo), abs(hi))
        assert span <= b and math.ldexp(top, -e) < 2.0**60
        finer_ok = math.ldexp(top, 1 - e) < 2.0**60 and (
            math.floor(math.ldexp(hi, 1 - e)) - math.floor(math.ldexp(lo, 1 - e)) + 1 <= b
        )
        assert not finer_ok
        wider = uniform_exponent(float(lo) - abs(float(lo)) * 0.1, float(hi), b)
        assert wider >= e  # monotone in the interval: what makes merging exact


def test_scaled_floor_of_underflowing_negative_values() -> None:
    vals = np.array([-5e-324, -1e-310, 0.0, 1e-310, 3.0, -3.0])
    assert scaled_floor(vals, 40).tolist() == [-1.0, -1.0, 0.0, 0.0, 0.0, -1.0]


def test_discretize_exact_is_the_union_of_values() -> None:
    sk = _sketch(np.array([1.0, 2.0, 2.0, 5.0]))
    pos, ref, cur = sk.discretize(np.array([0.5, 2.0, 7.0]), np.array([3.0, 1.0, 2.0]))
    assert pos.tolist() == [0.5, 1.0, 2.0, 5.0, 7.0]
    assert ref.tolist() == [0, 1, 2, 1, 0] and cur.tolist() == [3, 0, 1, 0, 2]


def test_discretize_counts_current_values_in_the_cell_they_fall_in() -> None:
    rng = np.random.default_rng(11)
    ref_raw = np.round(1000 + rng.normal(0, 5, 20_000), 4)
    sk = _sketch(ref_raw, buckets=32)
    assert not sk.exact
    cur_raw = np.round(1000 + rng.normal(1, 6, 5000), 4)
    cur_raw[:50] = 2000.0  # far beyond the reference: cells of their own
    cur_vals, cur_counts = np.unique(cur_raw, return_counts=True)
    pos, ref, cur = sk.discretize(cur_vals, cur_counts.astype(float))
    assert np.all(np.diff(pos) > 0)
    assert ref.sum() == ref_raw.size and cur.sum() == cur_raw.size
    # brute force: a value's cell is (floor(x / 2**e), log key), whatever the nearest midpoint is
    cells: dict[tuple[float, int], list[float]] = {}
    for src, data in ((0, ref_raw), (1, cur_raw)):
        keys = zip(scaled_floor(data, sk.exponent), bucket_keys(data, sk.relative_accuracy), strict=True)
        for (u, k), x in zip(keys, data, strict=True):
            cells.setdefault((float(u), int(k)), [0.0, 0.0, math.inf, -math.inf])
            c = cells[(float(u), int(k))]
            c[src] += 1
            c[2], c[3] = min(c[2], x), max(c[3], x)
    expected = sorted(cells.items())
    assert pos.size == len(expected)
    assert ref.tolist() == [c[0] for _, c in expected] and cur.tolist() == [c[1] for _, c in expected]
    np.testing.assert_allclose(pos, [(c[2] + c[3]) / 2 for _, c in expected], rtol=1e-15)
    assert cur[-1] == 50 and ref[-1] == 0


def test_discretize_of_a_window_far_outside_the_int64_key_range() -> None:
    sk = _sketch(1.0 + np.arange(5000) * 1e-6)
    pos, ref, cur = sk.discretize(np.array([-1e300, 1.001, 1e300]), np.array([1.0, 2.0, 3.0]))
    assert pos[0] == -1e300 and pos[-1] == 1e300 and cur.tolist()[0] == 1 and cur.tolist()[-1] == 3
    assert ref.sum() == 5000 and cur.sum() == 6


# ---------------------------------------------------------------- heavy atoms at a cell's lo or hi
def _spike_pareto(r: np.random.Generator, n: int) -> np.ndarray:
    return np.where(r.random(n) < 0.6, 5000.0, 5000.0 + r.pareto(2.5, n))


def _capped(r: np.random.Generator, n: int) -> np.ndarray:
    return np.minimum(r.lognormal(0.0, 1.0, n) * 40.0, 40.0 * math.exp(0.5244))  # 30 % at the cap


def _offset_zero_inflated(r: np.random.Generator, n: int) -> np.ndarray:
    return 1e6 + np.where(r.random(n) < 0.5, 0.0, np.round(r.exponential(5.0, n), 3))


def _integer_floor_and_cap(r: np.random.Generator, n: int) -> np.ndarray:
    """Counts at a large base: 40 % exactly at the base, 20 % at the cap, a geometric tail between."""
    u = r.random(n)
    return 10_000.0 + np.where(
        u < 0.4, 0, np.where(u < 0.6, 20_000, np.minimum(r.geometric(2e-4, n), 20_000))
    )


ATOM_COLUMNS: dict[str, tuple[Gen, int, int, int]] = {  # generator, reference rows, current rows, seed
    "spike_pareto_200k": (_spike_pareto, 200_000, 50_000, 0),
    "spike_pareto_30k": (_spike_pareto, 30_000, 2_000, 0),
    "capped_lognormal": (_capped, 60_000, 20_000, 1),
    "offset_zero_inflated": (_offset_zero_inflated, 60_000, 20_000, 1),
    "integer_floor_and_cap": (_integer_floor_and_cap, 60_000, 20_000, 1),
}


@pytest.mark.parametrize("kind", sorted(ATOM_COLUMNS))
def test_heavy_atoms_at_cell_edges_are_exact(kind: str) -> None:
    """A heavy value at the edge of a wide cell (column minimum or maximum, or a cell's smallest value)
    used to be spread over the cell: normed Wasserstein up to 16x SciPy's and a KS distance of 0.3-0.6
    on no-drift windows.  Its atom is now exact: Wasserstein within 1 % or 0.002 of SciPy, KS within the
    sketch's CDF bound, no drift for either test."""
    gen, n_ref, n_cur, seed = ATOM_COLUMNS[kind]
    rng = np.random.default_rng(seed)
    ref_raw, cur_raw = gen(rng, n_ref), gen(rng, n_cur)
    profile = build_profile(pd.DataFrame({"x": ref_raw}))
    col = profile.column("x")
    assert isinstance(col, NumericColumnProfile) and not col.sketch.exact
    cur = pd.DataFrame({"x": cur_raw})
    w = detect_data_drift(profile, cur, DriftConfig(stattest="wasserstein")).column("x")
    scipy_w = sps.wasserstein_distance(ref_raw, cur_raw) / max(float(np.std(ref_raw)), 0.001)
    assert abs(w.statistic - scipy_w) <= max(0.01 * scipy_w, 0.002), (kind, w.statistic, scipy_w)
    ks = detect_data_drift(profile, cur, DriftConfig(stattest="ks")).column("x")
    scipy_ks = sps.ks_2samp(ref_raw, cur_raw).statistic
    assert abs(ks.statistic - scipy_ks) <= col.error_bound()["cdf"] + 1e-12, (kind, ks.statistic, scipy_ks)
    assert w.drifted is False and ks.drifted is False


def test_quantiles_and_cdf_return_the_atoms() -> None:
    rng = np.random.default_rng(21)
    capped = _sketch(_capped(rng, 20_000))
    cap = capped.maximum
    assert not capped.exact and capped.quantile(np.array([0.75, 0.9, 1.0])).tolist() == [cap] * 3
    assert abs(float(capped.cdf(np.array([cap]), side="left")[0]) - 0.7) < 0.02  # P(X < cap), not 1
    floor = _sketch(_offset_zero_inflated(rng, 20_000))
    assert floor.quantile(np.array([0.0, 0.25, 0.45])).tolist() == [1e6] * 3
    assert abs(float(floor.cdf(np.array([1e6]))[0]) - 0.5) < 0.02  # P(X <= 1e6), not 0


def _atoms_by_brute_force(sk: ValueSketch, raw: np.ndarray) -> tuple[list[int], list[int]]:
    """Per cell of ``sk`` (in order): how many raw values equal the smallest and the largest in it."""
    cells: dict[tuple[float, int], list[float]] = {}
    keys = zip(scaled_floor(raw, sk.exponent), bucket_keys(raw, sk.relative_accuracy), strict=True)
    for key, x in zip(keys, raw, strict=True):
        cells.setdefault((float(key[0]), int(key[1])), []).append(float(x))
    ordered = [cells[k] for k in sorted(cells)]
    return [c.count(min(c)) for c in ordered], [c.count(max(c)) for c in ordered]


@pytest.mark.parametrize("buckets", [4, 64])
def test_atom_counts_merge_exactly_across_grids(buckets: int) -> None:
    rng = np.random.default_rng(17)
    parts = [
        np.concatenate([np.full(700, 3.0), 3.0 + rng.pareto(2.0, 1300)]),  # atom at the minimum
        np.concatenate([np.full(500, 1e4), rng.uniform(-50.0, 1e4, 2500)]),  # atom at the maximum, wider
        np.repeat(rng.integers(0, 200, 60).astype(float), 25),  # exact part, values shared with the others
        np.array([3.0, 3.0, 1e4, 7.5]),
    ]
    raw = np.concatenate(parts)
    whole = _sketch(raw, buckets=buckets)
    assert not whole.exact
    for order in (parts, parts[::-1], [parts[2], parts[0], parts[3], parts[1]]):
        merged = _sketch(order[0], buckets=buckets)
        for p in order[1:]:
            merged = merged.merge(_sketch(p, buckets=buckets))
        assert merged.equals(whole)
    count_lo, count_hi = _atoms_by_brute_force(whole, raw)
    assert whole.count_lo.tolist() == count_lo and whole.count_hi.tolist() == count_hi
    assert ValueSketch.from_dict(whole.to_dict()).equals(whole)


# The known limits: a heavy value strictly inside a cell (neither its smallest nor its largest value) is
# still spread over the cell, and so is a steep density in cells made wide by a far outlier (seed 9: the
# Pareto tail reaches 5683, cells near 5000 are 1 wide and hold a third of the mass).
UNRESOLVED: dict[str, tuple[Gen, int, int, int]] = {
    "spike_at_5000.3": (
        lambda r, n: np.where(r.random(n) < 0.6, 5000.3, 5000.0 + r.uniform(0.0, 1.0, n)),
        60_000,
        20_000,
        5,
    ),
    "integer_poisson_spikes": (
        lambda r, n: 10_000.0 + np.where(r.random(n) < 0.5, r.poisson(3.0, n), r.geometric(3e-4, n)),
        60_000,
        20_000,
        5,
    ),
    "spike_pareto_far_outlier": (_spike_pareto, 200_000, 50_000, 9),
}


@pytest.mark.parametrize("kind", sorted(UNRESOLVED))
def test_what_the_cells_cannot_resolve_stays_within_the_error_bound(kind: str) -> None:
    """The statistics are then off (KS badly), but never by more than the error bound the profile
    reports (W1 and CDF bounds, by the triangle inequality)."""
    gen, n_ref, n_cur, seed = UNRESOLVED[kind]
    rng = np.random.default_rng(seed)
    ref_raw, cur_raw = gen(rng, n_ref), gen(rng, n_cur)
    profile = build_profile(pd.DataFrame({"x": ref_raw}))
    col = profile.column("x")
    assert isinstance(col, NumericColumnProfile) and not col.sketch.exact
    bound = col.error_bound()
    cur = pd.DataFrame({"x": cur_raw})
    w = detect_data_drift(profile, cur, DriftConfig(stattest="wasserstein")).column("x").statistic
    scipy_w = sps.wasserstein_distance(ref_raw, cur_raw) / max(float(np.std(ref_raw)), 0.001)
    assert abs(w - scipy_w) <= bound["wasserstein_normed"] * (1 + 1e-9)
    ks = detect_data_drift(profile, cur, DriftConfig(stattest="ks")).column("x").statistic
    assert abs(ks - sps.ks_2samp(ref_raw, cur_raw).statistic) <= bound["cdf"] + 1e-12


@pytest.mark.xfail(strict=True, reason="known limit: steep density inside cells widened by a far outlier")
def test_spike_pareto_with_a_far_outlier_matches_scipy() -> None:
    """Remove the marker when the sketch resolves it (measured: 0.0438 vs SciPy's 0.0056)."""
    rng = np.random.default_rng(9)
    ref_raw, cur_raw = _spike_pareto(rng, 200_000), _spike_pareto(rng, 50_000)
    profile = build_profile(pd.DataFrame({"x": ref_raw}))
    ours = detect_data_drift(profile, pd.DataFrame({"x": cur_raw}), DriftConfig(stattest="wasserstein"))
    scipy_w = sps.wasserstein_distance(ref_raw, cur_raw) / float(np.std(ref_raw))
    assert abs(ours.column("x").statistic - scipy_w) <= max(0.01 * scipy_w, 0.002)
