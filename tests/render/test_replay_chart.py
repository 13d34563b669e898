"""Replay charts (issue 9): the SVG and HTML built from hand-made timeline/summary dicts whose steps are
validated against docs/replay_timeline.schema.json — lines and gaps, retrain markers, the drift heat map
and its policy, escaping, self-containment, files, determinism and thinned date labels."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from clvdrift.errors import DataError
from clvdrift.pipeline.replay import TIMELINE_SCHEMA
from clvdrift.render.replay_chart import (
    heatmap_policy,
    nice_ticks,
    replay_html,
    replay_svg,
    write_charts,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "replay_timeline.schema.json").read_text())
SVG = "{http://www.w3.org/2000/svg}"
COLUMNS = ["recency", "frequency", "monetary", "tenure", "country"]
UNSET: Any = object()


def make_step(
    policy: str,
    step: int,
    day: str,
    *,
    spearman: float | None = 0.5,
    mae: float | None = 100.0,
    matured: bool = True,
    gate: str | None = None,
    drifted: tuple[str, ...] = (),
    dataset_drift: bool = False,
    model_drift: bool = False,
    column_drift: Any = UNSET,
) -> dict[str, Any]:
    """One timeline step with every field the schema requires (and ``column_drift`` unless None)."""
    record: dict[str, Any] = {
        "step": step,
        "date": day,
        "policy": policy,
        "run_id": f"replay-{policy.replace(':', '-')}-{day}",
        "status": "success",
        "error": None,
        "rows": 1000 + step,
        "cutoff": day,
        "drifted_columns": list(drifted),
        "dataset_drift": dataset_drift,
        "model_drift": model_drift,
        "model_drift_assessable": matured,
        "retraining_required": bool(drifted) or model_drift,
        "retrained": gate is not None,
        "gate_outcome": gate,
        "gate_reason": "too little history" if gate == "error" else None,
        "challenger_version": "v2" if gate in ("promoted", "rejected") else None,
        "champion_version": "v1",
        "champion_after": "v2" if gate == "promoted" else "v1",
        "champion_reference_spearman": 0.55,
        "quality": (
            {"spearman": spearman, "gini_normalized": 0.3, "mae": mae, "total_ratio": 1.0}
            if matured
            else None
        ),
        "customers_scored": 50 if matured else None,
    }
    if column_drift is UNSET:
        column_drift = {
            c: {
                "drifted": c in drifted,
                "test": "chi2" if c == "country" else "ks",
                "statistic": 0.31 if c in drifted else 0.05,
                "p_value": 0.0004 if c in drifted else 0.42,
            }
            for c in COLUMNS
        }
    if column_drift is not None:
        record["column_drift"] = column_drift
    return record


def dates(count: int, start: date = date(2011, 1, 3), step_days: int = 7) -> list[str]:
    return [(start + timedelta(days=step_days * i)).isoformat() for i in range(count)]


def validate(steps: list[dict[str, Any]]) -> None:
    """The steps match the timeline schema; steps without ``column_drift`` (timelines written before it
    existed, which the chart still reads) match it with that one field not required."""
    step_schema = SCHEMA["$defs"]["step"]
    legacy = {**step_schema, "required": [k for k in step_schema["required"] if k != "column_drift"]}
    legacy_schema = {**SCHEMA, "$defs": {**SCHEMA["$defs"], "step": legacy}}
    if "column_drift" not in step_schema["properties"]:  # a schema older than the field
        steps = [{k: v for k, v in s.items() if k != "column_drift"} for s in steps]
    for schema, group in (
        (SCHEMA, [s for s in steps if "column_drift" in s]),
        (legacy_schema, [s for s in steps if "column_drift" not in s]),
    ):
        jsonschema.Draft202012Validator(schema).validate({"schema": TIMELINE_SCHEMA, "steps": group})


def build(
    steps: list[dict[str, Any]],
    policies: list[str],
    days: list[str],
    *,
    check: bool = True,
    source: str = "x.csv",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """timeline and summary dicts shaped like replay's timeline.json / summary.json."""
    if check:
        validate(steps)
    summaries = []
    for policy in policies:
        own = [s for s in steps if s["policy"] == policy]
        matured = [
            s["quality"]["spearman"] for s in own if s["quality"] and s["quality"]["spearman"] is not None
        ]
        summaries.append(
            {
                "policy": policy,
                "steps": len(own),
                "retrains": sum(s["gate_outcome"] in ("promoted", "rejected") for s in own),
                "retrain_errors": sum(s["gate_outcome"] == "error" for s in own),
                "promotions": sum(s["gate_outcome"] == "promoted" for s in own),
                "alarms": sum(s["retraining_required"] for s in own),
                "alarm_rate": None,
                "data_drift_alarms": sum(s["dataset_drift"] for s in own),
                "model_drift_alarms": sum(s["model_drift"] for s in own),
                "matured_steps": len(matured),
                "mean_spearman": sum(matured) / len(matured) if matured else None,
                "worst_spearman": min(matured) if matured else None,
                "mean_mae": 100.0 if matured else None,
                "worst_mae": 120.0 if matured else None,
                "confirmed_alarms": 1,
                "judged_alarms": 2,
                "alarm_precision": 0.5,
                "paired_mean_spearman": sum(matured) / len(matured) - 0.005 if matured else None,
                "paired_mean_mae": 95.0 if matured else None,
            }
        )
    summary = {
        "schema": "clvdrift.replay.summary/1",
        "source": source,
        "start": days[0],
        "end": days[-1],
        "step_days": 7,
        "dates": days,
        "policies": policies,
        "horizon_days": 90,
        "lookback_days": 365,
        "summaries": summaries,
        "timeline_path": "timeline.json",
        "summary_path": "summary.json",
        "seconds": 1.0,
    }
    return {"schema": TIMELINE_SCHEMA, "steps": steps}, summary


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def by_class(root: ET.Element, name: str, tag: str | None = None) -> list[ET.Element]:
    return [
        e
        for e in root.iter()
        if name in (e.get("class") or "").split() and (tag is None or e.tag == SVG + tag)
    ]


def standard() -> tuple[dict[str, Any], dict[str, Any]]:
    """Three policies, six steps: a gap for never, retrains of every kind, drift for on-drift."""
    days = dates(6)
    steps = []
    never_quality = [0.5, 0.48, None, 0.45, 0.44, 0.40]
    for i, day in enumerate(days):
        q = never_quality[i]
        steps.append(make_step("never", i + 1, day, spearman=q, matured=q is not None))
    gates_every = [None, "error", None, "promoted", None, "rejected"]
    for i, day in enumerate(days):
        steps.append(make_step("every:2", i + 1, day, spearman=0.5 - 0.01 * i, gate=gates_every[i]))
    drift_plan: list[tuple[str, ...]] = [(), ("recency",), ("recency", "country"), (), ("monetary",), ()]
    gates_drift = [None, "promoted", "rejected", None, "promoted", None]
    for i, day in enumerate(days):
        steps.append(
            make_step(
                "on-drift",
                i + 1,
                day,
                spearman=0.52 - 0.02 * i,
                gate=gates_drift[i],
                drifted=drift_plan[i],
                dataset_drift=len(drift_plan[i]) >= 2,
                model_drift=i == 4,
                matured=i != 0,
            )
        )
    return build(steps, ["never", "every:2", "on-drift"], days)


def numbers_in_geometry(root: ET.Element) -> list[tuple[str, float, float | None]]:
    """(attribute, x-or-value, y) of every coordinate in the document."""
    found: list[tuple[str, float, float | None]] = []
    for e in root.iter():
        for name in ("x", "x1", "x2", "cx"):
            if e.get(name) is not None:
                found.append((name, float(e.get(name, "")), None))
        for name in ("y", "y1", "y2", "cy"):
            if e.get(name) is not None:
                found.append((name, float(e.get(name, "")), None))
        if e.get("points"):
            for pair in e.get("points", "").split():
                px, py = pair.split(",")
                found.append(("points", float(px), float(py)))
        if e.tag == SVG + "path" and e.get("d"):
            values = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", e.get("d", ""))]
            found.extend(("d", values[i], values[i + 1]) for i in range(0, len(values) - 1, 2))
    return found


def assert_geometry_inside(svg: str) -> None:
    """No NaN/inf anywhere, every coordinate inside the viewBox."""
    assert not re.search(r"\b(nan|inf)\b", svg, flags=re.IGNORECASE)
    root = parse(svg)
    _, _, width, height = (float(v) for v in root.get("viewBox", "").split())
    for name, first, second in numbers_in_geometry(root):
        if name in ("x", "x1", "x2", "cx"):
            assert 0 <= first <= width, (name, first)
        elif name in ("y", "y1", "y2", "cy"):
            assert 0 <= first <= height, (name, first)
        else:
            assert 0 <= first <= width and second is not None and 0 <= second <= height, (name, first, second)


# --- the SVG document ---------------------------------------------------------------------------------


def test_svg_is_a_standalone_svg_document():
    svg = replay_svg(*standard())
    root = parse(svg)
    assert root.tag == SVG + "svg"
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert root.get("width") and root.get("height")
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert root.get("font-family") == "sans-serif"
    background = next(e for e in root if e.tag == SVG + "rect")  # the first drawn shape
    assert background.get("fill") == "#fff" and background.get("width") == root.get("width")
    assert_geometry_inside(svg)


def test_one_line_group_per_policy_with_a_matured_step_and_every_policy_in_the_legend():
    days = dates(4)
    steps = [make_step("never", i + 1, d, spearman=0.4 + 0.01 * i) for i, d in enumerate(days)]
    steps += [make_step("every:2", i + 1, d, spearman=0.5) for i, d in enumerate(days)]
    steps += [make_step("on-drift", i + 1, d, matured=False) for i, d in enumerate(days)]  # never matured
    root = parse(replay_svg(*build(steps, ["never", "every:2", "on-drift"], days)))
    groups = by_class(root, "line-spearman", "g")
    assert [g.get("data-policy") for g in groups] == ["never", "every:2"]
    legend = [e.get("data-policy") for e in by_class(root, "legend-policy")]
    assert legend == ["never", "every:2", "on-drift"]
    texts = {e.get("data-policy"): "".join(e.itertext()) for e in by_class(root, "legend-policy")}
    assert "no matured step" in texts["on-drift"] and "no matured step" not in texts["never"]
    colours = {g.find(SVG + "polyline").get("stroke") for g in groups}  # type: ignore[union-attr]
    assert len(colours) == 2


def test_a_null_quality_step_splits_the_line_never_interpolated():
    days = dates(7)
    quality = [0.5, 0.49, None, 0.47, 0.46, 0.45, 0.44]
    steps = [
        make_step("never", i + 1, d, spearman=q, matured=q is not None)
        for i, (d, q) in enumerate(zip(days, quality, strict=True))
    ]
    # a matured window whose Spearman is undefined is a gap too
    spearman = [0.5, 0.5, 0.5, None, 0.5, 0.5, 0.5]
    steps += [
        make_step("on-drift", i + 1, d, spearman=s)
        for i, (d, s) in enumerate(zip(days, spearman, strict=True))
    ]
    steps += [make_step("every:3", i + 1, d) for i, d in enumerate(days)]
    root = parse(replay_svg(*build(steps, ["never", "on-drift", "every:3"], days)))
    groups = {g.get("data-policy"): g for g in by_class(root, "line-spearman", "g")}
    segments = {p: g.findall(SVG + "polyline") for p, g in groups.items()}
    assert [len(s.get("points", "").split()) for s in segments["never"]] == [2, 4]
    assert [len(s.get("points", "").split()) for s in segments["on-drift"]] == [3, 3]
    assert [len(s.get("points", "").split()) for s in segments["every:3"]] == [7]
    # the gap: the first segment ends at step 2's x, the second starts at step 4's x
    first_end = float(segments["never"][0].get("points", "").split()[-1].split(",")[0])
    second_start = float(segments["never"][1].get("points", "").split()[0].split(",")[0])
    step_x = second_start - first_end
    assert step_x > 0 and first_end == pytest.approx(
        float(segments["every:3"][0].get("points", "").split()[1].split(",")[0])
    )


def test_retrain_markers_one_per_gate_outcome_by_kind():
    timeline, summary = standard()
    root = parse(replay_svg(timeline, summary))
    markers = by_class(root, "marker")
    for outcome in ("promoted", "rejected", "error"):
        expected = sum(s["gate_outcome"] == outcome for s in timeline["steps"])
        got = [m for m in markers if m.get("data-outcome") == outcome]
        assert len(got) == expected, outcome
    assert len(markers) == sum(s["gate_outcome"] is not None for s in timeline["steps"])
    promoted = next(m for m in markers if m.get("data-outcome") == "promoted")
    rejected = next(m for m in markers if m.get("data-outcome") == "rejected")
    error = next(m for m in markers if m.get("data-outcome") == "error")
    assert promoted.find(SVG + "circle").get("fill") != "#fff"  # type: ignore[union-attr]
    assert rejected.find(SVG + "circle").get("fill") == "#fff"  # type: ignore[union-attr]
    assert error.find(SVG + "path") is not None and error.find(SVG + "circle") is None
    assert "too little history" in "".join(error.itertext())


def test_heat_map_has_one_cell_per_column_and_step_and_the_drifted_ones():
    timeline, summary = standard()
    root = parse(replay_svg(timeline, summary))
    cells = by_class(root, "cell", "rect")
    on_drift = [s for s in timeline["steps"] if s["policy"] == "on-drift"]
    assert len(cells) == len(COLUMNS) * len(summary["dates"])
    drifted = sum(v["drifted"] for s in on_drift for v in s["column_drift"].values())
    assert drifted == 4
    assert sum(c.get("data-state") == "drifted" for c in cells) == drifted
    assert sum(c.get("data-state") == "stable" for c in cells) == len(cells) - drifted
    rows = [e.text for e in by_class(root, "row-label")]
    assert rows == [*COLUMNS, "model drift"]
    # tooltips: "column date: statistic / p-value / test"
    tip = next(c for c in cells if c.get("data-state") == "drifted").find(SVG + "title").text  # type: ignore[union-attr]
    assert tip == f"recency {summary['dates'][1]}: statistic 0.310 / p-value 0.0004 / ks (drifted)"
    assert all(c.find(SVG + "title") is not None for c in cells)
    # dataset drift bars and the model-drift row
    assert len(by_class(root, "dataset-drift", "rect")) == sum(s["dataset_drift"] for s in on_drift) == 1
    model = by_class(root, "model-cell", "rect")
    assert len(model) == len(summary["dates"])
    assert [m.get("data-state") for m in model] == [
        "unknown",
        "stable",
        "stable",
        "stable",
        "drifted",
        "stable",
    ]


def test_heat_map_unknown_cells_when_a_column_was_not_tested_or_the_step_is_missing():
    days = dates(3)
    steps = [
        make_step("on-drift", 1, days[0], drifted=("recency",)),
        make_step(
            "on-drift",
            2,
            days[1],
            column_drift={"recency": {"drifted": False, "test": "ks", "statistic": None, "p_value": None}},
        ),
    ]  # no record at all for the third date
    root = parse(replay_svg(*build(steps, ["on-drift"], days)))
    cells = by_class(root, "cell", "rect")
    assert len(cells) == len(COLUMNS) * 3
    states = [c.get("data-state") for c in cells]
    assert states.count("drifted") == 1
    assert states.count("unknown") == (len(COLUMNS) - 1) + len(COLUMNS)
    recency_2 = next(c for c in cells if c.get("data-date") == days[1] and c.get("data-state") == "stable")
    assert (
        recency_2.find(SVG + "title").text == f"recency {days[1]}: statistic — / p-value — / ks (not drifted)"
    )  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("policies", "chosen"),
    [
        (["never", "every:2", "on-drift-fdr", "on-drift"], "on-drift-fdr"),
        (["every:4", "on-drift-lookback"], "on-drift-lookback"),
        (["every:2", "never"], "every:2"),
        (["never"], "never"),
    ],
)
def test_heat_map_shows_the_first_on_drift_policy_else_the_first(policies, chosen):
    assert heatmap_policy(policies) == chosen
    days = dates(3)
    steps = []
    for policy in policies:  # only the chosen policy has drift: the cells tell which one is shown
        steps += [
            make_step(policy, i + 1, d, drifted=("tenure",) if policy == chosen else ())
            for i, d in enumerate(days)
        ]
    root = parse(replay_svg(*build(steps, policies, days)))
    title = by_class(root, "heatmap-title")[0]
    assert title.get("data-policy") == chosen and chosen in "".join(title.itertext())
    assert sum(c.get("data-state") == "drifted" for c in by_class(root, "cell")) == 3


def test_heat_map_falls_back_to_drifted_columns_without_column_drift():
    days = dates(4)
    plan: list[tuple[str, ...]] = [(), ("monetary",), ("recency", "monetary"), ()]
    steps = [make_step("on-drift", i + 1, d, drifted=plan[i], column_drift=None) for i, d in enumerate(days)]
    root = parse(replay_svg(*build(steps, ["on-drift"], days)))
    assert [e.text for e in by_class(root, "row-label")] == ["monetary", "recency", "model drift"]
    cells = by_class(root, "cell", "rect")
    assert len(cells) == 2 * 4
    monetary, recency = ["stable", "drifted", "drifted", "stable"], ["stable", "stable", "drifted", "stable"]
    assert [c.get("data-state") for c in cells] == [*monetary, *recency]


# --- escaping, HTML, files ------------------------------------------------------------------------------


def test_policy_names_and_source_are_escaped():
    weird = 'on-drift<&"x'
    days = dates(3)
    steps = [make_step(weird, i + 1, d, gate="rejected" if i == 1 else None) for i, d in enumerate(days)]
    steps += [make_step("never", i + 1, d) for i, d in enumerate(days)]
    validate([{**s, "policy": "on-drift"} for s in steps])  # the same steps with a name the schema allows
    source = "data/<raw> & \"odd\" 'file'.csv"
    timeline, summary = build(steps, [weird, "never"], days, check=False, source=source)
    svg = replay_svg(timeline, summary)
    root = parse(svg)  # still well-formed
    assert weird not in svg and source not in svg  # never raw
    title = "".join(by_class(root, "chart-title")[0].itertext())
    assert source in title
    assert [e.get("data-policy") for e in by_class(root, "legend-policy")] == [weird, "never"]
    assert by_class(root, "heatmap-title")[0].get("data-policy") == weird
    page = replay_html(timeline, summary)
    assert weird not in page and source not in page
    assert "on-drift&lt;&amp;&quot;x" in page and "data/&lt;raw&gt; &amp; &quot;odd&quot;" in page


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[tuple[str, str, str | None]] = []
        self.rows: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs.extend((tag, k, v) for k, v in attrs)
        if tag == "tr" and dict(attrs).get("data-policy"):
            self.rows.append(dict(attrs)["data-policy"])


def test_html_is_self_contained_with_table_and_svg():
    timeline, summary = standard()
    page = replay_html(timeline, summary)
    assert page.startswith("<!DOCTYPE html>")
    collected = _Collect()
    collected.feed(page)
    for tag, name, value in collected.attrs:
        if name in ("src", "href", "xlink:href"):
            assert not re.search(r"https?://|//", value or ""), (tag, name, value)
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert not re.search(r"url\((?!#)", page)  # only url(#hatch)
    assert replay_svg(timeline, summary).rstrip("\n") in page
    assert collected.rows == ["never", "every:2", "on-drift"]
    row = re.search(r'<tr data-policy="every:2">(.*?)</tr>', page)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    # policy, steps, retrains, retrain errors, promotions, alarms, matured,
    # mean / worst Spearman, mean / worst MAE, alarm precision
    assert cells == [
        "every:2",
        "6",
        "2",
        "1",
        "1",
        "0 (0 / 0)",
        "6",
        "0.475",
        "0.450",
        "100.00",
        "120.00",
        "0.470",
        "95.00",
        "50% (1/2)",
    ]
    never = next(s for s in summary["summaries"] if s["policy"] == "never")
    never.update(mean_spearman=None, alarm_precision=None)
    page = replay_html(timeline, summary)
    cells = re.findall(r"<td>(.*?)</td>", re.search(r'<tr data-policy="never">(.*?)</tr>', page).group(1))  # type: ignore[union-attr]
    assert cells[7] == "—" and cells[-1] == "—"


def test_write_charts_writes_both_files(tmp_path):
    timeline, summary = standard()
    out = tmp_path / "charts"
    paths = write_charts(timeline, summary, out)
    assert paths == {"svg": str(out / "chart.svg"), "html": str(out / "chart.html")}
    assert Path(paths["svg"]).read_text(encoding="utf-8") == replay_svg(timeline, summary)
    assert Path(paths["html"]).read_text(encoding="utf-8") == replay_html(timeline, summary)
    assert sorted(p.name for p in out.iterdir()) == ["chart.html", "chart.svg"]  # no temporary file left


def test_output_is_deterministic():
    first, second = standard(), standard()
    assert first[0] is not second[0]
    assert replay_svg(*first) == replay_svg(*second)
    assert replay_html(*first) == replay_html(*second)


def test_eighty_steps_thin_the_date_labels():
    days = dates(80)
    steps = [make_step("on-drift", i + 1, d, spearman=0.3 + (i % 7) * 0.01) for i, d in enumerate(days)]
    steps += [make_step("never", i + 1, d, spearman=0.35) for i, d in enumerate(days)]
    svg = replay_svg(*build(steps, ["never", "on-drift"], days))
    root = parse(svg)
    for panel in ("panel-spearman", "panel-mae", "panel-heatmap"):
        group = by_class(root, panel, "g")[0]
        labels = by_class(group, "xtick-label")
        assert 2 <= len(labels) <= 12, panel
        xs = [float(e.get("x", "")) for e in labels]
        assert min(b - a for a, b in pairwise(xs)) >= 60  # "2011-01-03" never overlaps
    assert len(by_class(root, "cell")) == 80 * len(COLUMNS)
    assert_geometry_inside(svg)


# --- edge cases and the y axis ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["one step", "all quality null", "one policy", "no column_drift", "mixed"])
def test_edge_cases_render(case):
    days = dates(1 if case == "one step" else 5)
    policies = ["on-drift"] if case == "one policy" else ["never", "on-drift"]
    steps = []
    for policy in policies:
        for i, d in enumerate(days):
            steps.append(
                make_step(
                    policy,
                    i + 1,
                    d,
                    matured=case != "all quality null",
                    gate="promoted" if i == 0 else None,
                    drifted=("recency",) if i % 2 else (),
                    column_drift=None if case == "no column_drift" or (case == "mixed" and i == 2) else UNSET,
                )
            )
    timeline, summary = build(steps, policies, days)
    svg = replay_svg(timeline, summary)
    root = parse(svg)
    assert_geometry_inside(svg)
    assert len(by_class(root, "marker")) == len(policies)
    if case == "all quality null":
        assert by_class(root, "line-spearman") == [] and by_class(root, "line-mae") == []
        assert "no matured window" in svg
        assert all(m.get("data-outcome") == "promoted" for m in by_class(root, "marker"))
    if case == "one step":
        groups = by_class(root, "line-spearman", "g")
        assert len(groups) == 2 and all(len(by_class(g, "lone-point")) == 1 for g in groups)
    if case == "mixed":  # a step without statistics among steps with them: unknown, not guessed
        cells = [c for c in by_class(root, "cell") if c.get("data-date") == days[2]]
        assert [c.get("data-state") for c in cells] == ["unknown"] * len(COLUMNS)
    assert "<svg" in replay_html(timeline, summary)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (-0.13, 0.52),
        (0.41, 0.53),
        (0.0, 1.0),
        (0.5, 0.5),
        (312.0, 598.0),
        (-1.0, 1.0),
        (None, None),
        (0.0, 0.0),
    ],
)
def test_y_ticks_cover_the_range_with_4_to_6_round_values(low, high):
    ticks = nice_ticks(low, high)
    assert 4 <= len(ticks) <= 6
    assert ticks == sorted(ticks)
    if low is not None:
        assert ticks[0] <= low and ticks[-1] >= high
        if low <= 0 <= high:
            assert 0.0 in ticks
    steps = {round(b - a, 9) for a, b in pairwise(ticks)}
    assert len(steps) == 1


def test_a_timeline_without_steps_is_a_data_error():
    _, summary = standard()
    with pytest.raises(DataError, match="'steps'"):
        replay_svg({"schema": TIMELINE_SCHEMA}, summary)
    with pytest.raises(DataError, match="step 0"):
        replay_svg({"steps": [{"date": "2011-01-03"}]}, summary)


def test_the_fixture_check_is_real():
    step = make_step("on-drift", 1, "2011-01-03", drifted=("recency",))
    validate([step])
    with pytest.raises(jsonschema.ValidationError):
        validate([{k: v for k, v in step.items() if k != "dataset_drift"}])
    if "column_drift" in SCHEMA["$defs"]["step"]["properties"]:
        bad = {
            **step,
            "column_drift": {"recency": {"drifted": "yes", "test": "ks", "statistic": 1, "p_value": 0}},
        }
        with pytest.raises(jsonschema.ValidationError):
            validate([bad])
