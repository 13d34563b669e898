"""Dataset drift: every column of a current window tested against a reference profile.

``detect_data_drift`` reproduces Evidently 0.7's per-column default tests and decisions (see
:mod:`clvdrift.drift.stattests`), adds a key-column rule to the share rule, and can make the verdicts
trustworthy at any window size with Benjamini-Hochberg FDR control and Monte-Carlo calibration of
each column's threshold to the current window size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from clvdrift.drift import stattests as st
from clvdrift.drift.profile import (
    CATEGORICAL,
    NUMERICAL,
    CategoricalColumnProfile,
    CorrelationStats,
    NumericColumnProfile,
    ReferenceProfile,
    category_counts,
    to_float_array,
)
from clvdrift.drift.result import (
    ColumnDriftResult,
    ColumnMissingValues,
    CorrelationChange,
    DataDriftResult,
    DriftInputError,
    MissingValuesResult,
)

__all__ = [
    "DEFAULT_CORRELATION_THRESHOLD",
    "DEFAULT_DRIFT_SHARE",
    "DEFAULT_MISSING_SHARE_THRESHOLD",
    "detect_data_drift",
]

DEFAULT_DRIFT_SHARE = 0.5
DEFAULT_MISSING_SHARE_THRESHOLD = 0.05
DEFAULT_CORRELATION_THRESHOLD = 0.2
DEFAULT_CALIBRATION_ALPHA = 0.05
NO_VALUES = "no-values"

FloatArray = np.ndarray


@dataclass
class _Column:
    """Working state of one column between the test, FDR and calibration stages."""

    result: ColumnDriftResult
    outcome: st.TestOutcome | None = None
    null_model: st.NullModel | None = None
    n_ref: int = 0
    n_cur: int = 0
    calibration_observed: float | None = None  # statistic on the null model's grid


# ====================================================================== validation
def _validate(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    columns: Sequence[str] | None,
    drift_share: float,
    key_columns: Sequence[str],
    stattest: str | None,
    per_column_stattest: Mapping[str, str] | None,
    per_column_threshold: Mapping[str, float] | None,
    calibration_trials: int,
    calibration_alpha: float,
) -> list[str]:
    if not isinstance(profile, ReferenceProfile):
        raise DriftInputError(f"profile must be a ReferenceProfile, got {type(profile).__name__}")
    if not isinstance(current, pd.DataFrame):
        raise DriftInputError(f"current data must be a pandas DataFrame, got {type(current).__name__}")
    expected = ", ".join(f"{c} ({profile.kind(c)})" for c in profile.columns)
    if len(current) == 0:
        raise DriftInputError(
            f"the current frame is empty (0 rows); the reference profile expects columns: {expected}"
        )
    cols = list(profile.columns) if columns is None else [str(c) for c in columns]
    if not cols:
        raise DriftInputError("no columns to check: columns= is empty")
    unknown = [c for c in cols if c not in profile.columns]
    if unknown:
        raise DriftInputError(f"column(s) {unknown} are not in the reference profile; it has: {expected}")
    missing = [c for c in cols if c not in current.columns]
    if missing:
        raise DriftInputError(
            f"the current frame is missing column(s) {missing} that the reference profile expects; "
            f"expected: {expected}; current has: {list(current.columns)}"
        )
    if not 0.0 < drift_share <= 1.0:
        raise DriftInputError(f"drift_share must be in (0, 1], got {drift_share}")
    bad_keys = [c for c in key_columns if c not in cols]
    if bad_keys:
        raise DriftInputError(f"key column(s) {bad_keys} are not among the checked columns {cols}")
    names = set(st.TEST_NAMES)
    if stattest is not None and stattest not in names:
        raise DriftInputError(f"unknown stattest {stattest!r}; choose one of {sorted(names)}")
    for c, t in (per_column_stattest or {}).items():
        if c not in cols:
            raise DriftInputError(f"per_column_stattest names column {c!r}, which is not checked ({cols})")
        if t not in names:
            raise DriftInputError(f"unknown stattest {t!r} for column {c!r}; choose one of {sorted(names)}")
    for c, thr in (per_column_threshold or {}).items():
        if c not in cols:
            raise DriftInputError(f"per_column_threshold names column {c!r}, which is not checked ({cols})")
        if not (isinstance(thr, (int, float)) and math.isfinite(thr) and thr >= 0):
            raise DriftInputError(f"threshold for column {c!r} must be a finite number >= 0, got {thr!r}")
    if calibration_trials < 19:
        raise DriftInputError(f"calibration_trials must be >= 19, got {calibration_trials}")
    if not 0.0 < calibration_alpha < 1.0:
        raise DriftInputError(f"calibration_alpha must be in (0, 1), got {calibration_alpha}")
    return cols


def _choose_test(
    column: str,
    kind: str,
    n_ref: int,
    n_unique: int,
    stattest: str | None,
    per_column_stattest: Mapping[str, str] | None,
) -> tuple[str, str, str]:
    if per_column_stattest and column in per_column_stattest:
        test, chosen_by, reason = (
            per_column_stattest[column],
            "configured",
            f"per_column_stattest[{column!r}]",
        )
    elif stattest is not None:
        test, chosen_by, reason = stattest, "configured", "stattest (all columns)"
    else:
        test, why = st.default_test(kind, n_ref, n_unique)
        return test, "default", why
    if kind == CATEGORICAL and test in st.NUMERICAL_ONLY_TESTS:
        raise DriftInputError(
            f"test {test!r} applies to numerical columns only, but column {column!r} is categorical; "
            "use chisquare, z, jensenshannon or psi"
        )
    return test, chosen_by, reason


def _sorted_keys(keys: list[Any]) -> list[Any]:
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=lambda k: (type(k).__name__, repr(k)))


# ====================================================================== per-column tests
def _no_values(column: str, kind: str, n_ref: int, n_cur: int, chosen: str) -> _Column:
    if n_cur == 0 and n_ref == 0:
        drifted, note = False, "no values in reference nor current: nothing to compare"
    elif n_cur == 0:
        drifted, note = True, "no values: every current value is missing (NaN/None/inf); flagged as drifted"
    else:
        drifted, note = True, "no values in the reference for this column; flagged as drifted"
    res = ColumnDriftResult(
        column=column,
        kind=kind,
        test=NO_VALUES,
        test_chosen_by=chosen,
        test_reason=note,
        statistic=None,
        p_value=None,
        threshold=None,
        decision_rule="drifted when exactly one side has no values",
        effect_size=None,
        effect_size_name=None,
        drifted=drifted,
        raw_drifted=drifted,
        reference_size=n_ref,
        current_size=n_cur,
        note=note,
    )
    return _Column(res)


def _tested(
    column: str, kind: str, test: str, chosen_by: str, reason: str, outcome: st.TestOutcome, threshold: float,
    effect: float | None, effect_name: str, n_ref: int, n_cur: int, n_unique: int | None, exact: bool,
    note: str | None,
) -> ColumnDriftResult:
    """The result of one column test, decided on the p-value (p-value tests) or the statistic."""
    decision_value = outcome.p_value if test in st.P_VALUE_TESTS else outcome.statistic
    drifted = st.is_drift(test, decision_value if decision_value is not None else math.nan, threshold)
    return ColumnDriftResult(
        column=column, kind=kind, test=test, test_chosen_by=chosen_by, test_reason=reason,
        statistic=outcome.statistic, p_value=outcome.p_value, threshold=threshold,
        decision_rule=st.DECISION_RULES[test], effect_size=effect, effect_size_name=effect_name,
        drifted=drifted, raw_drifted=drifted, reference_size=n_ref, current_size=n_cur, n_unique=n_unique,
        exact_reference=exact, note=note,
    )


def _numeric_column(
    column: str,
    ref: NumericColumnProfile,
    series: pd.Series,
    stattest: str | None,
    per_column_stattest: Mapping[str, str] | None,
    per_column_threshold: Mapping[str, float] | None,
    want_null: bool,
) -> tuple[_Column, int]:
    arr = to_float_array(series, column, "current")
    cur, n_missing = st.sorted_finite(arr)
    del arr
    n_cur, n_ref = int(cur.size), ref.count
    configured = bool(stattest) or bool(per_column_stattest and column in per_column_stattest)
    if n_cur == 0 or n_ref == 0:
        return _no_values(
            column, NUMERICAL, n_ref, n_cur, "configured" if configured else "default"
        ), n_missing

    sketch = ref.sketch
    cur_uniques, cur_counts_u = st.runs(cur)
    n_unique: int | None
    if sketch.exact:
        pos = np.minimum(np.searchsorted(sketch.values, cur_uniques), sketch.values.size - 1)
        n_common = int(np.count_nonzero(sketch.values[pos] == cur_uniques))
        n_unique = int(sketch.values.size + cur_uniques.size - n_common)
        n_unique_for_choice = n_unique
    else:
        n_unique = None  # more than max_exact_values distinct values in the reference alone
        n_unique_for_choice = sketch.max_exact + 1
    test, chosen_by, reason = _choose_test(
        column, NUMERICAL, n_ref, n_unique_for_choice, stattest, per_column_stattest
    )
    threshold = float((per_column_threshold or {}).get(column, st.DEFAULT_THRESHOLDS[test]))

    wnorm = st.wasserstein_normed(ref, cur_uniques, cur_counts_u)
    null_model: st.NullModel | None = None
    note: str | None = None
    if test == "wasserstein":
        outcome = st.TestOutcome(wnorm, None, wnorm)
        if want_null:
            null_model = st.null_model_numeric("wasserstein", ref)
    elif test == "ks":
        outcome = st.ks_test(ref, cur, cur_uniques, cur_counts_u)
        if want_null:
            null_model = st.null_model_numeric("ks", ref)
    elif test in ("chisquare", "z") or (
        test in ("jensenshannon", "psi") and sketch.exact and sketch.values.size <= st.BINNING_MIN_UNIQUE
    ):
        if not sketch.exact:
            raise DriftInputError(
                f"test {test!r} on numerical column {column!r} needs exact value counts, but the reference "
                f"has more than {sketch.max_exact} distinct values; use ks, wasserstein, jensenshannon or psi"
            )
        keys = np.union1d(sketch.values, cur_uniques)
        ref_counts = np.zeros(keys.size)
        ref_counts[np.searchsorted(keys, sketch.values)] = sketch.counts
        cur_counts = np.zeros(keys.size)
        cur_counts[np.searchsorted(keys, cur_uniques)] = cur_counts_u
        outcome = st.value_count_test(test, ref_counts, cur_counts)
        if want_null:
            null_model = st.null_model_values(test, ref_counts)
    else:  # jensenshannon / psi on Sturges bins
        edges, ref_counts, cur_counts = st.numeric_binned_counts(ref, cur)
        ref_pct, cur_pct = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
        if test == "jensenshannon":
            val = st.jensenshannon_from_percents(ref_pct, cur_pct)
        else:
            val = st.psi_from_percents(ref_pct, cur_pct)
        outcome = st.TestOutcome(val, None, val)
        note = f"{edges.size - 1} Sturges bins over reference and current (Evidently's histogram path)"
        if want_null:
            null_model = st.null_model_binned(test, ref, edges)
    if not sketch.exact:
        extra = (
            f"reference sketch is a log-bucket histogram (relative accuracy {sketch.relative_accuracy:g}); "
            "statistic approximates the one on the full reference"
        )
        note = extra if note is None else f"{note}; {extra}"
    res = _tested(column, NUMERICAL, test, chosen_by, reason, outcome, threshold, wnorm, "wasserstein_normed",
                  n_ref, n_cur, n_unique, sketch.exact, note)
    observed = None
    if null_model is not None and null_model.support is not None:
        observed = null_model.snapped_statistic(cur_uniques, cur_counts_u, n_ref)
    return _Column(res, outcome, null_model, n_ref, n_cur, observed), n_missing


def _categorical_column(
    column: str,
    ref: CategoricalColumnProfile,
    series: pd.Series,
    stattest: str | None,
    per_column_stattest: Mapping[str, str] | None,
    per_column_threshold: Mapping[str, float] | None,
    want_null: bool,
) -> tuple[_Column, int]:
    cur_dict, n_missing = category_counts(series)
    n_cur, n_ref = int(sum(cur_dict.values())), ref.count
    configured = bool(stattest) or bool(per_column_stattest and column in per_column_stattest)
    if n_cur == 0 or n_ref == 0:
        return _no_values(
            column, CATEGORICAL, n_ref, n_cur, "configured" if configured else "default"
        ), n_missing
    ref_dict = ref.counts_dict()
    keys = _sorted_keys(list(set(ref_dict) | set(cur_dict)))
    ref_counts = np.array([ref_dict.get(k, 0) for k in keys], dtype=np.float64)
    cur_counts = np.array([cur_dict.get(k, 0) for k in keys], dtype=np.float64)
    test, chosen_by, reason = _choose_test(
        column, CATEGORICAL, n_ref, len(keys), stattest, per_column_stattest
    )
    threshold = float((per_column_threshold or {}).get(column, st.DEFAULT_THRESHOLDS[test]))
    outcome = st.value_count_test(test, ref_counts, cur_counts)
    unseen = [k for k in keys if k not in ref_dict]
    note = None
    if unseen:
        shown = ", ".join(repr(k) for k in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        note = f"{len(unseen)} categor{'y' if len(unseen) == 1 else 'ies'} unseen in the reference: {shown}"
        if test == "chisquare":
            note += " (expected count 0: chi-square statistic is infinite, p-value 0, as in Evidently)"
    effect = st.jensenshannon_from_percents(ref_counts / n_ref, cur_counts / n_cur)
    res = _tested(column, CATEGORICAL, test, chosen_by, reason, outcome, threshold, effect, "jensenshannon",
                  n_ref, n_cur, len(keys), True, note)
    null_model = st.null_model_values(test, ref_counts) if want_null else None
    return _Column(res, outcome, null_model, n_ref, n_cur), n_missing


# ====================================================================== dataset-level checks
def _missing_values(
    profile: ReferenceProfile, cols: list[str], cur_missing: dict[str, int], n_rows: int, threshold: float
) -> MissingValuesResult:
    per_col: list[ColumnMissingValues] = []
    ref_cells = ref_missing_total = 0
    for c in cols:
        p = profile.column(c)
        ref_total = p.count + p.missing
        ref_share = p.missing / ref_total if ref_total else 0.0
        cur_share = cur_missing[c] / n_rows
        change = cur_share - ref_share
        per_col.append(
            ColumnMissingValues(
                column=c,
                reference_missing=p.missing,
                reference_share=ref_share,
                current_missing=cur_missing[c],
                current_share=cur_share,
                change=change,
                flagged=abs(change) > threshold,
            )
        )
        ref_cells += ref_total
        ref_missing_total += p.missing
    ref_share_all = ref_missing_total / ref_cells if ref_cells else 0.0
    cur_share_all = sum(cur_missing.values()) / (n_rows * len(cols))
    flagged_cols = [m.column for m in per_col if m.flagged]
    change_all = cur_share_all - ref_share_all
    return MissingValuesResult(
        threshold=threshold,
        reference_share=ref_share_all,
        current_share=cur_share_all,
        change=change_all,
        flagged=bool(flagged_cols) or abs(change_all) > threshold,
        flagged_columns=flagged_cols,
        columns=per_col,
    )


def _native_numeric(series: pd.Series, column: str) -> FloatArray:
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
        return series.to_numpy()
    return to_float_array(series, column, "current")


def _correlations(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    cols: list[str],
    threshold: float,
    cur_missing: Mapping[str, int],
) -> CorrelationChange:
    num = [c for c in cols if profile.kind(c) == NUMERICAL]
    if len(num) < 2:
        return CorrelationChange.unmeasured(threshold, num, profile.correlation.n, 0,
                                            "fewer than two numerical columns")
    ref_corr = profile.correlation.correlation(num)
    cur_stats = CorrelationStats.from_arrays(
        num, [_native_numeric(current[c], c) for c in num], all_finite=all(cur_missing[c] == 0 for c in num)
    )
    if cur_stats.n < 3 or profile.correlation.n < 3:
        return CorrelationChange.unmeasured(threshold, num, profile.correlation.n, cur_stats.n,
                                            "fewer than 3 rows with every numerical column present")
    cur_corr = cur_stats.correlation()
    iu = np.triu_indices(len(num), k=1)
    diff = np.abs(cur_corr[iu] - ref_corr[iu])
    ok = np.isfinite(diff)
    if not ok.any():
        return CorrelationChange.unmeasured(
            threshold, num, profile.correlation.n, cur_stats.n,
            "no pair of numerical columns with non-zero variance on both sides",
        )
    j = int(np.argmax(np.where(ok, diff, -1.0)))
    a, b = int(iu[0][j]), int(iu[1][j])
    max_change = float(diff[j])
    return CorrelationChange(
        threshold=threshold,
        columns=num,
        max_abs_change=max_change,
        pair=[num[a], num[b]],
        reference_correlation=float(ref_corr[a, b]),
        current_correlation=float(cur_corr[a, b]),
        flagged=max_change > threshold,
        reference_rows=profile.correlation.n,
        current_rows=cur_stats.n,
        note=None
        if set(num) == set(profile.numerical_columns)
        else "reference correlations use the rows where every profiled numerical column is present",
    )


# ====================================================================== the check
def detect_data_drift(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    drift_share: float = DEFAULT_DRIFT_SHARE,
    key_columns: Sequence[str] = (),
    stattest: str | None = None,
    per_column_stattest: Mapping[str, str] | None = None,
    per_column_threshold: Mapping[str, float] | None = None,
    fdr: bool = False,
    calibrate: bool = False,
    calibration_trials: int = 200,
    seed: int = 0,
    calibration_alpha: float = DEFAULT_CALIBRATION_ALPHA,
    missing_share_threshold: float = DEFAULT_MISSING_SHARE_THRESHOLD,
    correlation_threshold: float = DEFAULT_CORRELATION_THRESHOLD,
) -> DataDriftResult:
    """Test every column of ``current`` against the reference ``profile``.

    Per column the test is Evidently 0.7's default (or ``per_column_stattest[column]``, else
    ``stattest``) with its default threshold (or ``per_column_threshold[column]``).

    ``dataset_drift`` is true when the share of drifted columns is ``>= drift_share`` (Evidently's
    rule) OR any of ``key_columns`` drifted; ``reasons`` says which rule fired.

    ``fdr=True`` applies Benjamini-Hochberg across the run's p-values (the p-value tests, or every
    column when ``calibrate`` is also on) and decides on the adjusted p-values.

    ``calibrate=True`` replaces each column's threshold by a Monte-Carlo calibrated one for the
    current window size: ``calibration_trials`` pairs (window of the current size, resample of the
    reference size) are drawn from the reference profile with ``seed``, and the threshold is the
    ``1 - alpha`` quantile of the null statistic (``alpha`` = the column's threshold for p-value
    tests, ``calibration_alpha`` for distances).

    Also reported, without changing ``dataset_drift``: missing-share change per column (flagged
    beyond ``missing_share_threshold``, absolute) and the largest change of a pairwise Pearson
    correlation between numerical columns (flagged beyond ``correlation_threshold``).

    Raises :class:`DriftInputError` for an empty current frame, columns missing from ``current``,
    non-numeric values in a numerical column and invalid settings.
    """
    if isinstance(current, pd.DataFrame) and any(not isinstance(c, str) for c in current.columns):
        current = current.rename(columns=str)
    cols = _validate(
        profile,
        current,
        columns,
        drift_share,
        key_columns,
        stattest,
        per_column_stattest,
        per_column_threshold,
        calibration_trials,
        calibration_alpha,
    )
    n_rows = len(current)
    work: list[_Column] = []
    cur_missing: dict[str, int] = {}
    for c in cols:
        ref = profile.column(c)
        if isinstance(ref, NumericColumnProfile):
            col, n_missing = _numeric_column(
                c, ref, current[c], stattest, per_column_stattest, per_column_threshold, calibrate
            )
        else:
            col, n_missing = _categorical_column(
                c, ref, current[c], stattest, per_column_stattest, per_column_threshold, calibrate
            )
        work.append(col)
        cur_missing[c] = n_missing

    if calibrate:
        for i, col in enumerate(work):
            r = col.result
            if col.outcome is None or col.null_model is None or r.threshold is None:
                continue
            alpha = r.threshold if r.test in st.P_VALUE_TESTS else calibration_alpha
            if not 0.0 < alpha < 1.0:
                raise DriftInputError(
                    f"calibration level for column {r.column!r} must be in (0, 1), got {alpha}"
                )
            cal = st.calibrate(
                col.null_model,
                col.outcome.calibration_stat
                if col.calibration_observed is None
                else col.calibration_observed,
                col.n_cur,
                col.n_ref,
                trials=calibration_trials,
                alpha=alpha,
                rng=np.random.default_rng([seed, i]),
            )
            col.result = replace(
                r,
                calibrated_threshold=cal.threshold,
                calibrated_p_value=cal.p_value,
                calibration_method=cal.method,
                drifted=cal.drifted,
            )

    if fdr:
        idx = [
            i
            for i, col in enumerate(work)
            if col.outcome is not None
            and (col.result.calibrated_p_value is not None or col.result.test in st.P_VALUE_TESTS)
        ]
        if idx:
            pvals = np.array(
                [
                    work[i].result.calibrated_p_value
                    if calibrate
                    else (work[i].result.p_value if work[i].result.p_value is not None else 1.0)
                    for i in idx
                ],
                dtype=np.float64,
            )
            adjusted = st.bh_adjust(np.nan_to_num(pvals, nan=1.0))
            for i, adj in zip(idx, adjusted.tolist()):
                r = work[i].result
                assert r.threshold is not None
                if calibrate:
                    level = r.threshold if r.test in st.P_VALUE_TESTS else calibration_alpha
                    drifted = bool(adj <= level)
                else:
                    drifted = st.is_drift(r.test, adj, r.threshold)
                work[i].result = replace(r, adjusted_p_value=float(adj), drifted=drifted)

    results = [w.result for w in work]
    drifted_cols = [r.column for r in results if r.drifted]
    n_cols = len(results)
    share = len(drifted_cols) / n_cols
    drifted_keys = [c for c in key_columns if c in drifted_cols]
    reasons: list[str] = []
    if share >= drift_share:
        reasons.append(
            f"share rule: {len(drifted_cols)} of {n_cols} columns drifted "
            f"(share {share:.3f} >= drift_share {drift_share:g})"
        )
    if drifted_keys:
        reasons.append(f"key-column rule: key column(s) {drifted_keys} drifted")

    return DataDriftResult(
        dataset_drift=bool(reasons),
        drift_share=share,
        drift_share_threshold=float(drift_share),
        number_of_columns=n_cols,
        number_of_drifted_columns=len(drifted_cols),
        drifted_columns=drifted_cols,
        key_columns=list(key_columns),
        drifted_key_columns=drifted_keys,
        reasons=reasons,
        columns=results,
        missing_values=_missing_values(profile, cols, cur_missing, n_rows, missing_share_threshold),
        correlations=_correlations(profile, current, cols, correlation_threshold, cur_missing),
        reference_rows=profile.rows,
        current_rows=n_rows,
        settings={
            "columns": cols,
            "drift_share": float(drift_share),
            "key_columns": list(key_columns),
            "stattest": stattest,
            "per_column_stattest": dict(per_column_stattest or {}),
            "per_column_threshold": {k: float(v) for k, v in (per_column_threshold or {}).items()},
            "fdr": bool(fdr),
            "calibrate": bool(calibrate),
            "calibration_trials": int(calibration_trials),
            "calibration_alpha": float(calibration_alpha),
            "seed": int(seed),
            "missing_share_threshold": float(missing_share_threshold),
            "correlation_threshold": float(correlation_threshold),
        },
    )
