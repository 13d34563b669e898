"""Calibration holds its false-alarm level on windows drawn independently of the reference, for every
test, and still detects real drift.

The windows are fresh draws from the reference's *population* (never resamples of the reference), so
the reference's own sampling noise counts, as it does in production; each trial draws its own
reference too, because the false-alarm rate is a property of the procedure over both samples (against
one fixed reference the rate varies with how far that reference happens to lie from its population:
see bench/calibration.py). Binomial tolerance: with ``n``
independent column decisions at a true level of 5 %, the observed rate has standard deviation
``sqrt(0.05 * 0.95 / n)``; the assertions allow 3 standard deviations (n = 1,200 decisions per window
size: 5 % +- 1.9 %, i.e. about 3.1-6.9 %; n = 200 per column: at most 9.6 %).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from clvdrift.config import DriftConfig
from clvdrift.drift import build_profile, detect_data_drift
from clvdrift.drift import calibrate as cal

LEVELS = np.array(["UK", "DE", "FR", "NL", "ES", "IT", "BE", "PT", "CH", "IE"], dtype=object)
LEVEL_P = np.array([0.70, 0.08, 0.06, 0.04, 0.03, 0.03, 0.02, 0.02, 0.01, 0.01])
TESTS = {  # column -> the test it is checked with
    "ks_money": "ks",
    "w_gamma": "wasserstein",
    "psi_normal": "psi",
    "js_spend": "jensenshannon",
    "chi_country": "chisquare",
    "z_buyer": "z",
}
NUMERICAL = ["ks_money", "w_gamma", "psi_normal", "js_spend"]
CATEGORICAL = ["chi_country", "z_buyer"]
CONFIG = DriftConfig(
    per_column_stattest=TESTS, calibrate=True, calibration_trials=99, key_columns=("ks_money", "chi_country")
)
TRIALS = 200
LEVEL = 0.05


def _population(n: int, rng: np.random.Generator, shift: bool = False) -> pd.DataFrame:
    """A draw of ``n`` rows from one fixed population (``shift``: every column changes clearly)."""
    scale = 1.4 if shift else 1.0
    return pd.DataFrame(
        {
            "ks_money": np.round(rng.lognormal(4.0, 1.1, n) * scale, 0),
            "w_gamma": np.round(rng.gamma(2.0, 50.0, n) * scale, 0),
            "psi_normal": np.round(rng.normal(1000.0 + (5.0 if shift else 0.0), 10.0, n), 1),
            "js_spend": np.round(rng.exponential(200.0, n) * scale, 0),
            "chi_country": rng.choice(LEVELS, n, p=np.roll(LEVEL_P, 1) if shift else LEVEL_P),
            "z_buyer": np.where(rng.random(n) < (0.5 if shift else 0.4), "yes", "no"),
        }
    )


def _binomial_band(n: int, level: float = LEVEL, sds: float = 3.0) -> tuple[float, float]:
    sd = math.sqrt(level * (1 - level) / n)
    return level - sds * sd, level + sds * sd


def _profile(frame: pd.DataFrame):
    return build_profile(frame, numerical_columns=NUMERICAL, categorical_columns=CATEGORICAL)


@pytest.fixture(scope="module")
def reference_profile():
    return _profile(_population(1500, np.random.default_rng(2026)))


@pytest.mark.parametrize("window", [100, 1000])
def test_every_test_holds_its_level_on_independent_windows(window: int) -> None:
    rng = np.random.default_rng(window)
    alarms = dict.fromkeys(TESTS, 0)
    raw_alarms = dataset_alarms = 0
    for trial in range(TRIALS):
        reference = _profile(_population(1500, rng))
        res = detect_data_drift(
            reference, _population(window, rng), CONFIG.model_copy(update={"seed": trial})
        )
        for col in res.columns:
            assert col.decided_by == "calibration" and col.test == TESTS[col.column]
            alarms[col.column] += col.drifted
            raw_alarms += col.raw_drifted
        dataset_alarms += res.dataset_drift
    per_column = {c: a / TRIALS for c, a in alarms.items()}
    pooled = sum(alarms.values()) / (TRIALS * len(TESTS))
    lo, hi = _binomial_band(TRIALS * len(TESTS))
    assert lo <= pooled <= hi, (window, pooled, per_column)
    assert max(per_column.values()) <= _binomial_band(TRIALS)[1], per_column
    # key-column rule at alpha / 2 per key column (Bonferroni): the dataset level stays <= ~5 % too
    assert dataset_alarms / TRIALS <= _binomial_band(TRIALS)[1], dataset_alarms
    if window == 100:  # the fixed distance thresholds (0.1) fire far more often on small windows
        assert raw_alarms > 2 * sum(alarms.values()), (raw_alarms, alarms)


def test_every_test_detects_a_clear_shift(reference_profile) -> None:
    rng = np.random.default_rng(7)
    detected = dict.fromkeys(TESTS, 0)
    for trial in range(20):
        res = detect_data_drift(
            reference_profile, _population(1000, rng, shift=True), CONFIG.model_copy(update={"seed": trial})
        )
        for col in res.columns:
            detected[col.column] += col.drifted
        assert res.dataset_drift
    assert all(d >= 19 for d in detected.values()), detected


def test_a_batch_of_a_brand_new_category_drifts_when_calibrated() -> None:
    """A2: Evidently's chi-square is infinite on a reference cell of 0; the old calibration's null draws
    hit such cells, its threshold became infinite and the column could never drift."""
    rng = np.random.default_rng(3)
    levels = [f"L{i}" for i in range(30)]
    p = np.r_[np.full(10, 0.09), np.full(20, 0.005)]  # 20 rare levels: zero cells in many resamples
    profile = build_profile(pd.DataFrame({"c": rng.choice(levels, 900, p=p)}))
    res = detect_data_drift(profile, pd.DataFrame({"c": ["brand-new"] * 500}), DriftConfig(calibrate=True))
    col = res.column("c")
    assert col.test == "chisquare" and col.decided_by == "calibration"
    assert col.drifted and col.calibrated_p_value == pytest.approx(1 / 201)
    assert col.calibrated_threshold is not None and math.isfinite(col.calibrated_threshold)
    assert col.calibrated_statistic_name is not None and "homogeneity" in col.calibrated_statistic_name
    d = col.to_dict()
    assert d["statistic"] is None and "infinite" in d["note"]  # Evidently's statistic: inf, said in words


def test_an_infinite_calibrated_threshold_is_said_in_words() -> None:
    """A6: 19 splits cannot reach a level of 1 %: the threshold is infinite, written as null, and the note
    and decision rule say so (null alone would read as "not calibrated")."""
    rng = np.random.default_rng(4)
    profile = build_profile(pd.DataFrame({"x": rng.normal(0, 1, 3000)}))
    cfg = DriftConfig(calibrate=True, calibration_trials=19, calibration_alpha=0.01)
    col = detect_data_drift(profile, pd.DataFrame({"x": rng.normal(5, 1, 500)}), cfg).column("x")
    assert col.test == "wasserstein" and col.raw_drifted and not col.drifted
    assert col.calibrated_threshold == math.inf and col.to_dict()["calibrated_threshold"] is None
    assert "infinite" in (col.note or "") and col.decision_rule.startswith("calibrated p_value <= 0.01")


def test_the_result_says_what_decided() -> None:
    """A6: decided_by and decision_rule name the rule that decided; raw_decision_rule keeps the test's."""
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 600), "y": rng.normal(0, 1, 600)})
    cur = pd.DataFrame({"x": rng.normal(0.3, 1, 400), "y": rng.normal(0, 1, 400)})
    cur.loc[:, "y"] = np.nan
    profile = build_profile(ref)
    plain = detect_data_drift(profile, cur).column("x")
    assert (plain.decided_by, plain.decision_rule, plain.raw_decision_rule) == (
        "test",
        "p_value <= 0.05",
        "p_value <= 0.05",
    )
    fdr = detect_data_drift(profile, cur, DriftConfig(fdr=True)).column("x")
    assert fdr.decided_by == "fdr" and fdr.decision_rule.startswith("BH-adjusted p_value <= 0.05")
    both = detect_data_drift(profile, cur, DriftConfig(fdr=True, calibrate=True))
    x = both.column("x")
    assert x.decided_by == "fdr" and x.decision_rule.startswith("BH-adjusted calibrated p_value <= 0.05")
    assert x.raw_decision_rule == "p_value <= 0.05" and x.sketch_error_bound is None
    assert both.column("y").decided_by == "no-values"


def test_permutation_null_is_exact_for_two_cells() -> None:
    """The calibrated p-value of a 2 x 2 table converges to the exact conditional (Fisher-type) one."""
    grid = cal.Grid.from_counts(np.array([300.0, 700.0]), np.array([45.0, 55.0]), None, "two cells")
    stat = cal.grid_statistic("chisquare", grid)
    res = cal.permutation_calibrate(grid, stat, trials=20_000, alpha=0.05, rng=np.random.default_rng(0))
    from scipy import stats

    # two-sided: P(|X - E| >= |45 - E|) for X ~ Hypergeom(total 1100, 345 "first", 100 drawn)
    hyper = stats.hypergeom(1100, 345, 100)
    expected_x = 100 * 345 / 1100
    ks = np.arange(0, 101)
    exact = hyper.pmf(ks)[np.abs(ks - expected_x) >= abs(45 - expected_x) - 1e-9].sum()
    assert res.p_value == pytest.approx(exact, abs=0.006)


def test_coarsened_grid_keeps_totals_and_order() -> None:
    rng = np.random.default_rng(9)
    pos = np.sort(rng.normal(0, 1, 5000))
    grid = cal.Grid.from_counts(rng.integers(0, 3, 5000), rng.integers(0, 2, 5000), pos, "many cells")
    small = cal.coarsen(grid, 100)
    assert small.cells <= 100 and small.ref.sum() == grid.ref.sum() and small.cur.sum() == grid.cur.sum()
    assert small.positions is not None and np.all(np.diff(small.positions) > 0)
    assert small.empty_cells == grid.empty_cells  # merging creates no empty cells of the test


def test_calibrated_check_is_deterministic_and_fast() -> None:
    rng = np.random.default_rng(1)
    prof = _profile(_population(3000, rng))
    cur = _population(200_000, rng)
    cfg = DriftConfig(calibrate=True, seed=3)
    t0 = time.perf_counter()
    a = detect_data_drift(prof, cur, cfg)
    elapsed = time.perf_counter() - t0
    b = detect_data_drift(prof, cur, cfg)
    assert [c.calibrated_p_value for c in a.columns] == [c.calibrated_p_value for c in b.columns]
    assert elapsed < 1.5, elapsed


def test_sketched_column_counts_current_values_in_the_cell_they_fall_in() -> None:
    """A3: a reference sketched into one or two cells; the old calibration snapped every current value to
    the nearest cell midpoint, so such a column could never drift. Values beyond the cells now land in
    new cells."""
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"t": 1000.0 + rng.uniform(0.0, 0.5, 3000)})
    profile = build_profile(ref, max_exact_values=1024, uniform_buckets=2)
    sketch = profile.column("t").sketch
    assert not sketch.exact and sketch.counts.size <= 2
    cfg = DriftConfig(calibrate=True)
    moved = detect_data_drift(profile, pd.DataFrame({"t": 1000.4 + rng.uniform(0.0, 0.5, 500)}), cfg)
    col = moved.column("t")
    assert col.drifted and col.decided_by == "calibration"
    assert col.sketch_error_bound is not None and col.sketch_error_bound["cdf"] > 0


def test_narrow_spread_sketched_column_keeps_its_level_and_power() -> None:
    """A3/A4 on a histogram sketch: coordinates 51.5 +- 0.1 (more distinct values than an exact sketch
    keeps), fresh reference per trial, windows of 1,000: <= 5 % + 3 sd (40 trials: 15.3 %) false
    alarms, and a 0.5-sd shift found every time."""
    rng = np.random.default_rng(12)
    alarms = found = 0
    trials = 40
    for trial in range(trials):
        profile = build_profile(pd.DataFrame({"lat": rng.normal(51.5, 0.1, 6000)}))
        assert not profile.column("lat").sketch.exact
        cfg = DriftConfig(calibrate=True, seed=trial)
        alarms += detect_data_drift(
            profile, pd.DataFrame({"lat": rng.normal(51.5, 0.1, 1000)}), cfg
        ).dataset_drift
        found += detect_data_drift(
            profile, pd.DataFrame({"lat": rng.normal(51.55, 0.1, 1000)}), cfg
        ).dataset_drift
    assert alarms / trials <= _binomial_band(trials)[1], alarms
    assert found == trials
