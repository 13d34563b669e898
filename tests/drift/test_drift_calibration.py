"""Calibration keeps the false-alarm rate near its nominal 5 % at any window size."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from clvdrift.drift import build_profile, detect_data_drift

LEVELS = np.array(["UK", "DE", "FR", "NL", "ES", "IT", "BE", "PT"], dtype=object)
LEVEL_P = np.array([0.80, 0.06, 0.05, 0.03, 0.025, 0.02, 0.01, 0.005])


def _draw(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "normal": rng.normal(10.0, 2.0, n),
            "lognormal": rng.lognormal(3.0, 1.0, n),  # > 4096 distinct: histogram sketch
            "poisson": rng.poisson(4.0, n),  # exact sketch, > 5 values: Wasserstein
            "binary": (rng.random(n) < 0.3).astype(np.int64),  # <= 5 values: Jensen-Shannon
            "country": rng.choice(LEVELS, n, p=LEVEL_P),
        }
    )


@pytest.fixture(scope="module")
def profile():
    return build_profile(_draw(50_000, np.random.default_rng(2024)))


@pytest.mark.parametrize("window", [100, 1000])
def test_calibrated_false_alarm_rate_on_reference_resamples(profile, window: int) -> None:
    trials = 200
    rng = np.random.default_rng(window)
    alarms = raw_alarms = decisions = 0
    for trial in range(trials):
        res = detect_data_drift(profile, _draw(window, rng), calibrate=True, seed=trial)
        for col in res.columns:
            decisions += 1
            alarms += col.drifted
            raw_alarms += col.raw_drifted
            assert col.calibrated_threshold is not None and col.calibration_method
    rate, raw_rate = alarms / decisions, raw_alarms / decisions
    assert decisions == trials * 5
    assert rate <= 0.07, f"calibrated false-alarm rate {rate:.3f} at window {window}"
    assert rate >= 0.02, f"calibration is implausibly conservative ({rate:.3f})"
    if window == 100:
        # the uncalibrated distance thresholds (0.1) fire far more often on small windows
        assert raw_rate > 3 * rate


def test_calibration_still_detects_real_drift(profile) -> None:
    rng = np.random.default_rng(7)
    cur = _draw(1000, rng)
    cur["normal"] += 0.5  # a quarter of a standard deviation
    cur["country"] = rng.choice(LEVELS, 1000, p=np.roll(LEVEL_P, 1))
    res = detect_data_drift(profile, cur, calibrate=True)
    assert res.column("normal").drifted and res.column("country").drifted
    assert not res.column("poisson").drifted
    normal = res.column("normal")
    assert normal.calibrated_p_value is not None and normal.calibrated_p_value <= 0.05
    assert normal.statistic is not None and normal.calibrated_threshold is not None
    assert normal.statistic > normal.calibrated_threshold


def test_calibration_is_deterministic_and_fast() -> None:
    rng = np.random.default_rng(1)
    big = pd.concat(
        [_draw(100_000, rng)]
        + [pd.DataFrame({f"extra{i}": rng.lognormal(1.0, 0.5 + 0.1 * i, 100_000) for i in range(6)})],
        axis=1,
    )
    prof = build_profile(big)
    cur = pd.concat(
        [_draw(10_000, rng)]
        + [pd.DataFrame({f"extra{i}": rng.lognormal(1.0, 0.5 + 0.1 * i, 10_000) for i in range(6)})],
        axis=1,
    )
    assert len(prof.columns) == 11
    t0 = time.perf_counter()
    a = detect_data_drift(prof, cur, calibrate=True, calibration_trials=200, seed=3)
    elapsed = time.perf_counter() - t0
    b = detect_data_drift(prof, cur, calibrate=True, calibration_trials=200, seed=3)
    assert [c.calibrated_threshold for c in a.columns] == [c.calibrated_threshold for c in b.columns]
    assert elapsed < 5.0
