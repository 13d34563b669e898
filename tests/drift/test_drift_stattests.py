"""Column statistics: equal to SciPy's when the reference profile is exact, hand-computed PSI/JS,
Evidently's default test choice, Benjamini-Hochberg."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_h
from scipy import stats
from scipy.spatial import distance

from clvdrift.config import DriftConfig
from clvdrift.drift import build_profile, detect_data_drift
from clvdrift.drift import stattests as st


def _one(ref: pd.DataFrame, cur: pd.DataFrame, **kw):
    res = detect_data_drift(build_profile(ref), cur, DriftConfig(**kw))
    assert res.number_of_columns == len(ref.columns)
    return res


# ---------------------------------------------------------------------------- KS
@pytest.mark.parametrize(
    ("n_ref", "n_cur", "discrete"),
    [(500, 300, False), (500, 300, True), (3000, 20000, False), (3000, 20000, True), (900, 12000, True)],
)
def test_ks_equals_scipy(n_ref: int, n_cur: int, discrete: bool) -> None:
    rng = np.random.default_rng(n_ref + n_cur + discrete)
    if discrete:
        ref, cur = rng.poisson(8.0, n_ref).astype(float), rng.poisson(8.4, n_cur).astype(float)
    else:
        ref, cur = rng.normal(0, 1, n_ref), rng.normal(0.1, 1.1, n_cur)
    res = _one(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), stattest="ks").column("x")
    expected = stats.ks_2samp(ref, cur)
    assert res.test == "ks" and res.exact_reference
    assert res.statistic == pytest.approx(expected.statistic, rel=1e-12, abs=1e-15)
    assert res.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert res.drifted == (expected.pvalue <= 0.05)


def test_ks_pvalue_matches_scipy_exact_and_asymptotic_regimes() -> None:
    rng = np.random.default_rng(7)
    for n1, n2 in [(40, 60), (5000, 7000), (20000, 15000)]:
        a, b = rng.normal(size=n1), rng.normal(0.05, 1, n2)
        expected = stats.ks_2samp(a, b)
        assert st.ks_pvalue(float(expected.statistic), n1, n2) == pytest.approx(expected.pvalue, rel=1e-9)


def test_ks_statistic_with_histogram_sketch_is_close() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.lognormal(3, 1, 60_000), rng.lognormal(3.02, 1, 5000)
    res = _one(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), stattest="ks").column("x")
    assert not res.exact_reference
    assert res.statistic == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=2e-3)


# ---------------------------------------------------------------------------- chi-square / z
def test_chisquare_equals_scipy() -> None:
    rng = np.random.default_rng(11)
    ref = rng.choice(list("abcd"), 700, p=[0.4, 0.3, 0.2, 0.1])
    cur = rng.choice(list("abcd"), 400, p=[0.3, 0.3, 0.25, 0.15])
    res = _one(pd.DataFrame({"c": ref}), pd.DataFrame({"c": cur})).column("c")
    keys = sorted(set(ref) | set(cur))
    ref_counts = np.array([np.sum(ref == k) for k in keys], dtype=float)
    cur_counts = np.array([np.sum(cur == k) for k in keys], dtype=float)
    expected = stats.chisquare(cur_counts, ref_counts * len(cur) / len(ref))
    assert res.test == "chisquare" and res.test_chosen_by == "default"
    assert res.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_z_test_equals_two_proportion_formula() -> None:
    rng = np.random.default_rng(12)
    ref = rng.choice(["no", "yes"], 800, p=[0.7, 0.3])
    cur = rng.choice(["no", "yes"], 300, p=[0.62, 0.38])
    res = _one(pd.DataFrame({"c": ref}), pd.DataFrame({"c": cur})).column("c")
    # proportion of values other than the first sorted value ("no")
    p1, p2 = np.mean(ref == "yes"), np.mean(cur == "yes")
    pooled = (p1 * len(ref) + p2 * len(cur)) / (len(ref) + len(cur))
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / len(ref) + 1 / len(cur)))
    assert res.test == "z"
    assert res.statistic == pytest.approx(z, rel=1e-12)
    assert res.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


# ---------------------------------------------------------------------------- distances
def test_wasserstein_normed_equals_scipy() -> None:
    rng = np.random.default_rng(13)
    ref = np.round(rng.gamma(2.0, 10.0, 3000), 1)  # ties, < 4096 distinct: exact sketch
    cur = np.round(rng.gamma(2.2, 10.0, 2000), 1)
    res = _one(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur})).column("x")
    expected = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    assert res.test == "wasserstein" and res.exact_reference
    assert res.statistic == pytest.approx(expected, rel=1e-9)
    assert res.effect_size == pytest.approx(expected, rel=1e-9)


def test_wasserstein_with_histogram_sketch_is_close() -> None:
    rng = np.random.default_rng(14)
    ref, cur = rng.lognormal(2, 1, 100_000), rng.lognormal(2.1, 1, 30_000)
    res = _one(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur})).column("x")
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert not res.exact_reference
    assert res.statistic == pytest.approx(expected, rel=5e-3)


def test_jensenshannon_equals_scipy() -> None:
    rng = np.random.default_rng(15)
    ref = rng.choice(list("abcde"), 5000, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    cur = rng.choice(list("abcdef"), 3000, p=[0.4, 0.25, 0.15, 0.1, 0.05, 0.05])
    res = _one(pd.DataFrame({"c": ref}), pd.DataFrame({"c": cur})).column("c")
    keys = sorted(set(ref) | set(cur))
    p = np.array([np.mean(ref == k) for k in keys])
    q = np.array([np.mean(cur == k) for k in keys])
    assert res.test == "jensenshannon"
    assert res.statistic == pytest.approx(distance.jensenshannon(p, q), rel=1e-12)
    assert res.drifted == (distance.jensenshannon(p, q) >= 0.1)


def test_psi_hand_example() -> None:
    # reference a/b/c = 50/30/20 %, current 40/40/20 %:
    # PSI = (0.5-0.4) ln(0.5/0.4) + (0.3-0.4) ln(0.3/0.4) + 0
    #     = 0.1 * 0.2231436 + (-0.1) * (-0.2876821) = 0.0510826
    ref = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    cur = pd.DataFrame({"c": ["a"] * 40 + ["b"] * 40 + ["c"] * 20})
    res = _one(ref, cur, stattest="psi").column("c")
    assert res.statistic == pytest.approx(0.0510826, abs=1e-7)
    assert res.p_value is None and not res.drifted  # 0.051 < 0.1


def test_psi_hand_example_with_zero_filling() -> None:
    # reference a/b/c = 50/50/0 %, current 50/25/25 %.  Evidently fills the reference zero with
    # 1e-4 (the smallest non-zero share, 0.5, is > 1e-4):
    # PSI = 0 + (0.5-0.25) ln(0.5/0.25) + (1e-4-0.25) ln(1e-4/0.25)
    #     = 0.25 * 0.6931472 + (-0.2499) * (-7.8240460) = 0.1732868 + 1.9552291 = 2.1285159
    ref = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 50})
    cur = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 25 + ["c"] * 25})
    res = _one(ref, cur, stattest="psi").column("c")
    assert res.statistic == pytest.approx(2.1285159, abs=1e-6)
    assert res.drifted


def test_jensenshannon_hand_example() -> None:
    # p = (0.5, 0.5), q = (1, 0), m = (0.75, 0.25)
    # KL(p||m) = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25) = -0.2027326 + 0.3465736 = 0.1438410
    # KL(q||m) = ln(1/0.75) = 0.2876821
    # JS = sqrt((0.1438410 + 0.2876821) / 2) = sqrt(0.2157616) = 0.4645015
    ref = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 50})
    cur = pd.DataFrame({"c": ["a"] * 30})
    res = _one(ref, cur, stattest="jensenshannon").column("c")
    assert res.statistic == pytest.approx(0.4645015, abs=1e-7)
    assert res.effect_size == pytest.approx(0.4645015, abs=1e-7)


def test_numeric_psi_uses_sturges_bins_like_evidently() -> None:
    rng = np.random.default_rng(16)
    ref, cur = rng.normal(0, 1, 2000), rng.normal(0.3, 1, 1500)
    res = _one(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), stattest="psi").column("x")
    # Evidently get_binned_data: Sturges edges over reference and current together
    bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    r = np.histogram(ref, bins)[0] / len(ref)
    c = np.histogram(cur, bins)[0] / len(cur)
    r = np.where(r == 0, min(r[r > 0]) / 1e6 if min(r[r > 0]) <= 1e-4 else 1e-4, r)
    c = np.where(c == 0, min(c[c > 0]) / 1e6 if min(c[c > 0]) <= 1e-4 else 1e-4, c)
    assert res.statistic == pytest.approx(float(np.sum((r - c) * np.log(r / c))), rel=1e-9)


# ---------------------------------------------------------------------------- default choice
@pytest.mark.parametrize(
    ("kind", "n_ref", "n_unique", "expected"),
    [
        ("numerical", 1000, 2, "z"),
        ("numerical", 1000, 3, "chisquare"),
        ("numerical", 1000, 5, "chisquare"),
        ("numerical", 1000, 6, "ks"),
        ("categorical", 1000, 2, "z"),
        ("categorical", 1000, 3, "chisquare"),
        ("categorical", 1000, 40, "chisquare"),
        ("numerical", 1001, 2, "jensenshannon"),
        ("numerical", 1001, 5, "jensenshannon"),
        ("numerical", 1001, 6, "wasserstein"),
        ("categorical", 1001, 2, "jensenshannon"),
        ("categorical", 1001, 40, "jensenshannon"),
    ],
)
def test_default_test_rules(kind: str, n_ref: int, n_unique: int, expected: str) -> None:
    assert st.default_test(kind, n_ref, n_unique)[0] == expected


@pytest.mark.parametrize(
    ("n_ref", "n_values"), [(400, 2), (400, 4), (400, 9), (1500, 2), (1500, 5), (1500, 9)]
)
def test_default_choice_in_detect_matches_evidently_rules(n_ref: int, n_values: int) -> None:
    rng = np.random.default_rng(n_ref * 10 + n_values)
    ref = pd.DataFrame(
        {
            "x": rng.integers(0, n_values, n_ref).astype(float),
            "c": rng.integers(0, n_values, n_ref).astype(str),
        }
    )
    cur = pd.DataFrame(
        {"x": rng.integers(0, n_values, 300).astype(float), "c": rng.integers(0, n_values, 300).astype(str)}
    )
    res = detect_data_drift(build_profile(ref), cur)
    small = n_ref <= 1000
    num_expected = (
        ("ks" if n_values > 5 else "chisquare" if n_values > 2 else "z")
        if small
        else ("wasserstein" if n_values > 5 else "jensenshannon")
    )
    cat_expected = ("chisquare" if n_values > 2 else "z") if small else "jensenshannon"
    assert res.column("x").test == num_expected
    assert res.column("c").test == cat_expected
    assert res.column("x").threshold == (0.05 if small else 0.1)


def test_distinct_values_are_counted_over_reference_and_current() -> None:
    ref = pd.DataFrame({"x": np.tile([1.0, 2.0, 3.0, 4.0, 5.0], 100)})  # 5 values in the reference
    cur = pd.DataFrame({"x": np.tile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 20)})  # a sixth in current
    res = detect_data_drift(build_profile(ref), cur).column("x")
    assert res.n_unique == 6 and res.test == "ks"
    res5 = detect_data_drift(build_profile(ref), ref.iloc[:200]).column("x")
    assert res5.n_unique == 5 and res5.test == "chisquare"


def test_default_choice_equals_evidentlys_function() -> None:
    pytest.importorskip("evidently")
    from evidently.legacy.calculations.stattests.registry import _get_default_stattest
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(5)
    for n_ref in (700, 1000, 1001, 2500):
        for n_values in (1, 2, 3, 5, 6, 30):
            for kind, ctype in (("numerical", ColumnType.Numerical), ("categorical", ColumnType.Categorical)):
                ref = pd.Series(rng.integers(0, n_values, n_ref))
                cur = pd.Series(rng.integers(0, n_values, 200))
                n_unique = pd.concat([ref, cur]).nunique()
                ours = st.default_test(kind, n_ref, n_unique)[0]
                assert ours == _get_default_stattest(ref, cur, ctype).name, (kind, n_ref, n_values)


# ---------------------------------------------------------------------------- decision operators
def test_decision_operators_follow_evidently() -> None:
    assert st.is_drift("ks", 0.05, 0.05)  # ks: p <= threshold
    assert not st.is_drift("chisquare", 0.05, 0.05)  # chisquare: p < threshold
    assert not st.is_drift("z", 0.05, 0.05)
    assert st.is_drift("wasserstein", 0.1, 0.1)  # distances: d >= threshold
    assert st.is_drift("jensenshannon", 0.1, 0.1)
    assert not st.is_drift("psi", 0.0999, 0.1)


# ---------------------------------------------------------------------------- Benjamini-Hochberg
def test_bh_hand_example() -> None:
    # sorted p: 0.01, 0.03, 0.04, 0.20 (m = 4); p_(i) * m / i = 0.04, 0.06, 0.0533, 0.20
    # running minimum from the top: 0.20, 0.0533, 0.0533, 0.04
    adjusted = st.bh_adjust(np.array([0.01, 0.04, 0.03, 0.20]))
    np.testing.assert_allclose(adjusted, [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.20], rtol=1e-12)


def test_fdr_adjusts_the_runs_p_values_like_scipy() -> None:
    rng = np.random.default_rng(21)
    n = 600
    ref = pd.DataFrame({f"x{i}": rng.normal(0, 1, n) for i in range(6)})
    cur = pd.DataFrame({f"x{i}": rng.normal(0.04 * i, 1, 400) for i in range(6)})
    ref["c"] = rng.choice(list("ab"), n)
    cur["c"] = rng.choice(list("ab"), 400, p=[0.42, 0.58])
    plain = detect_data_drift(build_profile(ref), cur)
    adjusted = detect_data_drift(build_profile(ref), cur, DriftConfig(fdr=True))
    raw = np.array([c.p_value for c in plain.columns])
    expected = stats.false_discovery_control(raw, method="bh")
    got = np.array([c.adjusted_p_value for c in adjusted.columns])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    for col, adj in zip(adjusted.columns, expected, strict=True):
        assert col.drifted == (adj <= 0.05 if col.test == "ks" else adj < 0.05)
        assert col.raw_drifted == plain.column(col.column).drifted


# ---------------------------------------------------------------------------- the fast paths
@settings(max_examples=400, deadline=None)
@given(
    u=st_h.lists(st_h.integers(-40, 40), min_size=1, max_size=40, unique=True),
    v=st_h.lists(st_h.integers(-40, 40), min_size=1, max_size=40, unique=True),
    scale=st_h.sampled_from([1.0, 0.5, 1e-3, 1e6]),
    seed=st_h.integers(0, 2**16),
)
def test_weighted_wasserstein_equals_scipy(u: list[int], v: list[int], scale: float, seed: int) -> None:
    """Either side larger, ties between the sides, one side entirely below, above or inside the other,
    several points of one side inside one interval of the other."""
    rng = np.random.default_rng(seed)
    uu, vv = np.sort(np.array(u) * scale), np.sort(np.array(v) * scale)
    uw, vw = rng.integers(1, 9, uu.size).astype(float), rng.random(vv.size) + 0.01
    expected = stats.wasserstein_distance(uu, vv, uw, vw)
    assert st.wasserstein_weighted(uu, uw, vv, vw) == pytest.approx(expected, rel=1e-9, abs=1e-12 * scale)
    assert st.wasserstein_weighted(vv, vw, uu, uw) == pytest.approx(expected, rel=1e-9, abs=1e-12 * scale)


@pytest.mark.parametrize(
    ("u", "v"),
    [
        ([-1e308, 1e308], [0.0]),  # a gap of u beyond the largest float, a point of v inside it
        ([-1e308, 1e308], [-1e308, 0.0]),  # and F_u = F_v at the gap's start (0 × inf)
        ([-1.7e308, -1e308, 1e308], [-1.5e308, 0.5e308]),
    ],
)
def test_weighted_wasserstein_near_the_largest_float_equals_scipy(u: list[float], v: list[float]) -> None:
    uu, vv = np.array(u), np.array(v)
    expected = stats.wasserstein_distance(uu, vv)
    assert np.isfinite(expected)
    assert st.wasserstein_weighted(uu, np.ones(uu.size), vv, np.ones(vv.size)) == pytest.approx(
        expected, rel=1e-12
    )


@pytest.mark.parametrize(
    "values",
    [
        np.array([5, 3, 3, -2, 5, 5], dtype=np.int64),
        np.array([7], dtype=np.int32),
        np.array([0, 2**53, 2**53 - 1], dtype=np.int64),  # wide: sorted, not counted
        np.array([2**53 - 2, 2**53, 2**53 - 2], dtype=np.int64),  # narrow at the edge of exact floats
        np.array([2**53 + 1, 2**53 + 2], dtype=np.int64),  # beyond it: the float path, as before
        np.array([2**64 - 1, 3], dtype=np.uint64),
        np.array([1.5, np.nan, -0.0, 0.0, np.inf, 1.5]),
        np.random.default_rng(3).integers(-1000, 1000, 5000).astype(np.int16),
        np.array([-128, 127, 0, -128], dtype=np.int8),  # the span does not fit the dtype
        np.array([0, 255, 255], dtype=np.uint8),
    ],
)
def test_distinct_counts_equals_sorting_then_runs(values: np.ndarray) -> None:
    x, n_missing = st.sorted_finite(values.astype(np.float64))
    uniques, counts = st.runs(x)
    got_uniques, got_counts, got_missing = st.distinct_counts(values)
    np.testing.assert_array_equal(got_uniques, uniques)
    np.testing.assert_array_equal(got_counts, counts)
    assert got_missing == n_missing
    assert got_uniques.dtype == np.float64 and got_counts.dtype == np.float64


def test_integers_beyond_2_53_are_named_in_the_note_with_what_float64_merged() -> None:
    """Known limit (issue 19): such integers are compared as float64. The note says so and counts what
    merged; ordinary integers get no note."""
    wide = np.array([2**60 + i for i in range(8)] * 300, dtype=np.int64)
    res = _one(pd.DataFrame({"x": wide}), pd.DataFrame({"x": wide[:1600]})).column("x")
    assert "beyond ±2**53" in (res.note or "")
    assert "8 distinct integers are 1 distinct float64 values" in (res.note or "")
    near = np.array([2**53 - 3, 2**53 - 1] * 600, dtype=np.int64)  # within: every integer exact
    assert _one(pd.DataFrame({"x": near}), pd.DataFrame({"x": near})).column("x").note is None
    # only the reference reaches there: the note, without a count for the current window
    res = _one(pd.DataFrame({"x": wide}), pd.DataFrame({"x": np.arange(1600, dtype=np.int64)})).column("x")
    assert "beyond ±2**53" in (res.note or "") and "current window" not in (res.note or "")


def test_tests_on_two_threads_at_once_leave_the_processs_warning_filters_as_they_were(monkeypatch) -> None:
    """``warnings.catch_warnings`` saves and restores the process's one filter list: two threads inside at
    once (a replay's policies; columns tested in parallel) would leave one's filter behind for good.
    scipy's test is slowed here so that the two calls overlap."""
    import threading
    import time
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    real = st.sps.ks_2samp

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(st.sps, "ks_2samp", slow)
    rng = np.random.default_rng(3)
    ref = build_profile(pd.DataFrame({"x": rng.normal(size=500)})).column("x")
    values, counts = np.unique(rng.normal(size=300), return_counts=True)
    start = threading.Barrier(2)

    def run(_: int) -> object:
        start.wait()
        return st.ks_test(ref, values, counts.astype(np.float64))

    with warnings.catch_warnings():
        warnings.resetwarnings()  # a known list, without the filter the test adds (pytest's may hold one)
        warnings.simplefilter("default")
        before = list(warnings.filters)
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(run, range(2)))
        after = list(warnings.filters)
    assert outcomes[0] == outcomes[1]
    assert after == before
