"""The data-drift HTML shows exactly the decision it sits beside (issue 15).

Every drift verdict the written ``data_drift.html`` states — the decision table and summary clvdrift
renders, and any verdict Evidently would render itself (its drift table and "n out of m" summary) — must
equal the JSON decision: the same columns, tests, thresholds, drifted columns, count, share and dataset
verdict. Checked on every demo scenario with and without calibration and FDR, and on small synthetic
windows where calibration and FDR overturn the raw tests' verdicts.
"""

from __future__ import annotations

import json
import re
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
from clvdrift.drift import build_profile, detect_data_drift, report
from conftest import BUNDLED  # type: ignore[import-not-found]

OPTIONS = {
    "default": {},
    "calibrate": {"calibrate": True},
    "fdr": {"fdr": True},
    "calibrate+fdr": {"calibrate": True, "fdr": True},
}


# ====================================================================== what the HTML says
@dataclass
class Claim:
    """One drift verdict stated by the page: per column (``columns``: name → drifted, with ``tests`` and
    ``thresholds`` when shown) and/or for the dataset (``drifted_count`` of ``total``, ``share``,
    ``dataset_drift``)."""

    source: str
    columns: dict[str, bool] = field(default_factory=dict)
    tests: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, str] = field(default_factory=dict)
    drifted_count: int | None = None
    total: int | None = None
    share: float | None = None
    dataset_drift: bool | None = None


class _Page(HTMLParser):
    """The visible text of the decision table's cells (by row) and of the summary paragraph."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.summary: str | None = None
        self._in_table = False
        self._cell: list[str] | None = None
        self._in_summary = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ident = dict(attrs).get("id")
        if tag == "table" and ident == "clvdrift-decision-columns":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag in ("td", "th"):
            self._cell = []
        elif tag == "p" and ident == "clvdrift-decision-summary":
            self._in_summary, self.summary = True, ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._in_table:
            self._in_table = False
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "p" and self._in_summary:
            self._in_summary = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_summary:
            self.summary = (self.summary or "") + data


SUMMARY = re.compile(r"(\d+) of (\d+) columns drifted, share ([0-9.]+) — dataset drift: (yes|no)")
EVIDENTLY_SUMMARY = re.compile(r"of columns \((\d+) out of (\d+)\)")
EVIDENTLY_ROW = re.compile(
    r'"column_name": "((?:[^"\\]|\\.)*)"(?:(?!"column_name").)*?"data_drift": "(Detected|Not Detected)"', re.S
)


def drift_claims(text: str) -> list[Claim]:
    """Every drift verdict ``text`` (an HTML page) states."""
    claims = []
    page = _Page()
    page.feed(text)
    if page.rows:
        header, *rows = page.rows
        at = {name: i for i, name in enumerate(header)}
        table = Claim("decision table")
        for cells in rows:
            name = cells[at["column"]]
            assert cells[at["drifted"]] in ("drifted", "not drifted"), cells
            table.columns[name] = cells[at["drifted"]] == "drifted"
            table.tests[name] = cells[at["test"]]
            table.thresholds[name] = cells[at["threshold"]]
        claims.append(table)
    if page.summary is not None:
        m = SUMMARY.search(page.summary)
        assert m, page.summary
        claims.append(
            Claim(
                "decision summary",
                drifted_count=int(m[1]),
                total=int(m[2]),
                share=float(m[3]),
                dataset_drift=m[4] == "yes",
            )
        )
    evidently_rows = {
        json.loads(f'"{name}"'): verdict == "Detected" for name, verdict in EVIDENTLY_ROW.findall(text)
    }
    if evidently_rows:
        claims.append(Claim("Evidently drift table", columns=evidently_rows))
    for drifted, total in EVIDENTLY_SUMMARY.findall(text):
        claims.append(Claim("Evidently drift summary", drifted_count=int(drifted), total=int(total)))
    return claims


def _threshold_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def assert_html_matches(html_path: str | Path, data_drift: dict[str, Any]) -> None:
    """Every verdict of the page at ``html_path`` equals the JSON decision ``data_drift``, and the page
    has the decision's own table and summary."""
    claims = drift_claims(Path(html_path).read_text(encoding="utf-8"))
    assert claims, "the HTML states no drift verdict at all"
    columns = {c["column"]: c for c in data_drift["columns"]}
    drifted = set(data_drift["drifted_columns"])
    for claim in claims:
        if claim.columns:
            extra, missing = (
                sorted(set(claim.columns) - set(columns)),
                sorted(set(columns) - set(claim.columns)),
            )
            assert not extra and not missing, (
                claim.source,
                "columns not decided",
                extra,
                "left out",
                missing,
            )
            shown = {c for c, d in claim.columns.items() if d}
            assert shown == drifted, (claim.source, "drifted", sorted(shown), sorted(drifted))
        for name, test in claim.tests.items():
            assert test == columns[name]["test"], (claim.source, name)
        for name, threshold in claim.thresholds.items():
            assert threshold == _threshold_text(columns[name]["threshold"]), (claim.source, name)
        if claim.drifted_count is not None:
            got = (claim.drifted_count, claim.total)
            want = (data_drift["number_of_drifted_columns"], data_drift["number_of_columns"])
            assert got == want, (claim.source, "N of M", got, want)
        if claim.share is not None:
            assert claim.share == pytest.approx(data_drift["drift_share"], abs=5e-4), claim.source
        if claim.dataset_drift is not None:
            assert claim.dataset_drift == data_drift["dataset_drift"], claim.source
    sources = {c.source for c in claims}
    assert {"decision table", "decision summary"} <= sources, sources


# ====================================================================== the demo's scenarios
@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return load_transactions(BUNDLED)


@pytest.mark.parametrize("options", list(OPTIONS), ids=list(OPTIONS))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_html_drifted_columns_equal_the_json_decision(
    trained: Any, raw: pd.DataFrame, tmp_path: Path, scenario: str, options: str
) -> None:
    root, registry, _ = trained
    result = pipeline.detect_transactions(
        simulate_scenario(raw, scenario, seed=SCENARIO_SEED),
        registry=registry,
        models_dir=root / "models",
        reports_dir=tmp_path / "reports",
        source=scenario,
        config=DriftConfig(**OPTIONS[options]),
    )
    doc = json.loads((tmp_path / "reports" / "latest_drift_report.json").read_text(encoding="utf-8"))
    assert doc["run_id"] == result.run_id
    assert doc["reports"]["data_drift_html"], doc["reports"]
    assert "target" not in {c["column"] for c in doc["data_drift"]["columns"]}  # a label, not a feature
    assert_html_matches(doc["reports"]["data_drift_html"], doc["data_drift"])


# ====================================================================== verdicts overturned by the options
NUM = ["a", "b", "c", "d"]
CAT = ["k"]


def _frame(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1, n),
            "b": rng.normal(shift, 1, n),
            "c": rng.lognormal(0, 1, n),
            "d": rng.normal(0, 1, n),
            "k": rng.choice(list("uvwx"), n),
        }
    )


@pytest.mark.parametrize("evidently", [True, False], ids=["with-evidently", "without-evidently"])
@pytest.mark.parametrize(
    ("n_ref", "n_cur", "options"),
    [(3000, 80, "calibrate"), (3000, 80, "calibrate+fdr"), (600, 60, "fdr")],
)
def test_html_follows_the_options_not_the_raw_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_ref: int, n_cur: int, options: str, evidently: bool
) -> None:
    """Small windows: the raw tests flag columns that calibration or FDR clear; the page shows the
    cleared verdicts (the decision), with or without Evidently's plots."""
    if evidently:
        pytest.importorskip("evidently")
    else:
        monkeypatch.setattr(report, "evidently_available", lambda: False)
    reference = current = pd.DataFrame()
    result = None
    for seed in range(2, 12):  # the first seed whose options overturn a raw verdict
        rng = np.random.default_rng(seed)
        reference, current = _frame(n_ref, rng), _frame(n_cur, rng, 0.15 if n_ref > 1000 else 0.3)
        profile = build_profile(reference, numerical_columns=NUM, categorical_columns=CAT)
        config = DriftConfig(key_columns=(), **OPTIONS[options])
        result = detect_data_drift(profile, current, config)
        if any(c.raw_drifted != c.drifted for c in result.columns):
            break
    assert result is not None and any(c.raw_drifted != c.drifted for c in result.columns)
    out = report.render_reports(reference, current, tmp_path / "r", data_drift=result)
    assert out["data_drift_html"] == str(tmp_path / "r" / "data_drift.html")
    if not evidently:
        assert report.INSTALL_HINT in out["note"]
    assert_html_matches(out["data_drift_html"], json.loads(json.dumps(result.to_dict())))
    text = Path(out["data_drift_html"]).read_text(encoding="utf-8")
    assert ("Distributions (Evidently)" in text) is evidently
