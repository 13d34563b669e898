"""HTML reports of a drift check. The only module of clvdrift that imports Evidently (0.7 API).

``data_drift.html`` shows the decision clvdrift took, from its :class:`DataDriftResult` — the same
object the JSON report, the terminal and the metrics are written from: the dataset verdict (N of M
columns drifted, share, dataset drift yes/no, the rule and the reasons), then one row per tested column
with its test, statistic, p-value, threshold (and, when on, the FDR-adjusted and calibrated p-values),
what decided and the verdict, then missing values and correlations. Below it, Evidently draws the
distributions of exactly those columns (reference vs current), with no drift test of its own: Evidently's
drift preset would test other columns (e.g. the target) with its own tests and thresholds, ignore
calibration, FDR and the key-column rule, and so could contradict the decision.

``regression.html`` shows the model-drift decision, from its :class:`ModelDriftResult` and the scope the
JSON states as ``model_drift_scope``: which customers were scored (and how many were excluded, by which
rule), the decision's metrics — the champion's held-out reference vs the scored customers — with the
relative changes, thresholds and verdict, or, when model drift was not assessed (no matured labels,
too few customers), why not and no number. Below it, Evidently's regression preset is drawn on exactly
the rows the decision scored (current) and the champion's held-out rows (reference), after checking
that those rows reproduce the decision's metrics: it can show no other customers than the decision's.

Evidently is an optional extra (``pip install 'clvdrift[reports]'``); without it both decisions are still
rendered, without Evidently's plots.
"""

from __future__ import annotations

import html
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from clvdrift.drift.model_drift import ModelDriftResult
from clvdrift.drift.result import ColumnDriftResult, DataDriftResult
from clvdrift.io import atomic_write_text

INSTALL_HINT = "HTML reports need Evidently: pip install 'clvdrift[reports]'"
DATA_DRIFT_HTML = "data_drift.html"
REGRESSION_HTML = "regression.html"
DECISION_ID = "clvdrift-decision"  # the decision's <section>; its table is DECISION_ID + "-columns"
MODEL_DRIFT_ID = "clvdrift-model-drift"  # regression.html's decision; + "-summary", "-scope", "-metrics"


def evidently_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("evidently") is not None


# ====================================================================== the decision, as HTML
def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _share(value: float) -> str:
    return f"{value:.3f}"


# (header, cell) of the per-column table; the optional ones appear when a column has a value for them
_COLUMNS: list[tuple[str, Any]] = [
    ("column", lambda c: c.column),
    ("kind", lambda c: c.kind),
    ("test", lambda c: c.test),
    ("statistic", lambda c: _num(c.statistic)),
    ("p-value", lambda c: _num(c.p_value)),
    ("threshold", lambda c: _num(c.threshold)),
]
_OPTIONAL: list[tuple[str, str, Any]] = [
    ("calibrated p-value", "calibrated_p_value", lambda c: _num(c.calibrated_p_value)),
    ("calibrated threshold", "calibrated_threshold", lambda c: _num(c.calibrated_threshold)),
    ("FDR-adjusted p-value", "adjusted_p_value", lambda c: _num(c.adjusted_p_value)),
]
_LAST: list[tuple[str, Any]] = [
    ("decided by", lambda c: c.decided_by),
    ("decision rule", lambda c: c.decision_rule),
    ("effect size", lambda c: f"{_num(c.effect_size)} ({c.effect_size_name})" if c.effect_size_name else "—"),
    ("drifted", lambda c: "drifted" if c.drifted else "not drifted"),
]

_STYLE = """
<style>
#clvdrift-decision { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
#clvdrift-decision table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
#clvdrift-decision th, #clvdrift-decision td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
#clvdrift-decision th { background: #f3f3f3; }
#clvdrift-decision tr.drifted td { background: #fde8e8; }
#clvdrift-decision .verdict { font-size: 20px; font-weight: 600; }
#clvdrift-decision .verdict.drift { color: #b70000; }
#clvdrift-decision .note { color: #555; }
</style>
"""


def _column_row(col: ColumnDriftResult, cells: list[Any]) -> str:
    attrs = (
        f' class="{"drifted" if col.drifted else "kept"}" data-column="{_esc(col.column)}"'
        f' data-drifted="{str(col.drifted).lower()}" data-test="{_esc(col.test)}"'
        f' data-threshold="{_esc(repr(col.threshold))}" data-decided-by="{_esc(col.decided_by)}"'
    )
    tds = "".join(f"<td>{_esc(cell(col))}</td>" for cell in cells)
    return f"<tr{attrs}>{tds}</tr>"


def _missing_section(result: DataDriftResult) -> str:
    mv = result.missing_values
    rows = "".join(
        f"<tr><td>{_esc(c.column)}</td><td>{_share(c.reference_share)}</td><td>{_share(c.current_share)}</td>"
        f"<td>{_share(c.change)}</td><td>{'flagged' if c.flagged else 'ok'}</td></tr>"
        for c in mv.columns
    )
    return (
        "<h2>Missing values</h2>"
        f"<p>Share of missing cells: reference {_share(mv.reference_share)}, "
        f"current {_share(mv.current_share)}"
        f" (change {_share(mv.change)}, flagged above {mv.threshold:g}): "
        f"{'flagged ' + _esc(', '.join(mv.flagged_columns)) if mv.flagged else 'not flagged'}.</p>"
        "<table><thead><tr><th>column</th><th>reference share</th><th>current share</th><th>change</th>"
        f"<th>verdict</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _correlation_section(result: DataDriftResult) -> str:
    cc = result.correlations
    if cc.max_abs_change is None:
        text = f"not measured: {_esc(cc.note or 'no pair to compare')}"
    else:
        pair = " × ".join(cc.pair or [])
        text = (
            f"largest change of a Pearson correlation {_num(cc.max_abs_change)} ({_esc(pair)}: reference "
            f"{_num(cc.reference_correlation)}, current {_num(cc.current_correlation)}), flagged above "
            f"{cc.threshold:g}: {'flagged' if cc.flagged else 'not flagged'}"
        )
    return f"<h2>Correlations</h2><p>{text}.</p>"


def decision_html(result: DataDriftResult) -> str:
    """The ``<section>`` that shows the decision of ``result`` (see the module docstring)."""
    cells = [cell for _, cell in _COLUMNS]
    headers = [name for name, _ in _COLUMNS]
    for name, field, cell in _OPTIONAL:
        if any(getattr(c, field) is not None for c in result.columns):
            headers.append(name)
            cells.append(cell)
    headers += [name for name, _ in _LAST]
    cells += [cell for _, cell in _LAST]
    settings = result.settings
    options = ", ".join(
        [
            f"FDR (Benjamini-Hochberg): {'on' if settings.get('fdr') else 'off'}",
            "calibration: "
            + (
                f"on ({settings.get('calibration_trials')} permutation splits)"
                if settings.get("calibrate")
                else "off"
            ),
        ]
    )
    verdict = "yes" if result.dataset_drift else "no"
    reasons = "".join(f"<li>{_esc(r)}</li>" for r in result.reasons) or "<li>none: no rule fired</li>"
    keys = ", ".join(result.key_columns) or "none"
    drifted_keys = ", ".join(result.drifted_key_columns) or "none"
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join(_column_row(c, cells) for c in result.columns)
    return (
        f'<section id="{DECISION_ID}">{_STYLE}'
        "<h1>Data drift: the decision</h1>"
        '<p class="note">This is the decision clvdrift took, the same as drift_report.json, the terminal '
        "and the metrics say.</p>"
        f'<p id="{DECISION_ID}-summary" class="verdict{" drift" if result.dataset_drift else ""}"'
        f' data-drifted-columns="{result.number_of_drifted_columns}"'
        f' data-columns="{result.number_of_columns}" data-share="{result.drift_share!r}"'
        f' data-dataset-drift="{str(result.dataset_drift).lower()}">'
        f"{result.number_of_drifted_columns} of {result.number_of_columns} columns drifted, "
        f"share {_share(result.drift_share)} — dataset drift: {verdict}</p>"
        f"<p>Rule: {_esc(result.dataset_rule)}.</p>"
        f"<p>Why:</p><ul>{reasons}</ul>"
        f"<p>Key columns: {_esc(keys)} (drifted: {_esc(drifted_keys)}). Options: {_esc(options)}. "
        f"Rows: reference {result.reference_rows:,}, current {result.current_rows:,}.</p>"
        f'<table id="{DECISION_ID}-columns"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        f"{_missing_section(result)}{_correlation_section(result)}"
        "</section>"
    )


def _page(body: str, title: str = "Data drift") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="UTF-8">\n'
        f"<title>{_esc(title)}</title>\n</head>\n<body>\n" + body + "\n</body>\n</html>\n"
    )


PLOTS_HEADING = (
    '<section id="clvdrift-distributions" style="font-family: system-ui, sans-serif; margin: 24px 24px 0;">'
    "<h2>Distributions (Evidently)</h2>"
    '<p style="color: #555;">Reference vs current for each column of the decision above, then missing values '
    "and correlations; descriptive only: the verdicts are the decision's.</p></section>"
)


def _with_decision(evidently_page: str, decision: str, heading: str = PLOTS_HEADING) -> str | None:
    """Evidently's page with ``decision`` first in its body (None if its layout is not recognised)."""
    at = evidently_page.find("<body>")
    if at < 0:
        return None
    at += len("<body>")
    return evidently_page[:at] + "\n" + decision + "\n" + heading + "\n" + evidently_page[at:]


# ====================================================================== the model-drift decision, as HTML
# (key, name) of the decision's metrics, in this order; a metric of the decision not listed comes last
_METRICS = [
    ("r2", "R²"),
    ("mae", "MAE"),
    ("rmse", "RMSE"),
    ("spearman", "Spearman"),
    ("gini_normalized", "normalized Gini"),
    ("top10_capture", "top-10% capture"),
    ("total_ratio", "total ratio (predicted / actual)"),
]


def _metric(value: float | None) -> str:
    """A metric of the decision, to its 6 significant digits (as the JSON stores it)."""
    if value is None or not math.isfinite(value):
        return "undefined" if value is not None else "—"
    return f"{value:.6g}"


def _change(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:+.1%}" if math.isfinite(value) else ("undefined" if math.isnan(value) else str(value))


def _metrics_table(md: ModelDriftResult) -> str:
    current = md.current or {}
    names = dict(_METRICS)
    keys = [k for k, _ in _METRICS if k in md.reference or k in current]
    keys += [k for k in [*md.reference, *current] if k not in names and k not in keys]
    rules = {
        "r2": ("relative drop", md.r2_drop, md.r2_drop_threshold),
        "mae": ("relative increase", md.mae_increase, md.mae_increase_threshold),
    }
    rows = []
    for key in keys:
        ref, cur = md.reference.get(key), current.get(key)
        if key in rules:
            what, change, threshold = rules[key]
            rule = f"{what} {_change(change)} (drift above {threshold:.0%})"
        else:
            rule = "shown, not a drift rule"
        rows.append(
            f'<tr data-metric="{_esc(key)}" data-reference="{_esc(repr(ref))}"'
            f' data-current="{_esc(repr(cur))}">'
            f"<td>{_esc(names.get(key, key))}</td><td>{_metric(ref)}</td><td>{_metric(cur)}</td>"
            f"<td>{_esc(rule)}</td></tr>"
        )
    return (
        f'<table id="{MODEL_DRIFT_ID}-metrics"><thead><tr><th>metric</th>'
        "<th>reference (the champion's held-out evaluation)</th><th>current (the scored customers)</th>"
        f"<th>rule</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def model_drift_html(
    result: ModelDriftResult, scope: Mapping[str, Any], *, reference_rows: int | None = None
) -> str:
    """The ``<section>`` that shows the model-drift decision ``result`` and the ``scope`` it was scored
    on (``model_drift_scope`` of the JSON: ``customers_scored``, ``customers_excluded``, ``rule``);
    ``reference_rows`` is how many held-out rows Evidently's reference side has, if any."""
    scored, excluded = int(scope["customers_scored"]), int(scope["customers_excluded"])
    assessed = result.labels_available
    attrs = (
        f' data-assessed="{str(assessed).lower()}" data-detected="{str(result.detected).lower()}"'
        f' data-customers-scored="{scored}" data-customers-excluded="{excluded}"'
        f' data-reference-rows="{"" if reference_rows is None else reference_rows}"'
    )
    if assessed:
        verdict = f"Model drift: {'yes' if result.detected else 'no'} — scored on {scored:,} customers"
        reasons = "".join(f"<li>{_esc(r)}</li>" for r in result.reasons) or "<li>none: no rule fired</li>"
        scope_text = (
            f"Scored: {scored:,} customers of the batch; excluded: {excluded:,}. Rule: {_esc(scope['rule'])}."
        )
        body = f"{_metrics_table(result)}<p>Why:</p><ul>{reasons}</ul>" + (
            f'<p class="note">Note: {_esc(result.note)}.</p>' if result.note else ""
        )
    else:
        verdict = "Model drift: not assessed"
        scope_text = (
            f"No customer was scored and no metric was computed. Under the scoring rule {scored:,} "
            f"customers of the batch were eligible and {excluded:,} excluded: {_esc(scope['rule'])}."
        )
        body = f'<p id="{MODEL_DRIFT_ID}-why">Why not: {_esc(result.note or "no labels to score")}.</p>'
    return (
        f'<section id="{MODEL_DRIFT_ID}">{_STYLE.replace("#" + DECISION_ID, "#" + MODEL_DRIFT_ID)}'
        "<h1>Model drift: the decision</h1>"
        '<p class="note">This is the model-drift decision clvdrift took, the same as drift_report.json '
        "(<code>model_drift</code>, <code>model_drift_scope</code>), the terminal and the metrics say.</p>"
        f'<p id="{MODEL_DRIFT_ID}-summary" class="verdict{" drift" if result.detected else ""}"{attrs}>'
        f"{_esc(verdict)}</p>"
        f'<p id="{MODEL_DRIFT_ID}-scope">{scope_text}</p>'
        f"{body}</section>"
    )


def _regression_heading(current_rows: int, reference_rows: int | None, reference_note: str | None) -> str:
    reference = (
        f"the champion's {reference_rows:,} held-out customers (reference)"
        if reference_rows is not None
        else f"no reference ({_esc(reference_note or 'no held-out rows were given')})"
    )
    return (
        '<section id="clvdrift-regression" style="font-family: system-ui, sans-serif; margin: 24px 24px 0;">'
        "<h2>Regression (Evidently)</h2>"
        f'<p style="color: #555;">Evidently\'s regression preset on exactly the {current_rows:,} customers '
        f"the decision above scored (current) and {reference}; descriptive only: the verdict is the "
        "decision's.</p></section>"
    )


def _same_metrics(got: Mapping[str, float], want: Mapping[str, float]) -> bool:
    """Whether ``got`` reproduces every metric of ``want`` (the decision's, 6 significant digits)."""
    for key, value in want.items():
        mine = got.get(key, math.nan)
        if math.isnan(value) or math.isnan(mine):
            if not (math.isnan(value) and math.isnan(mine)):
                return False
        elif not math.isclose(mine, value, rel_tol=1e-5, abs_tol=1e-9):
            return False
    return True


# ====================================================================== Evidently
def _evidently_plots(reference: pd.DataFrame, current: pd.DataFrame, result: DataDriftResult) -> str:
    """Evidently's page of the distributions of ``result``'s columns (no drift test): per column its
    statistics and histogram, reference vs current, then missing values and correlations."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DatasetCorrelations, DatasetMissingValueCount
    from evidently.presets import ValueStats

    numeric = [c.column for c in result.columns if c.kind == "numerical"]
    categorical = [c.column for c in result.columns if c.kind != "numerical"]
    columns = [c.column for c in result.columns]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    ref = Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition)
    cur = Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition)
    # ValueStats(include_tests=False) fails to render (KeyError) in Evidently 0.7.23; the Report's
    # include_tests=False is what keeps every test out of the page
    metrics = [ValueStats(column=c) for c in columns]
    report = Report([*metrics, DatasetMissingValueCount(), DatasetCorrelations()], include_tests=False)
    return report.run(cur, ref).get_html_str(as_iframe=False)


def _regression(reference: pd.DataFrame | None, current: pd.DataFrame, target: str, prediction: str) -> str:
    """Evidently's page of its regression preset (and the row counts) on ``current`` vs ``reference``."""
    from evidently import DataDefinition, Dataset, Regression, Report
    from evidently.metrics import RowCount
    from evidently.presets import RegressionPreset

    columns = [target, prediction]
    definition = DataDefinition(
        numerical_columns=columns, regression=[Regression(target=target, prediction=prediction)]
    )
    ref = (
        None
        if reference is None
        else Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition)
    )
    cur = Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition)
    report = Report([RowCount(), RegressionPreset()], include_tests=False)
    return report.run(cur, ref).get_html_str(as_iframe=False)


def _regression_page(
    model_drift: ModelDriftResult,
    scope: Mapping[str, Any],
    reference: pd.DataFrame | None,
    current: pd.DataFrame | None,
    target: str | None,
    prediction: str | None,
    *,
    has_evidently: bool,
    notes: list[str],
) -> str:
    """``regression.html``: the model-drift decision, then Evidently's regression preset on exactly the
    rows it scored. Raises ValueError when ``current`` is not those rows."""
    from clvdrift.model.evaluate import regression_metrics

    if not model_drift.labels_available:
        return _page(model_drift_html(model_drift, scope), "Model drift")
    if current is None or not target or not prediction:
        raise ValueError(
            "model drift was assessed: regression.html needs the scored rows, target and prediction"
        )
    if len(current) != int(scope["customers_scored"]) or not _same_metrics(
        regression_metrics(current[target].to_numpy(), current[prediction].to_numpy()),
        model_drift.current or {},
    ):
        raise ValueError(
            f"the {len(current):,} rows given for regression.html are not the "
            f"{int(scope['customers_scored']):,} customers the model-drift decision scored"
        )
    reference_note = None
    if reference is not None and not _same_metrics(
        regression_metrics(reference[target].to_numpy(), reference[prediction].to_numpy()),
        model_drift.reference,
    ):
        reference, reference_note = (
            None,
            "the held-out rows given do not reproduce the decision's reference metrics, so Evidently "
            "draws no reference",
        )
    reference_rows = None if reference is None else len(reference)
    decision = model_drift_html(model_drift, scope, reference_rows=reference_rows)
    page = None
    if has_evidently:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                page = _with_decision(
                    _regression(reference, current, target, prediction),
                    decision,
                    _regression_heading(len(current), reference_rows, reference_note),
                )
            if page is None:
                notes.append("Evidently's page layout was not recognised: no regression plots")
        except Exception as exc:  # the plots are an aid; the decision must still be written
            notes.append(f"Evidently could not draw the regression report ({type(exc).__name__}: {exc})")
    return page if page is not None else _page(decision, "Model drift")


def render_reports(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out_dir: Path,
    *,
    data_drift: DataDriftResult | None = None,
    model_drift: ModelDriftResult | None = None,
    model_drift_scope: Mapping[str, Any] | None = None,
    regression_reference: pd.DataFrame | None = None,
    regression_current: pd.DataFrame | None = None,
    target: str | None = None,
    prediction: str | None = None,
    numerical_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write ``data_drift.html`` (the decision ``data_drift``, then Evidently's distributions of its
    columns, ``reference`` vs ``current``) and ``regression.html`` (the decision ``model_drift`` on
    ``model_drift_scope``, then Evidently's regression preset) into ``out_dir``. Returns
    ``{"data_drift_html", "regression_html", "note"}`` (paths as strings, or None).

    The data-drift page covers exactly ``data_drift``'s columns, kinds, tests and verdicts; without
    ``data_drift`` no data-drift page is written (Evidently's own drift verdicts are never shown).
    ``numerical_columns`` and ``categorical_columns`` are accepted for older callers and not used.

    The regression page is written when ``model_drift`` is given, with ``model_drift_scope`` (the JSON's
    ``customers_scored``, ``customers_excluded``, ``rule``). When model drift was assessed,
    ``regression_current`` must be exactly the rows it scored (``target`` and ``prediction`` columns):
    their count must be ``customers_scored`` and their metrics the decision's, else ValueError.
    ``regression_reference`` (the champion's held-out rows) is Evidently's reference when its metrics
    are the decision's reference metrics. ``reference`` and ``current`` are never used for it.
    """
    del numerical_columns, categorical_columns  # the decision's own columns and kinds are rendered
    has_evidently = evidently_available()
    if data_drift is None and model_drift is None and not has_evidently:
        return {"data_drift_html": None, "regression_html": None, "note": INSTALL_HINT}
    if model_drift is not None and model_drift_scope is None:
        raise ValueError("regression.html needs the scope the model-drift decision was scored on")
    notes: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path: Path | None = None
    regression_path: Path | None = None
    if data_drift is None:
        notes.append("no data-drift report: no drift decision was given to render")
    if not has_evidently:
        notes.append(INSTALL_HINT + " (the pages show the decisions without Evidently's plots)")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if data_drift is not None:
        decision = decision_html(data_drift)
        page = None
        if has_evidently:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    page = _with_decision(_evidently_plots(reference, current, data_drift), decision)
                if page is None:
                    notes.append("Evidently's page layout was not recognised: no distribution plots")
            except Exception as exc:  # the plots are an aid; the decision must still be written
                notes.append(f"Evidently could not draw the distributions ({type(exc).__name__}: {exc})")
        data_path = out_dir / DATA_DRIFT_HTML
        atomic_write_text(data_path, page if page is not None else _page(decision))
    if model_drift is not None and model_drift_scope is not None:
        text = _regression_page(
            model_drift,
            model_drift_scope,
            regression_reference,
            regression_current,
            target,
            prediction,
            has_evidently=has_evidently,
            notes=notes,
        )
        regression_path = out_dir / REGRESSION_HTML
        atomic_write_text(regression_path, text)
    else:
        notes.append("no regression report: no model-drift decision was given to render")
    return {
        "data_drift_html": str(data_path) if data_path else None,
        "regression_html": str(regression_path) if regression_path else None,
        "note": "; ".join(notes) or None,
    }
