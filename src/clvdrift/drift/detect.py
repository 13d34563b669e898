"""Dataset drift: every column of a current window tested against a reference profile.

``detect_data_drift`` reproduces Evidently 0.7's per-column default tests and decisions (see
:mod:`clvdrift.drift.stattests`), adds a key-column rule to the share rule, and can make the verdicts
trustworthy at any window size with Benjamini-Hochberg FDR control and a permutation calibration of
each column's test (:mod:`clvdrift.drift.calibrate`). Every option comes from one
:class:`clvdrift.config.DriftConfig`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from clvdrift.config import DriftConfig
from clvdrift.drift import calibrate as cal
from clvdrift.drift import stattests as st
from clvdrift.drift.columns import hash_buckets
from clvdrift.drift.convert import is_integer_column
from clvdrift.drift.profile import (
    CATEGORICAL,
    NUMERICAL,
    CategoricalColumnProfile,
    CorrelationStats,
    NumericColumnProfile,
    ReferenceProfile,
    build_profile,
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
from clvdrift.errors import ConfigError

__all__ = ["detect_data_drift"]

NO_VALUES = "no-values"
OTHER_CATEGORY = "(other)"  # the cell of categories a bounded categorical profile summed together
BOUNDED_BIAS_BUDGET = 0.5  # bounded profiles: summed squared bias (in sd) allowed by separated categories

FloatArray = np.ndarray


@dataclass
class _Column:
    """Working state of one column between the test, calibration and FDR stages."""

    result: ColumnDriftResult
    grid: cal.Grid | None = None  # calibration grid (calibrate on, a test was run)
    grid_statistic: cal.GridStatistic | None = None
    level: float = 0.05  # false-alarm level of the calibrated / BH decision


PARALLEL_MIN_VALUES = 1_000_000
"""From this many current values (rows × columns) the columns are tested on a thread per core."""


# ====================================================================== validation


def _validate(
    profile: ReferenceProfile, current: pd.DataFrame, columns: Sequence[str] | None, config: DriftConfig
) -> tuple[list[str], list[str]]:
    """The checked columns and the key columns; raises on bad input.

    Key columns left at their default are applied to the checked columns that have them; key columns
    set explicitly must all be checked.
    """
    if not isinstance(profile, ReferenceProfile):
        raise DriftInputError(f"profile must be a ReferenceProfile, got {type(profile).__name__}")
    if not isinstance(current, pd.DataFrame):
        raise DriftInputError(f"current data must be a pandas DataFrame, got {type(current).__name__}")
    if not isinstance(config, DriftConfig):
        raise ConfigError(f"config must be a clvdrift.config.DriftConfig, got {type(config).__name__}")
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
    if "key_columns" in config.model_fields_set:
        bad_keys = [c for c in config.key_columns if c not in cols]
        if bad_keys:
            raise ConfigError(f"drift key_columns {bad_keys} are not among the checked columns {cols}")
        keys = list(config.key_columns)
    else:
        keys = [c for c in config.key_columns if c in cols]
    for what, mapping in (
        ("per_column_stattest", config.per_column_stattest),
        ("per_column_threshold", config.per_column_threshold),
    ):
        stray = [c for c in mapping if c not in cols]
        if stray:
            raise ConfigError(f"drift {what} names column(s) {stray}, which are not checked ({cols})")
    return cols, keys


def _choose_test(
    column: str, kind: str, n_ref: int, n_unique: int, config: DriftConfig
) -> tuple[str, str, str]:
    if column in config.per_column_stattest:
        test, chosen_by, reason = (
            config.per_column_stattest[column],
            "configured",
            f"per_column_stattest[{column!r}]",
        )
    elif config.stattest is not None:
        test, chosen_by, reason = config.stattest, "configured", "stattest (all columns)"
    else:
        test, why = st.default_test(kind, n_ref, n_unique)
        return test, "default", why
    if kind == CATEGORICAL and test in st.NUMERICAL_ONLY_TESTS:
        raise ConfigError(
            f"drift test {test!r} applies to numerical columns only, but column {column!r} is categorical; "
            "use chisquare, z, jensenshannon or psi"
        )
    return test, chosen_by, reason


def _sorted_keys(keys: list[Any]) -> list[Any]:
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=lambda k: (type(k).__name__, repr(k)))


def _raw_rule(test: str, threshold: float) -> str:
    """The test's own decision rule with its threshold, e.g. ``p_value <= 0.05``."""
    return st.DECISION_RULES[test].replace("threshold", f"{threshold:g}")


def _note(*parts: str | None) -> str | None:
    text = "; ".join(p for p in parts if p)
    return text or None


# ====================================================================== per-column tests
def _no_values(column: str, kind: str, n_ref: int, n_cur: int, chosen: str) -> _Column:
    if n_cur == 0 and n_ref == 0:
        drifted, note = False, "no values in reference nor current: nothing to compare"
    elif n_cur == 0:
        drifted, note = True, "no values: every current value is missing (NaN/None/inf); flagged as drifted"
    else:
        drifted, note = True, "no values in the reference for this column; flagged as drifted"
    rule = "drifted when exactly one side has no values"
    res = ColumnDriftResult(
        column=column,
        kind=kind,
        test=NO_VALUES,
        test_chosen_by=chosen,
        test_reason=note,
        statistic=None,
        p_value=None,
        threshold=None,
        decision_rule=rule,
        raw_decision_rule=rule,
        decided_by=NO_VALUES,
        effect_size=None,
        effect_size_name=None,
        drifted=drifted,
        raw_drifted=drifted,
        reference_size=n_ref,
        current_size=n_cur,
        note=note,
    )
    return _Column(res)


@dataclass(frozen=True)
class _Tested:
    """What a column test produced, before it becomes a :class:`ColumnDriftResult`."""

    test: str
    chosen_by: str
    reason: str
    outcome: st.TestOutcome
    threshold: float
    effect: float | None
    effect_name: str
    n_unique: int | None
    exact: bool
    error_bound: dict[str, float] | None
    note: str | None


def _tested(column: str, kind: str, t: _Tested, n_ref: int, n_cur: int) -> ColumnDriftResult:
    """The result of one column test, decided on the p-value (p-value tests) or the statistic."""
    decision_value = t.outcome.p_value if t.test in st.P_VALUE_TESTS else t.outcome.statistic
    drifted = st.is_drift(t.test, decision_value if decision_value is not None else math.nan, t.threshold)
    note = t.note
    if not math.isfinite(t.outcome.statistic) and "infinite" not in (note or ""):
        note = _note(note, f"statistic is {t.outcome.statistic} (written as null)")
    rule = _raw_rule(t.test, t.threshold)
    return ColumnDriftResult(
        column=column,
        kind=kind,
        test=t.test,
        test_chosen_by=t.chosen_by,
        test_reason=t.reason,
        statistic=t.outcome.statistic,
        p_value=t.outcome.p_value,
        threshold=t.threshold,
        decision_rule=rule,
        raw_decision_rule=rule,
        decided_by="test",
        effect_size=t.effect,
        effect_size_name=t.effect_name,
        drifted=drifted,
        raw_drifted=drifted,
        reference_size=n_ref,
        current_size=n_cur,
        n_unique=t.n_unique,
        exact_reference=t.exact,
        sketch_error_bound=t.error_bound,
        note=note,
    )


def _level(test: str, threshold: float, config: DriftConfig) -> float:
    """False-alarm level of a calibrated decision: the threshold of a p-value test, else
    ``calibration_alpha``."""
    level = threshold if test in st.P_VALUE_TESTS else config.calibration_alpha
    if not 0.0 < level < 1.0:
        raise ConfigError(
            f"drift calibration level must be in (0, 1), got threshold {threshold} for test {test!r}"
        )
    return level


def _numeric_grid(ref: NumericColumnProfile, cur_values: FloatArray, cur_counts: FloatArray) -> cal.Grid:
    """Common grid of the reference sketch and the current window (``ValueSketch.discretize``)."""
    pos, ref_c, cur_c = ref.sketch.discretize(cur_values, cur_counts)
    what = "distinct values of reference and current" if ref.sketch.exact else "cells of the reference sketch"
    return cal.coarsen(cal.Grid.from_counts(ref_c, cur_c, pos, f"{what} ({len(pos)} cells)"))


def _binned_grid(grid: cal.Grid, edges: FloatArray) -> cal.Grid:
    """``grid``'s cells summed into the test's histogram bins (by cell position)."""
    assert grid.positions is not None
    n_bins = edges.size - 1
    idx = np.clip(np.searchsorted(edges, grid.positions, side="right") - 1, 0, n_bins - 1)
    ref = np.bincount(idx, weights=grid.ref, minlength=n_bins)
    cur = np.bincount(idx, weights=grid.cur, minlength=n_bins)
    return cal.Grid.from_counts(ref, cur, None, f"the test's {n_bins} Sturges bins")


def _first_vs_rest(ref_counts: FloatArray, cur_counts: FloatArray) -> cal.Grid:
    """The z-test's two cells: the first (smallest) value and all others."""
    return cal.Grid.from_counts(
        np.array([ref_counts[0], ref_counts[1:].sum()]),
        np.array([cur_counts[0], cur_counts[1:].sum()]),
        None,
        "the first value vs the others",
    )


@dataclass(frozen=True)
class _NumericRun:
    """The inputs of one numerical column test: the reference profile and the current window (its
    sorted distinct finite values with their counts)."""

    ref: NumericColumnProfile
    uniques: FloatArray
    counts: FloatArray
    integer: bool  # reference and current both have an integer dtype
    calibrate: bool


def _numeric_test(
    test: str, column: str, run: _NumericRun, wnorm: float
) -> tuple[st.TestOutcome, cal.Grid | None, str | None]:
    """Evidently's statistic of ``test`` on a numerical column, the calibration grid (when calibrating)
    and a note on the binning."""
    sketch = run.ref.sketch
    if test in ("wasserstein", "ks"):
        outcome = (
            st.TestOutcome(wnorm, None)
            if test == "wasserstein"
            else st.ks_test(run.ref, run.uniques, run.counts)
        )
        return outcome, _numeric_grid(run.ref, run.uniques, run.counts) if run.calibrate else None, None
    if test in ("chisquare", "z") or (sketch.exact and sketch.values.size <= st.BINNING_MIN_UNIQUE):
        if not sketch.exact:
            raise ConfigError(
                f"drift test {test!r} on numerical column {column!r} needs exact value counts, but the "
                "reference has too many distinct values for an exact sketch; use ks, wasserstein, "
                "jensenshannon or psi"
            )
        keys, ref_counts, cur_counts = sketch.discretize(run.uniques, run.counts)  # union of the values
        grid = None
        if run.calibrate:
            grid = (
                _first_vs_rest(ref_counts, cur_counts)
                if test == "z"
                else cal.Grid.from_counts(ref_counts, cur_counts, keys, f"the {keys.size} distinct values")
            )
        return st.value_count_test(test, ref_counts, cur_counts), grid, None
    # jensenshannon / psi on Sturges bins
    edges, ref_counts, cur_counts = st.numeric_binned_counts(run.ref, run.uniques, run.counts, run.integer)
    ref_pct, cur_pct = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    val = (
        st.jensenshannon_from_percents(ref_pct, cur_pct)
        if test == "jensenshannon"
        else st.psi_from_percents(ref_pct, cur_pct)
    )
    width = "at least 1 (integer columns, as NumPy bins integer arrays)" if run.integer else "Sturges"
    note = f"{edges.size - 1} Sturges bins over reference and current, width {width} (Evidently's histograms)"
    grid = _binned_grid(_numeric_grid(run.ref, run.uniques, run.counts), edges) if run.calibrate else None
    return st.TestOutcome(val, None), grid, note


def _numeric_column(
    column: str, ref: NumericColumnProfile, series: pd.Series, config: DriftConfig
) -> tuple[_Column, int]:
    integer = ref.integer and is_integer_column(series)  # both integer: Evidently bins an integer array
    numpy_int = isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu"  # not nullable Int64
    values = series.to_numpy() if numpy_int else to_float_array(series, column, "current")
    cur_uniques, cur_counts_u, n_missing = st.distinct_counts(values)
    wide = st.wide_integers_note(values, ref.min, ref.max, ref.integer)
    del values
    n_cur, n_ref = int(cur_counts_u.sum()), ref.count
    configured = bool(config.stattest) or column in config.per_column_stattest
    if n_cur == 0 or n_ref == 0:
        return _no_values(
            column, NUMERICAL, n_ref, n_cur, "configured" if configured else "default"
        ), n_missing

    sketch = ref.sketch
    n_unique: int | None
    if sketch.exact:
        n_unique = int(np.union1d(sketch.values, cur_uniques).size)
        n_unique_for_choice = n_unique
    else:
        n_unique = None  # more distinct values in the reference alone than an exact sketch keeps
        n_unique_for_choice = st.FEW_VALUES + 1
    test, chosen_by, reason = _choose_test(column, NUMERICAL, n_ref, n_unique_for_choice, config)
    threshold = float(config.per_column_threshold.get(column, st.DEFAULT_THRESHOLDS[test]))

    wnorm = st.wasserstein_normed(ref, cur_uniques, cur_counts_u)
    run = _NumericRun(ref, cur_uniques, cur_counts_u, integer, config.calibrate)
    outcome, grid, note = _numeric_test(test, column, run, wnorm)
    note = _note(note, wide)
    bound = None if sketch.exact else ref.error_bound()
    if bound is not None:
        note = _note(
            note,
            "reference sketch is approximate: the statistic approximates the one on the full "
            "reference within sketch_error_bound",
        )
    t = _Tested(
        test,
        chosen_by,
        reason,
        outcome,
        threshold,
        wnorm,
        "wasserstein_normed",
        n_unique,
        sketch.exact,
        bound,
        note,
    )
    col = _Column(_tested(column, NUMERICAL, t, n_ref, n_cur))
    if grid is not None:
        col.grid, col.level = grid, _level(test, threshold, config)
        col.grid_statistic = cal.grid_statistic(test, grid, norm=max(ref.std, st.WASSERSTEIN_MIN_NORM))
    return col, n_missing


def _separate_categories(ref: CategoricalColumnProfile, n_cur: int) -> list[Any]:
    """The categories of a bounded profile that get their own cell: the most frequent ones, as many as
    keep the profile's count error negligible next to the sampling noise of the comparison.

    A kept count underestimates the true one by up to ``e = count_error_bound``, which becomes a bias of
    ``e / sqrt(r (1 + n_ref / n_cur))`` standard deviations of the share difference of a category with
    reference count ``r``; the cell of all other categories receives up to ``j * e`` of it from ``j``
    separated categories. The largest ``j`` whose squared biases sum to at most
    ``BOUNDED_BIAS_BUDGET`` is used (a chi-square-like statistic then moves by at most that much).
    """
    items = sorted(ref.counts_dict().items(), key=lambda kv: -kv[1])
    if not items:
        return []
    e = ref.count_error_bound
    inflate = 1.0 + ref.count / max(n_cur, 1)
    counts = np.array([v for _, v in items], dtype=np.float64)
    own = np.cumsum(e**2 / (counts * inflate))
    j = np.arange(1, counts.size + 1)
    rest = np.maximum(ref.count - np.cumsum(counts), 1.0)
    total = own + (j * e) ** 2 / (rest * inflate)
    n_sep = int(np.count_nonzero(np.cumsum(total > BOUNDED_BIAS_BUDGET) == 0))
    return [k for k, _ in items[:n_sep]]


def _category_cells(
    ref: CategoricalColumnProfile, cur_dict: Mapping[Any, int]
) -> tuple[list[Any], FloatArray, FloatArray, list[Any], int]:
    """Aligned reference and current counts over the categories, the categories unseen in the reference,
    and how many categories are compared one by one.

    A bounded (frequent-items) profile underestimates its kept counts and holds the removed mass in
    ``other``; comparing every kept count with an exact current count would see drift in that error, so
    only :func:`_separate_categories` get their own cell and every other category, on both sides, is
    counted in one ``other`` cell.
    """
    ref_dict = dict(ref.counts_dict())
    if not ref.other:
        unseen = [k for k in cur_dict if k not in ref_dict]
        keys = _sorted_keys(list(set(ref_dict) | set(cur_dict)))
        ref_counts = np.array([ref_dict.get(k, 0) for k in keys], dtype=np.float64)
        cur_counts = np.array([cur_dict.get(k, 0) for k in keys], dtype=np.float64)
        return keys, ref_counts, cur_counts, unseen, len(keys)
    n_cur = int(sum(cur_dict.values()))
    if ref.buckets:  # exact counts of hash buckets on both sides: no count error to allow for
        ref_b = np.asarray(ref.buckets, dtype=np.float64)
        cur_b = hash_buckets(cur_dict, len(ref.buckets)).astype(np.float64)
        used = np.flatnonzero((ref_b > 0) | (cur_b > 0))
        return [f"bucket {i}" for i in used], ref_b[used], cur_b[used], [], 0
    separate = _sorted_keys(_separate_categories(ref, n_cur))
    keys = [*separate, OTHER_CATEGORY]
    ref_counts = np.array([*(ref_dict[k] for k in separate), 0], dtype=np.float64)
    ref_counts[-1] = ref.count - ref_counts.sum()
    cur_counts = np.array([*(cur_dict.get(k, 0) for k in separate), 0], dtype=np.float64)
    cur_counts[-1] = n_cur - cur_counts.sum()
    return keys, ref_counts, cur_counts, [], len(separate)


def _categorical_column(
    column: str, ref: CategoricalColumnProfile, series: pd.Series, config: DriftConfig
) -> tuple[_Column, int]:
    cur_dict, n_missing = category_counts(series)
    n_cur, n_ref = int(sum(cur_dict.values())), ref.count
    configured = bool(config.stattest) or column in config.per_column_stattest
    if n_cur == 0 or n_ref == 0:
        return _no_values(
            column, CATEGORICAL, n_ref, n_cur, "configured" if configured else "default"
        ), n_missing
    keys, ref_counts, cur_counts, unseen, n_separate = _category_cells(ref, cur_dict)
    n_unique = len(keys) if ref.exact else None  # unknown beyond the bounded profile's categories
    n_unique_for_choice = len(keys) if ref.exact else ref.max_categories + 1
    test, chosen_by, reason = _choose_test(column, CATEGORICAL, n_ref, n_unique_for_choice, config)
    threshold = float(config.per_column_threshold.get(column, st.DEFAULT_THRESHOLDS[test]))
    outcome = st.value_count_test(test, ref_counts, cur_counts)
    note = None
    if unseen:
        shown = ", ".join(repr(k) for k in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        note = f"{len(unseen)} categor{'y' if len(unseen) == 1 else 'ies'} unseen in the reference: {shown}"
        if test == "chisquare":
            note += (
                " (expected count 0: chi-square statistic is infinite, written as null; p-value 0, "
                "as in Evidently)"
            )
    if ref.other and ref.buckets:
        new = float(cur_counts[ref_counts == 0].sum() / max(cur_counts.sum(), 1))
        gone = float(ref_counts[cur_counts == 0].sum() / max(ref_counts.sum(), 1))
        note = _note(
            note,
            f"the reference has more than {ref.max_categories:,} categories: compared over {len(keys)} of "
            f"{len(ref.buckets)} hash buckets of categories, exact on both sides (buckets only merge "
            f"categories, which can lower the statistic, never raise it); {new:.1%} of the current values "
            f"are in buckets the reference never filled (new categories), {gone:.1%} of the reference's "
            "in buckets the current window left empty (vanished ones)",
        )
    elif ref.other:
        note = _note(
            note,
            f"the reference profile is bounded (frequent-items counts, each within "
            f"{ref.count_error_bound:.3g} of the truth; {ref.other} values in its other cell): the "
            f"{n_separate} most frequent categories whose error is negligible next to sampling noise are "
            "compared one by one, all others on both "
            f"sides in one {OTHER_CATEGORY!r} cell",
        )
    effect = st.jensenshannon_from_percents(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())
    t = _Tested(
        test,
        chosen_by,
        reason,
        outcome,
        threshold,
        effect,
        "jensenshannon",
        n_unique,
        ref.exact,
        None,
        note,
    )
    col = _Column(_tested(column, CATEGORICAL, t, n_ref, n_cur))
    if config.calibrate:
        grid = (
            _first_vs_rest(ref_counts, cur_counts)
            if test == "z"
            else cal.coarsen(
                cal.Grid.from_counts(
                    ref_counts,
                    cur_counts,
                    None,
                    f"the {len(keys)} {'buckets' if n_separate == 0 and ref.other else 'categories'}",
                )
            )
        )
        col.grid, col.level = grid, _level(test, threshold, config)
        col.grid_statistic = cal.grid_statistic(test, grid)
    return col, n_missing


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
    cur_missing: Mapping[str, int] | None,
) -> CorrelationChange:
    num = [c for c in cols if profile.kind(c) == NUMERICAL]
    if len(num) < 2:
        return CorrelationChange.unmeasured(
            threshold, num, profile.correlation.n, 0, "fewer than two numerical columns"
        )
    ref_corr = profile.correlation.correlation(num)
    cur_stats = CorrelationStats.from_arrays(
        num,
        [_native_numeric(current[c], c) for c in num],
        all_finite=cur_missing is not None and all(cur_missing[c] == 0 for c in num),
    )
    if cur_stats.n < 3 or profile.correlation.n < 3:
        return CorrelationChange.unmeasured(
            threshold,
            num,
            profile.correlation.n,
            cur_stats.n,
            "fewer than 3 rows with every numerical column present",
        )
    cur_corr = cur_stats.correlation()
    iu = np.triu_indices(len(num), k=1)
    diff = np.abs(cur_corr[iu] - ref_corr[iu])
    ok = np.isfinite(diff)
    if not ok.any():
        return CorrelationChange.unmeasured(
            threshold,
            num,
            profile.correlation.n,
            cur_stats.n,
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


# ====================================================================== calibration and FDR
def _calibrate(work: list[_Column], config: DriftConfig) -> None:
    """Replace each tested column's decision by its permutation-calibrated one."""
    for i, col in enumerate(work):
        if col.grid is None or col.grid_statistic is None:
            continue
        c = cal.permutation_calibrate(
            col.grid,
            col.grid_statistic,
            trials=config.calibration_trials,
            alpha=col.level,
            rng=np.random.default_rng([config.seed, i]),
        )
        note = col.result.note
        if not math.isfinite(c.threshold):
            note = _note(
                note,
                f"calibrated threshold is infinite ({config.calibration_trials} splits are too few "
                f"for level {col.level:g}): written as null, the column cannot drift by calibration",
            )
        col.result = replace(
            col.result,
            calibrated_statistic=c.statistic,
            calibrated_statistic_name=c.statistic_name,
            calibrated_threshold=c.threshold,
            calibrated_p_value=c.p_value,
            calibration_method=(
                f"permutation null: {c.trials} random splits of the pooled reference and current "
                f"counts on {c.grid} (multivariate hypergeometric); p = (1 + #null >= observed) / "
                f"({c.trials} + 1); threshold = the ceil((1 - {c.alpha:g}) x {c.trials + 1})-th "
                "smallest null statistic"
            ),
            drifted=c.drifted,
            decided_by="calibration",
            decision_rule=c.rule,
            note=note,
        )


def _fdr(work: list[_Column], config: DriftConfig) -> None:
    """Benjamini-Hochberg over the run's p-values: the calibrated ones when calibrating, else those of the
    p-value tests; each such column is then decided on its adjusted p-value."""
    if config.calibrate:
        idx = [i for i, w in enumerate(work) if w.result.calibrated_p_value is not None]
    else:
        idx = [
            i
            for i, w in enumerate(work)
            if w.result.test in st.P_VALUE_TESTS and w.result.p_value is not None
        ]
    if not idx:
        return
    pvals = np.array(
        [work[i].result.calibrated_p_value if config.calibrate else work[i].result.p_value for i in idx],
        dtype=np.float64,
    )
    adjusted = st.bh_adjust(np.nan_to_num(pvals, nan=1.0))
    for i, adj in zip(idx, adjusted.tolist(), strict=True):
        r = work[i].result
        assert r.threshold is not None
        if config.calibrate:
            drifted = bool(adj <= work[i].level)
            rule = (
                f"BH-adjusted calibrated p_value <= {work[i].level:g} (permutation null, "
                f"{config.calibration_trials} splits; {len(idx)} p-values)"
            )
        else:
            drifted = st.is_drift(r.test, adj, r.threshold)
            rule = f"BH-adjusted {_raw_rule(r.test, r.threshold)} ({len(idx)} p-values)"
        work[i].result = replace(
            r, adjusted_p_value=float(adj), drifted=drifted, decided_by="fdr", decision_rule=rule
        )


# ====================================================================== dataset verdict
def _key_rule(work: list[_Column], keys: list[str], config: DriftConfig) -> tuple[list[str], str]:
    """The key columns that fire the key-column rule, and the rule in words.

    With calibration each key column is tested on its calibrated p-value at its level divided by the
    number of key columns (Bonferroni), so the key-column rule as a whole keeps the level.
    """
    by_name = {w.result.column: w for w in work}
    if not keys:
        return [], " (no key columns)"
    if not config.calibrate:
        return [c for c in keys if by_name[c].result.drifted], f" OR a key column ({', '.join(keys)}) drifted"
    fired = []
    for c in keys:
        w = by_name[c]
        p = w.result.calibrated_p_value
        if (p is not None and p <= w.level / len(keys)) or (
            w.result.decided_by == NO_VALUES and w.result.drifted
        ):
            fired.append(c)
    return fired, (
        f" OR a key column ({', '.join(keys)}) has calibrated p_value <= its level / {len(keys)} "
        "(Bonferroni over the key columns)"
    )


# ====================================================================== the check
UNDECIDED = "undecided"


def _undecided(result: ColumnDriftResult) -> bool:
    """Whether a sketch's error bound leaves the Wasserstein decision open: the exact statistic may lie
    on either side of the threshold."""
    bound = (result.sketch_error_bound or {}).get("wasserstein_normed")
    stat, threshold = result.statistic, result.threshold
    if result.test != "wasserstein" or bound is None or stat is None or threshold is None:
        return False
    return math.isfinite(stat) and stat - bound < threshold <= stat + bound


def _decide_exactly(
    column: str,
    col: _Column,
    series: pd.Series,
    config: DriftConfig,
    reference: Callable[[], pd.DataFrame] | None,
) -> _Column:
    """The column decided on the exact reference values when there are any, else left undecided."""
    r = col.result
    bound = (r.sketch_error_bound or {})["wasserstein_normed"]
    why = (
        f"the reference sketch cannot decide: its statistic {r.statistic:.3g} is within its error bound "
        f"{bound:.3g} of the threshold {r.threshold:g}"
    )
    frame = reference() if reference is not None else None
    if frame is None or column not in frame.columns:
        return _Column(
            replace(
                r,
                drifted=False,
                raw_drifted=False,
                decided_by=UNDECIDED,
                note=_note(
                    r.note, f"{why}, and no exact reference values were given: not counted as drifted"
                ),
            )
        )
    values = frame[column]
    exact = build_profile(
        values.to_frame(),
        numerical_columns=[column],
        categorical_columns=None,
        max_exact_values=len(values) + 1,
    ).column(column)
    assert isinstance(exact, NumericColumnProfile)
    decided, _ = _numeric_column(column, exact, series, config)
    return _Column(
        replace(
            decided.result, note=_note(decided.result.note, f"{why}: decided on the exact reference values")
        )
    )


def detect_data_drift(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    config: DriftConfig = DriftConfig(),
    *,
    columns: Sequence[str] | None = None,
    reference: Callable[[], pd.DataFrame] | None = None,
) -> DataDriftResult:
    """Test every column of ``current`` (or ``columns``) against the reference ``profile``.

    A numerical column whose profile is a sketch is decided on the sketch unless the sketch's own error
    bound says it cannot decide (the Wasserstein distance within its bound of the threshold, on either
    side): then on the exact reference values, which ``reference()`` returns (the data the profile was
    built from), or, without them, it is not counted as drifted and its note says the sketch could not
    decide (``decided_by`` ``"undecided"``).

    Per column the test is Evidently 0.7's default (or ``config.per_column_stattest[column]``, else
    ``config.stattest``) with its default threshold (or ``config.per_column_threshold[column]``).

    ``config.calibrate`` decides each column on a permutation-calibrated p-value instead
    (:mod:`clvdrift.drift.calibrate`): ``calibration_trials`` random splits of the pooled reference and
    current counts, level = the threshold of a p-value test or ``calibration_alpha`` for a distance.
    ``config.fdr`` applies Benjamini-Hochberg across the run's p-values (the calibrated ones when
    calibrating, else those of the p-value tests) and decides on the adjusted p-values.

    ``dataset_drift`` is true when the share of drifted columns is ``>= drift_share`` (Evidently's
    rule) OR a key column drifted (with calibration: its calibrated p-value is at most its level divided
    by the number of key columns); ``reasons`` says which rule fired, ``dataset_rule`` states the rule.
    Key columns left at their default apply to the checked columns that have them.

    Also reported, without changing ``dataset_drift``: missing-share change per column (flagged beyond
    ``missing_share_threshold``, absolute) and the largest change of a pairwise Pearson correlation
    between numerical columns (flagged beyond ``correlation_threshold``).

    Raises :class:`DriftInputError` for an empty current frame, columns missing from ``current`` and
    non-numeric values in a numerical column, :class:`clvdrift.errors.ConfigError` for settings that do
    not fit the profile.
    """
    if isinstance(current, pd.DataFrame) and any(not isinstance(c, str) for c in current.columns):
        current = current.rename(columns=str)
    cols, keys = _validate(profile, current, columns, config)
    n_rows = len(current)

    def test(c: str) -> tuple[_Column, int]:
        ref = profile.column(c)
        if isinstance(ref, NumericColumnProfile):
            col, n_missing = _numeric_column(c, ref, current[c], config)
            if _undecided(col.result) and not config.calibrate:
                col = _decide_exactly(c, col, current[c], config, reference)
            return col, n_missing
        return _categorical_column(c, ref, current[c], config)

    # the columns are independent and their sorts and sums release the GIL: one thread per core for a
    # large window; a small one (a request to the service) is tested on the caller's thread
    if n_rows * len(cols) < PARALLEL_MIN_VALUES:
        correlations_result = _correlations(profile, current, cols, config.correlation_threshold, None)
        tested = [test(c) for c in cols]
    else:
        with ThreadPoolExecutor(max_workers=max(1, min(len(cols), os.cpu_count() or 1))) as pool:
            pending = pool.submit(_correlations, profile, current, cols, config.correlation_threshold, None)
            tested = list(pool.map(test, cols))
            correlations_result = pending.result()
    work = [col for col, _ in tested]
    cur_missing = {c: n for c, (_, n) in zip(cols, tested, strict=True)}
    if config.calibrate:
        _calibrate(work, config)
    if config.fdr:
        _fdr(work, config)

    results = [w.result for w in work]
    drifted_cols = [r.column for r in results if r.drifted]
    n_cols = len(results)
    share = len(drifted_cols) / n_cols
    drifted_keys, key_rule = _key_rule(work, keys, config)
    reasons: list[str] = []
    if share >= config.drift_share:
        reasons.append(
            f"share rule: {len(drifted_cols)} of {n_cols} columns drifted "
            f"(share {share:.3f} >= drift_share {config.drift_share:g})"
        )
    if drifted_keys:
        reasons.append(f"key-column rule: key column(s) {drifted_keys} drifted")
    return DataDriftResult(
        dataset_drift=bool(reasons),
        drift_share=share,
        drift_share_threshold=float(config.drift_share),
        number_of_columns=n_cols,
        number_of_drifted_columns=len(drifted_cols),
        drifted_columns=drifted_cols,
        key_columns=keys,
        drifted_key_columns=drifted_keys,
        reasons=reasons,
        dataset_rule=f"dataset drift when the share of drifted columns >= {config.drift_share:g}{key_rule}",
        columns=results,
        missing_values=_missing_values(profile, cols, cur_missing, n_rows, config.missing_share_threshold),
        correlations=correlations_result,
        reference_rows=profile.rows,
        current_rows=n_rows,
        settings={"columns": cols, **config.model_dump(mode="json")},
    )
