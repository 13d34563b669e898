"""Dataset drift: share and key-column rules, missing values, correlations, bad input, JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clvdrift.config import DriftConfig
from clvdrift.drift import DataDriftResult, DriftInputError, build_profile, detect_data_drift
from clvdrift.errors import ClvdriftError, ConfigError

FEATURES = [f"f{i}" for i in range(9)]


def _features(n: int, seed: int, shifted: tuple[str, ...] = ()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.gamma(2.0 + i, 3.0, n) for i, c in enumerate(FEATURES)})
    for c in shifted:
        frame[c] = frame[c] * 1.8 + frame[c].std()
    return frame


@pytest.fixture(scope="module")
def reference_profile():
    return build_profile(_features(20_000, 1))


def test_share_below_threshold_without_key_columns_is_no_drift(reference_profile) -> None:
    cur = _features(5000, 2, shifted=("f0", "f1", "f2", "f3"))  # 4 of 9 drift: share 0.44 < 0.5
    res = detect_data_drift(reference_profile, cur)
    assert res.number_of_drifted_columns == 4
    assert res.drifted_columns == ["f0", "f1", "f2", "f3"]
    assert res.drift_share == pytest.approx(4 / 9)
    assert not res.dataset_drift and res.reasons == []


def test_key_column_rule_catches_a_minority_drift(reference_profile) -> None:
    cur = _features(5000, 2, shifted=("f0", "f1", "f2", "f3"))
    res = detect_data_drift(reference_profile, cur, DriftConfig(key_columns=("f3", "f8")))
    assert res.dataset_drift
    assert res.drifted_key_columns == ["f3"]
    assert len(res.reasons) == 1 and res.reasons[0].startswith("key-column rule")


def test_neither_rule_means_no_drift(reference_profile) -> None:
    cur = _features(5000, 3, shifted=("f5",))
    res = detect_data_drift(reference_profile, cur, DriftConfig(key_columns=("f0", "f1")))
    assert res.drifted_columns == ["f5"]
    assert not res.dataset_drift and res.reasons == [] and res.drifted_key_columns == []


def test_share_rule_fires_at_the_threshold(reference_profile) -> None:
    cur = _features(5000, 4, shifted=tuple(FEATURES[:5]))  # 5 of 9
    res = detect_data_drift(reference_profile, cur)
    assert res.dataset_drift and res.reasons[0].startswith("share rule")
    # >= is inclusive
    assert detect_data_drift(reference_profile, cur, DriftConfig(drift_share=5 / 9)).dataset_drift
    assert not detect_data_drift(reference_profile, cur, DriftConfig(drift_share=0.6)).dataset_drift


def test_columns_subset_and_per_column_configuration(reference_profile) -> None:
    cur = _features(5000, 5, shifted=("f0",))
    res = detect_data_drift(
        reference_profile,
        cur,
        DriftConfig(per_column_stattest={"f1": "ks"}, per_column_threshold={"f0": 10.0}),
        columns=["f0", "f1"],
    )
    assert [c.column for c in res.columns] == ["f0", "f1"]
    f0, f1 = res.column("f0"), res.column("f1")
    assert (f0.test, f0.test_chosen_by, f0.threshold, f0.drifted) == ("wasserstein", "default", 10.0, False)
    assert (f1.test, f1.test_chosen_by, f1.threshold) == ("ks", "configured", 0.05)
    assert f1.p_value is not None and f0.p_value is None
    everything_psi = detect_data_drift(reference_profile, cur, DriftConfig(stattest="psi"))
    assert {c.test for c in everything_psi.columns} == {"psi"}


def test_missing_values_and_correlation_change(reference_profile) -> None:
    cur = _features(4000, 6)
    cur.loc[:999, "f2"] = np.nan  # 25 % missing where the reference had none
    rng = np.random.default_rng(0)
    cur["f4"] = cur["f3"] * 2 + rng.normal(0, 0.5, len(cur))  # now strongly correlated with f3
    res = detect_data_drift(reference_profile, cur)
    mv = res.missing_values
    assert mv.flagged and mv.flagged_columns == ["f2"]
    f2 = next(c for c in mv.columns if c.column == "f2")
    assert f2.current_share == pytest.approx(0.25) and f2.reference_share == 0.0
    assert mv.current_share == pytest.approx(1000 / (4000 * 9))
    corr = res.correlations
    assert corr.flagged and set(corr.pair or []) == {"f3", "f4"}
    assert corr.max_abs_change is not None and corr.max_abs_change > 0.9
    quiet = detect_data_drift(reference_profile, _features(4000, 7))
    assert not quiet.missing_values.flagged and not quiet.correlations.flagged


def test_result_to_dict_is_plain_json(reference_profile) -> None:
    cur = _features(3000, 8, shifted=("f1",))
    cur["f0"] = np.nan
    cfg = DriftConfig(fdr=True, calibrate=True, calibration_trials=50)
    res = detect_data_drift(reference_profile, cur, cfg)
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert isinstance(res, DataDriftResult)
    assert set(d) >= {
        "dataset_drift",
        "drift_share",
        "drift_share_threshold",
        "number_of_columns",
        "number_of_drifted_columns",
        "columns",
        "missing_values",
        "correlations",
        "reasons",
        "dataset_rule",
        "settings",
    }
    col = d["columns"][1]
    for key in (
        "column",
        "kind",
        "test",
        "test_chosen_by",
        "statistic",
        "p_value",
        "threshold",
        "effect_size",
        "drifted",
        "reference_size",
        "current_size",
        "calibrated_threshold",
        "calibrated_p_value",
        "calibration_method",
        "adjusted_p_value",
        "decided_by",
        "decision_rule",
        "raw_decision_rule",
        "calibrated_statistic",
        "calibrated_statistic_name",
        "sketch_error_bound",
    ):
        assert key in col
    assert col["calibrated_threshold"] is not None and col["calibration_method"]
    assert d["settings"]["calibrate"] is True and d["settings"]["calibration_trials"] == 50


# ---------------------------------------------------------------------------- bad input
def test_missing_column_in_current_names_it(reference_profile) -> None:
    cur = _features(100, 9).drop(columns=["f3", "f7"])
    with pytest.raises(DriftInputError, match=r"missing column\(s\) \['f3', 'f7'\].*f3 \(numerical\)"):
        detect_data_drift(reference_profile, cur)


def test_errors_are_clvdrift_errors(reference_profile) -> None:
    with pytest.raises(ClvdriftError):
        detect_data_drift(reference_profile, _features(100, 9).drop(columns=["f3"]))


def test_empty_current_frame(reference_profile) -> None:
    with pytest.raises(DriftInputError, match="current frame is empty"):
        detect_data_drift(reference_profile, _features(10, 9).iloc[:0])


def test_all_nan_column_is_a_drifted_no_values_result(reference_profile) -> None:
    cur = _features(500, 10)
    cur["f2"] = np.nan
    res = detect_data_drift(reference_profile, cur)
    f2 = res.column("f2")
    assert f2.test == "no-values" and f2.drifted and f2.current_size == 0
    assert f2.statistic is None and f2.p_value is None and "no values" in (f2.note or "")
    assert res.number_of_drifted_columns == 1
    assert res.missing_values.flagged_columns == ["f2"]


def test_unseen_category_counts_with_zero_reference_count() -> None:
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 5000)})
    cur = pd.DataFrame({"c": np.append(rng.choice(["a", "b", "c"], 2000), ["new"] * 3)})
    profile = build_profile(ref)
    js = detect_data_drift(profile, cur).column("c")
    assert js.test == "jensenshannon" and js.n_unique == 4 and "unseen" in (js.note or "")
    assert js.statistic is not None and 0 < js.statistic < 0.1 and not js.drifted
    psi = detect_data_drift(profile, cur, DriftConfig(stattest="psi")).column("c")
    assert psi.statistic is not None and np.isfinite(psi.statistic)  # Evidently's zero filling
    small = build_profile(ref.iloc[:800])
    chi = detect_data_drift(small, cur).column("c")
    assert chi.test == "chisquare" and chi.p_value == 0.0 and chi.drifted
    assert chi.to_dict()["statistic"] is None  # infinite statistic -> None in JSON


def test_non_numeric_values_in_numeric_column(reference_profile) -> None:
    cur = _features(200, 12)
    cur["f1"] = cur["f1"].astype(object)
    cur.loc[[3, 17], "f1"] = ["n/a", "12,5"]
    with pytest.raises(DriftInputError, match=r"'f1'.*non-numeric.*'n/a'"):
        detect_data_drift(reference_profile, cur)


def test_invalid_settings(reference_profile) -> None:
    cur = _features(200, 13)
    with pytest.raises(ConfigError, match="key_columns"):
        detect_data_drift(reference_profile, cur, DriftConfig(key_columns=("nope",)))
    with pytest.raises(ConfigError, match="per_column_threshold"):
        detect_data_drift(reference_profile, cur, DriftConfig(per_column_threshold={"nope": 0.2}))
    with pytest.raises(DriftInputError, match="not in the reference profile"):
        detect_data_drift(reference_profile, cur, columns=["nope"])
    cat = build_profile(pd.DataFrame({"c": ["a", "b"] * 50}))
    with pytest.raises(ConfigError, match="numerical columns only"):
        detect_data_drift(cat, pd.DataFrame({"c": ["a"] * 10}), DriftConfig(stattest="ks"))
    with pytest.raises(ConfigError, match="DriftConfig"):
        detect_data_drift(reference_profile, cur, {"calibrate": True})  # type: ignore[arg-type]


def test_default_key_columns_apply_to_the_columns_present(reference_profile) -> None:
    """The default key columns (Monetary, prediction) are not in this profile: no key-column rule, no
    error; explicitly set key columns must be checked columns (above)."""
    res = detect_data_drift(reference_profile, _features(2000, 14, shifted=("f1",)))
    assert res.key_columns == [] and "no key columns" in res.dataset_rule and not res.dataset_drift


def test_bounded_categorical_profile_keeps_the_calibrated_level() -> None:
    """A bounded (frequent-items) profile underestimates its kept counts; compared cell by cell with exact
    current counts that error alone fired 25 % of calibrated checks. It is compared on exact hash-bucket
    counts now: <= 5 % + 3 sd (40 trials: 15.3 %), and a new category still drifts."""
    rng = np.random.default_rng(31)
    levels = np.array([f"sku{i}" for i in range(3000)], dtype=object)
    p = 1 / np.arange(1, 3001) ** 1.1
    p /= p.sum()
    alarms = 0
    for trial in range(40):
        profile = build_profile(pd.DataFrame({"c": rng.choice(levels, 20_000, p=p)}))
        col = profile.column("c")
        assert not col.exact and col.other > 0
        res = detect_data_drift(
            profile,
            pd.DataFrame({"c": rng.choice(levels, 2000, p=p)}),
            DriftConfig(calibrate=True, seed=trial),
        )
        alarms += res.column("c").drifted
    assert alarms / 40 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 40), alarms
    new = detect_data_drift(
        profile, pd.DataFrame({"c": ["sku-new"] * 300}), DriftConfig(calibrate=True)
    ).column("c")
    assert new.drifted and new.n_unique is None and "hash buckets" in (new.note or "")


def test_model_drift_takes_the_config_and_says_why_a_value_is_null() -> None:
    from clvdrift.drift import detect_model_drift

    actual = np.arange(12) * 5.0
    strict = DriftConfig(r2_drop_threshold=0.0, mae_increase_threshold=0.0)
    res = detect_model_drift({"r2": 0.99, "mae": 1.0}, actual, actual + 2.0, strict)
    assert res.detected and res.r2_drop_threshold == 0.0 and len(res.reasons) == 2
    lenient = detect_model_drift(
        {"r2": 0.9, "mae": 1.0}, actual, actual + 2.0, DriftConfig(mae_increase_threshold=5)
    )
    assert not lenient.detected
    perfect_ref = detect_model_drift({"r2": 1.0, "mae": 0.0}, actual, actual + 2.0, DriftConfig())
    d = json.loads(json.dumps(perfect_ref.to_dict(), allow_nan=False))
    assert d["mae_increase"] is None and "mae_increase undefined" in d["note"] and perfect_ref.detected


def test_model_drift_on_fewer_customers_than_min_scored_customers_is_not_assessed() -> None:
    """Two customers make a Spearman of ±1 and an MAE of one pair: no alarm on so few."""
    from clvdrift.drift import detect_model_drift

    actual = np.array([0.0, 900.0, 15.0, 0.0, 7.5, 3.0, 0.0, 60.0, 1.0])  # 9 customers
    awful = actual[::-1] * 40 + 500  # an alarm on any number of customers
    res = detect_model_drift({"r2": 0.5, "mae": 10.0}, actual, awful, DriftConfig())
    assert not res.detected and not res.labels_available and res.current is None
    assert "only 9 customer(s) with matured labels" in (res.note or "") and "min_scored_customers" in res.note
    assert detect_model_drift(
        {"r2": 0.5, "mae": 10.0}, actual, awful, DriftConfig(min_scored_customers=9)
    ).detected


def test_correlation_statistics_are_the_same_whether_or_not_finiteness_is_declared() -> None:
    """Arrays that are all finite take the no-copy path either way; one NaN row is left out exactly as
    dropping that row beforehand does."""
    from clvdrift.drift.columns import CorrelationStats

    rng = np.random.default_rng(3)
    n = 300_000  # more than one chunk
    arrays = [rng.lognormal(3, 1, n), rng.integers(0, 400, n), rng.normal(1e6, 5, n)]
    columns = ["a", "b", "c"]
    declared = CorrelationStats.from_arrays(columns, arrays, all_finite=True)
    found = CorrelationStats.from_arrays(columns, arrays)
    assert found.n == declared.n == n
    assert np.array_equal(found.mean, declared.mean) and np.array_equal(found.comoment, declared.comoment)
    holed = [arrays[0].copy(), arrays[1].astype(np.float64), arrays[2]]
    holed[0][150_000] = np.nan
    kept = np.arange(n) != 150_000
    left_out = CorrelationStats.from_arrays(columns, holed)
    dropped = CorrelationStats.from_arrays(columns, [a[kept] for a in holed], all_finite=True)
    assert left_out.n == n - 1
    np.testing.assert_allclose(left_out.comoment, dropped.comoment, rtol=1e-12)
    np.testing.assert_allclose(left_out.mean, dropped.mean, rtol=1e-12)
