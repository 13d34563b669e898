"""HTML reports of a drift check. The only module of clvdrift that imports Evidently (0.7 API).

``data_drift.html`` shows the decision clvdrift took, from its :class:`DataDriftResult` — the same
object the JSON report, the terminal and the metrics are written from: the dataset verdict (N of M
columns drifted, share, dataset drift yes/no, the rule and the reasons), then one row per tested column
with its test, statistic, p-value, threshold (and, when on, the FDR-adjusted and calibrated p-values),
what decided and the verdict, then missing values and correlations. Below it, Evidently draws the
distributions of exactly those columns (reference vs current), with no drift test of its own: Evidently's
drift preset would test other columns (e.g. the target) with its own tests and thresholds, ignore
calibration, FDR and the key-column rule, and so could contradict the decision.

Evidently is an optional extra (``pip install -e '.[reports]'``); without it the decision is still
rendered, without the plots and without ``regression.html``.
"""

from __future__ import annotations

import html
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from clvdrift.drift.result import ColumnDriftResult, DataDriftResult
from clvdrift.io import atomic_write_text

INSTALL_HINT = "HTML reports need Evidently: pip install -e '.[reports]'"
DATA_DRIFT_HTML = "data_drift.html"
REGRESSION_HTML = "regression.html"
DECISION_ID = "clvdrift-decision"  # the decision's <section>; its table is DECISION_ID + "-columns"


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


def _page(body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="UTF-8">\n'
        "<title>Data drift</title>\n</head>\n<body>\n" + body + "\n</body>\n</html>\n"
    )


PLOTS_HEADING = (
    '<section id="clvdrift-distributions" style="font-family: system-ui, sans-serif; margin: 24px 24px 0;">'
    "<h2>Distributions (Evidently)</h2>"
    '<p style="color: #555;">Reference vs current for each column of the decision above, then missing values '
    "and correlations; descriptive only: the verdicts are the decision's.</p></section>"
)


def _with_decision(evidently_page: str, decision: str) -> str | None:
    """Evidently's page with ``decision`` first in its body (None if its layout is not recognised)."""
    at = evidently_page.find("<body>")
    if at < 0:
        return None
    at += len("<body>")
    return evidently_page[:at] + "\n" + decision + "\n" + PLOTS_HEADING + "\n" + evidently_page[at:]


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


def _regression(
    reference: pd.DataFrame, current: pd.DataFrame, target: str, prediction: str, path: Path
) -> None:
    from evidently import DataDefinition, Dataset, Regression, Report
    from evidently.presets import RegressionPreset

    columns = [target, prediction]
    definition = DataDefinition(
        numerical_columns=columns, regression=[Regression(target=target, prediction=prediction)]
    )
    ref = Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition)
    cur = Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition)
    Report([RegressionPreset()]).run(cur, ref).save_html(str(path))  # save_html writes nothing given a Path


def render_reports(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out_dir: Path,
    *,
    data_drift: DataDriftResult | None = None,
    target: str | None = None,
    prediction: str | None = None,
    numerical_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write ``data_drift.html`` (the decision ``data_drift``, then Evidently's distributions of its
    columns) and, when ``target`` and ``prediction`` are given and Evidently is installed,
    ``regression.html`` into ``out_dir``. Returns ``{"data_drift_html", "regression_html", "note"}``
    (paths as strings, or None).

    The data-drift page covers exactly ``data_drift``'s columns, kinds, tests and verdicts; without
    ``data_drift`` no data-drift page is written (Evidently's own drift verdicts are never shown).
    ``numerical_columns`` and ``categorical_columns`` are accepted for older callers and not used.
    """
    del numerical_columns, categorical_columns  # the decision's own columns and kinds are rendered
    has_evidently = evidently_available()
    if data_drift is None and not has_evidently:
        return {"data_drift_html": None, "regression_html": None, "note": INSTALL_HINT}
    notes: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path: Path | None = None
    regression_path: Path | None = None
    if data_drift is None:
        notes.append("no data-drift report: no drift decision was given to render")
    if not has_evidently:
        notes.append(INSTALL_HINT + " (the data-drift page shows the decision without distribution plots)")
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
    if has_evidently and target and prediction:
        regression_path = out_dir / REGRESSION_HTML
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _regression(reference, current, target, prediction, regression_path)
    elif has_evidently:
        notes.append("no regression report: current labels are not available")
    return {
        "data_drift_html": str(data_path) if data_path else None,
        "regression_html": str(regression_path) if regression_path else None,
        "note": "; ".join(notes) or None,
    }
