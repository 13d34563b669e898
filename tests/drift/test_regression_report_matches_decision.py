"""``regression.html`` shows the model-drift decision it sits beside, on exactly the customers it scored.

The model-drift decision of the JSON (``model_drift``, ``model_drift_scope``) scores only the champion's
held-out customers and customers new to it when the batch's label window overlaps the champion's
training window (the bundled scenarios replay the training period). The page must say which customers
were scored and the decision's metrics, and Evidently must be given exactly those rows — not every
current customer, whose training customers make the model look far better than the decision says.
When model drift was not assessed, the page says so and shows no number.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from clvdrift import pipeline
from clvdrift.config import SCENARIO_SEED, DriftConfig
from clvdrift.data import load_transactions, simulate_scenario
from clvdrift.data.scenarios import SCENARIOS
from clvdrift.drift import detect_model_drift, report
from conftest import BUNDLED  # type: ignore[import-not-found]

os.environ.setdefault("DO_NOT_TRACK", "1")

COLUMNS = ["target", "prediction"]


# ====================================================================== what the page and Evidently say
class _Header(HTMLParser):
    """The attributes of regression.html's decision summary and of its metric rows, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.summary: dict[str, str | None] | None = None
        self.metrics: dict[str, dict[str, str | None]] = {}
        self.text: list[str] = []
        self._in_section = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("id") == report.MODEL_DRIFT_ID:
            self._in_section += 1
        elif tag == "p" and a.get("id") == report.MODEL_DRIFT_ID + "-summary":
            self.summary = a
        elif tag == "tr" and "data-metric" in a:
            self.metrics[str(a["data-metric"])] = a

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self._in_section:
            self._in_section -= 1

    def handle_data(self, data: str) -> None:
        if self._in_section:
            self.text.append(data)


def header(text: str) -> _Header:
    page = _Header()
    page.feed(text)
    assert page.summary is not None, "regression.html states no model-drift decision"
    return page


def evidently_counters(text: str) -> dict[str, list[dict[str, str]]]:
    """Every counter widget Evidently embedded in the page: title → its counters (value, label)."""
    decoder = json.JSONDecoder()
    found: dict[str, list[dict[str, str]]] = {}

    def walk(widgets: list[dict[str, Any]]) -> None:
        for w in widgets:
            params = w.get("params")
            if w.get("type") == "counter" and isinstance(params, dict):
                found.setdefault(str(w.get("title")), []).extend(params.get("counters", []))
            walk(w.get("widgets") or [])
            for tab in w.get("tabs") or []:
                walk([tab["widget"]] if isinstance(tab.get("widget"), dict) else [])

    for m in re.finditer(r"var metric_\w+ = ", text):
        doc, _ = decoder.raw_decode(text, m.end())
        walk(doc.get("widgets", []))
    return found


def counter(counters: dict[str, list[dict[str, str]]], title: str, label: str = "") -> float:
    """The number a counter shows (its first number: "149.26 (129.31)" is MAE (± std))."""
    for c in counters.get(title, []):
        if c.get("label", "") == label:
            return float(str(c["value"]).split()[0])
    raise AssertionError(f"Evidently shows no counter {title!r} {label!r}; it shows {sorted(counters)}")


@dataclass
class Runs:
    """The (current, reference) frames every Evidently report of the regression columns was run on."""

    regression: list[tuple[pd.DataFrame, pd.DataFrame | None]] = field(default_factory=list)


@pytest.fixture
def evidently_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Runs]:
    """Record the data handed to Evidently's reports whose columns are exactly target and prediction."""
    evidently = pytest.importorskip("evidently")
    runs = Runs()
    real_run = evidently.Report.run

    def run(self: Any, current_data: Any, reference_data: Any = None, *args: Any, **kwargs: Any) -> Any:
        cur = current_data.as_dataframe()
        ref = None if reference_data is None else reference_data.as_dataframe()
        if list(cur.columns) == COLUMNS:
            runs.regression.append((cur, ref))
        return real_run(self, current_data, reference_data, *args, **kwargs)

    monkeypatch.setattr(evidently.Report, "run", run)
    yield runs


def _as_float(value: Any) -> float:
    return math.nan if value is None else float(value)


# ====================================================================== the demo's scenarios
@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return load_transactions(BUNDLED)


def _detect(trained: Any, frame: pd.DataFrame, tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    root, registry, _ = trained
    result = pipeline.detect_transactions(
        frame,
        registry=registry,
        models_dir=root / "models",
        reports_dir=tmp_path / "reports",
        source="test",
        render_html=True,
        **kwargs,
    )
    doc = json.loads((tmp_path / "reports" / "latest_drift_report.json").read_text(encoding="utf-8"))
    assert doc["run_id"] == result.run_id
    return doc


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_regression_html_scores_exactly_the_customers_the_decision_scored(
    trained: Any, raw: pd.DataFrame, tmp_path: Path, scenario: str, evidently_runs: Runs
) -> None:
    _, _, train_result = trained
    doc = _detect(trained, simulate_scenario(raw, scenario, seed=SCENARIO_SEED), tmp_path)
    scope, md = doc["model_drift_scope"], doc["model_drift"]
    scored, held_out = scope["customers_scored"], train_result.training["test_customers"]
    # the scenario is the case in point: training customers are in the window and left out of the decision
    assert md["labels_available"] is True
    assert scope["customers_excluded"] > 0
    assert doc["current"]["customers"] == scored + scope["customers_excluded"]
    path = doc["reports"]["regression_html"]
    assert path, doc["reports"]

    # the data Evidently was given: the scored customers (current) and the held-out ones (reference)
    assert len(evidently_runs.regression) == 1, len(evidently_runs.regression)
    current, reference = evidently_runs.regression[0]
    assert len(current) == scored, (
        f"Evidently was given {len(current)} customers, the decision scored {scored}"
    )
    assert reference is not None and len(reference) == held_out, (
        None if reference is None else len(reference),
        held_out,
    )

    text = Path(path).read_text(encoding="utf-8")
    # what the page states at its top: the scope, the counts, the decision's metrics and verdict
    page = header(text)
    summary = page.summary or {}
    assert summary["data-assessed"] == "true"
    assert summary["data-detected"] == str(md["detected"]).lower()
    assert int(str(summary["data-customers-scored"])) == scored == len(current)
    assert int(str(summary["data-customers-excluded"])) == scope["customers_excluded"]
    assert int(str(summary["data-reference-rows"])) == held_out
    words = " ".join(page.text)
    assert f"Model drift: {'yes' if md['detected'] else 'no'}" in words
    assert f"{scored:,}" in words and scope["rule"] in words
    assert set(page.metrics) == set(md["current"]) == set(md["reference"])
    for name, row in page.metrics.items():
        for side in ("reference", "current"):
            shown, want = float(str(row[f"data-{side}"])), _as_float(md[side][name])
            assert shown == want or (math.isnan(shown) and math.isnan(want)), (name, side, shown, want)
    for reason in md["reasons"]:
        assert reason in words

    # what Evidently embedded: its row counts and metrics, computed from the data it was given (it shows
    # R² to 3 decimals and MAE to 2; the decision keeps 6 significant digits)
    counters = evidently_counters(text)
    assert counter(counters, "Row count in dataset (current)") == scored
    assert counter(counters, "Row count in dataset (reference)") == held_out
    assert counter(counters, "R2 Score (current)") == pytest.approx(md["current"]["r2"], rel=1e-5, abs=6e-4)
    assert counter(counters, "R2 Score (reference)") == pytest.approx(
        md["reference"]["r2"], rel=1e-5, abs=6e-4
    )
    mae = counter(counters, "Current: Model Quality (+/- std)", "MAE")
    assert mae == pytest.approx(md["current"]["mae"], rel=1e-5, abs=6e-3)
    mae_ref = counter(counters, "Reference: Model Quality (+/- std)", "MAE")
    assert mae_ref == pytest.approx(md["reference"]["mae"], rel=1e-5, abs=6e-3)


def test_labels_not_matured_the_page_says_not_assessed(
    trained: Any, raw: pd.DataFrame, tmp_path: Path, evidently_runs: Runs
) -> None:
    recent = raw[raw["InvoiceDate"] >= "2011-11-01"].reset_index(drop=True)  # 39 days < H = 91
    doc = _detect(trained, recent, tmp_path)
    md = doc["model_drift"]
    assert md["labels_available"] is False
    path = doc["reports"]["regression_html"]
    assert path, doc["reports"]
    text = Path(path).read_text(encoding="utf-8")
    page = header(text)
    assert (page.summary or {})["data-assessed"] == "false"
    words = " ".join(page.text)
    assert "Model drift: not assessed" in words and md["note"] in words
    assert not page.metrics
    assert not evidently_runs.regression
    assert not any("R2" in title or "Row count" in title for title in evidently_counters(text))


def test_too_few_customers_the_page_says_not_assessed(
    trained: Any, raw: pd.DataFrame, tmp_path: Path, evidently_runs: Runs
) -> None:
    frame = simulate_scenario(raw, "none", seed=SCENARIO_SEED)
    doc = _detect(trained, frame, tmp_path, config=DriftConfig(min_scored_customers=1_000_000))
    md = doc["model_drift"]
    assert md["labels_available"] is False and "min_scored_customers" in md["note"]
    text = Path(doc["reports"]["regression_html"]).read_text(encoding="utf-8")
    page = header(text)
    assert (page.summary or {})["data-assessed"] == "false"
    words = " ".join(page.text)
    assert "Model drift: not assessed" in words and md["note"] in words
    assert not page.metrics and not evidently_runs.regression


# ====================================================================== render_reports on its own
def _labelled(n: int, rng: np.random.Generator, scale: float = 1.0) -> pd.DataFrame:
    target = rng.gamma(2.0, 100.0, n)
    return pd.DataFrame({"target": target, "prediction": target * scale + rng.normal(0, 30, n)})


@pytest.mark.parametrize("evidently", [True, False], ids=["with-evidently", "without-evidently"])
def test_render_reports_refuses_rows_the_decision_did_not_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evidently: bool
) -> None:
    if evidently:
        pytest.importorskip("evidently")
    else:
        monkeypatch.setattr(report, "evidently_available", lambda: False)
    rng = np.random.default_rng(5)
    held_out, rows = _labelled(300, rng), _labelled(400, rng, scale=1.5)
    scored = rows.iloc[:250]
    reference = {"r2": 0.8, "mae": 40.0}
    md = detect_model_drift(
        reference, scored["target"].to_numpy(), scored["prediction"].to_numpy(), DriftConfig()
    )
    scope = {"customers_scored": 250, "customers_excluded": 150, "rule": "the first 250 rows"}
    kwargs: dict[str, Any] = {
        "model_drift": md,
        "model_drift_scope": scope,
        "regression_reference": held_out,
        "target": "target",
        "prediction": "prediction",
    }
    with pytest.raises(ValueError, match="not the 250 customers"):
        report.render_reports(rows, rows, tmp_path / "a", regression_current=rows, **kwargs)
    other = rows.iloc[150:]  # as many rows, not the scored ones
    with pytest.raises(ValueError, match="not the 250 customers"):
        report.render_reports(rows, rows, tmp_path / "b", regression_current=other, **kwargs)

    out = report.render_reports(rows, rows, tmp_path / "c", regression_current=scored, **kwargs)
    text = Path(out["regression_html"]).read_text(encoding="utf-8")
    page = header(text)
    assert (page.summary or {})["data-customers-scored"] == "250"
    # the held-out rows given do not have the decision's reference metrics: Evidently gets no reference
    assert (page.summary or {})["data-reference-rows"] == ""
    counters = evidently_counters(text)
    if evidently:
        assert counter(counters, "Row count in dataset") == 250
        assert not any("(reference)" in title for title in counters)
        assert "do not reproduce the decision" in text
    else:
        assert not counters and report.INSTALL_HINT in out["note"]
