"""The dashboard's HTML (render/dashboard.py) from hand-made dicts shaped as the store gives them: every
value escaped, one chart point per value (gaps for missing ones), the cards' numbers, the history's
order, the empty states (no runs, no events, no replay), the page's script and its CSP-friendliness."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from clvdrift.render.dashboard import dashboard_fragment, dashboard_page, line_chart, login_page

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>&"\''


class Tree(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(_has(a, k, v) for k, v in attrs.items())]

    def chart_points(self, chart: str) -> list[dict[str, str | None]]:
        """The ``circle.point`` elements inside ``svg[data-chart=chart]``."""
        points, inside = [], False
        for tag, attrs in self.tags:
            if tag == "svg":
                inside = attrs.get("data-chart") == chart
            elif inside and tag == "circle" and "point" in str(attrs.get("class", "")).split():
                points.append(attrs)
        return points


def _has(attrs: dict[str, str | None], key: str, value: str) -> bool:
    name = key.rstrip("_").replace("_", "-")
    given = str(attrs.get(name) or "")
    return value in given.split() if name == "class" else given == value


def _run(run_id: str, at: str, *, scores: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if scores is not None:
        details["check"] = {
            "model_version": "v1",
            "data_drift": True,
            "model_drift": False,
            "column_scores": scores,
            "performance": {"spearman": 0.41, "r2": 0.12, "mae": 900.0, "rmse": 1100.0},
            "reference_performance": {"spearman": 0.5, "r2": 0.2, "mae": 850.0, "rmse": 1000.0},
            "customers": 120,
        }
    return {
        "run_id": run_id,
        "kind": "monitor",
        "trigger": "cli",
        "status": "success",
        "started_at": at,
        "finished_at": at,
        "data_drift": scores is not None,
        "model_drift": False,
        "decision": "no_retrain",
        "challenger": None,
        "error": None,
        "inputs": {},
        "details": details,
        **extra,
    }


def _event(event_id: str, at: str, severity: str, scores: dict[str, float | None]) -> dict[str, Any]:
    features = [
        {"feature": f, "test": "psi", "score": s, "drifted": (s or 0) >= 0.2, "severity": severity}
        for f, s in scores.items()
    ]
    return {
        "event_id": event_id,
        "created_at": at,
        "source": "api",
        "model_version": "v1",
        "rows": 50,
        "severity": severity,
        "result": {"features": features, "warning": 0.2, "critical": 0.5},
    }


def full_data() -> dict[str, Any]:
    """A store with a champion, three checked runs (one column unscored once), a promotion and a
    rollback, four drift events (newest first), ingestion requests, a quarantined file and a replay."""
    runs = [  # newest first, as RunStore.list gives them
        _run(
            "rollback_3",
            "2024-05-04T10:00:00+00:00",
            kind="rollback",
            decision="rollback",
            details={"from": "v2", "to": "v1"},
        ),
        _run(
            "promote_2",
            "2024-05-03T10:00:00+00:00",
            kind="promote",
            decision="promote",
            details={"from": "v1", "to": "v2", "forced": True},
        ),
        _run("cycle_c", "2024-05-03T09:00:00+00:00", scores={"Recency": 0.3, "Monetary": 0.1}),
        _run(
            "cycle_b",
            "2024-05-02T09:00:00+00:00",
            scores={"Recency": 0.2, "Monetary": None},
            decision="retrain",
            challenger={"version": "v2", "outcome": "rejected", "reason": "worse by 0.1"},
            report_url="/reports/drift_b",
        ),
        _run("cycle_a", "2024-05-01T09:00:00+00:00", scores={"Recency": 0.1, "Monetary": 0.05}),
    ]
    events = [
        _event(
            "e4", "2024-05-04T12:00:03+00:00", "critical", {"Recency": 0.9, "Monetary": 0.1, "Country": 0.0}
        ),
        _event(
            "e3", "2024-05-04T12:00:02+00:00", "warning", {"Recency": 0.3, "Monetary": 0.1, "Country": 0.0}
        ),
        _event("e2", "2024-05-04T12:00:01+00:00", "ok", {"Recency": 0.1, "Monetary": 0.1, "Country": 0.0}),
        _event("e1", "2024-05-04T12:00:00+00:00", "ok", {"Recency": 0.0, "Monetary": 0.0, "Country": 0.0}),
    ]
    champion = {
        "version": "v1",
        "family": "gbm",
        "target": "holdout",
        "cutoff": "2023-01-01",
        "created_at": "2024-04-01T00:00:00+00:00",
        "promoted_at": "2024-05-04T10:00:00+00:00",
        "is_champion": True,
        "run_id": None,
        "metrics": {"spearman": 0.55016, "r2": 0.17, "mae": 953.7, "rmse": 1207.6},
        "baseline": {"spearman": 0.49699, "r2": -0.03, "mae": 898.2, "rmse": 1342.0},
    }
    return {
        "generated_at": "2024-05-04T12:30:00+00:00",
        "champion": champion,
        "served": {"version": "v1", "problem": None},
        "totals": {
            "runs": 3,
            "success": 3,
            "data_drift": 3,
            "model_drift": 0,
            "promotions": 0,
            "rejections": 1,
        },
        "runs": runs,
        "versions": [
            {
                **champion,
                "is_champion": False,
                "version": "v2",
                "run_id": "cycle_b",
                "created_at": "2024-05-02T09:30:00",
            },
            champion,
        ],
        "drift_events": events,
        "drift_event_count": 4,
        "ingestion": {
            "requests": 3,
            "rows_accepted": 17,
            "rows_rejected": 2,
            "rows_added": 15,
            "rejects_by_reason": {"Quantity: Field required": 2},
        },
        "history": {"rows": 5000, "customers": 240, "batches": 4, "last_batch": None},
        "ingest_requests": [
            {"created_at": "2024-05-04T10:00:00+00:00", "accepted": 5, "rejected": 0, "rows_added": 5},
            {"created_at": "2024-05-04T12:00:00+00:00", "accepted": 6, "rejected": 2, "rows_added": 4},
            {"created_at": "2024-05-04T12:10:00+00:00", "accepted": 6, "rejected": 0, "rows_added": 6},
        ],
        "quarantined": [
            {
                "name": "bad.csv",
                "reason": "missing columns",
                "processed_at": "2024-05-02T00:00:00",
                "run_id": "x",
            }
        ],
        "quarantined_count": 1,
        "replay": {
            "name": "20240501T000000Z",
            "chart_url": "/replays/latest/chart.svg?replay=20240501T000000Z",
        },
    }


def _card(html: str, stat: str) -> str:
    """The text of the card ``data-stat=stat``."""
    match = re.search(rf'<div class="card[^"]*" data-stat="{stat}">(.*?)</div></div>', html, re.S)
    assert match, stat
    return re.sub(r"<[^>]+>", " ", match.group(1))


# --------------------------------------------------------------------------------------------- tests
def test_the_cards_show_the_stores_numbers():
    tree = dashboard_fragment(full_data())
    assert "v1" in _card(tree, "champion")
    spearman = _card(tree, "spearman")
    assert "0.550" in spearman and "baseline 0.497" in spearman
    assert " 3 " in _card(tree, "runs")
    events = _card(tree, "drift-events")
    assert " 4 " in events and "newest: critical" in events
    rows = _card(tree, "rows-ingested")
    assert " 17 " in rows and "15 new" in rows and "2 rejected" in rows
    assert " 12 " in _card(tree, "ingest-rate")  # the two requests of the last hour before generated_at
    assert " 1 " in _card(tree, "quarantined")
    assert "0 / 1" in _card(tree, "gate")


def test_charts_have_one_point_per_known_value():
    tree = Tree(dashboard_fragment(full_data()))
    # three checked runs × two columns, one of them unscored once: a gap, not a point
    batch = tree.chart_points("drift-batch")
    assert len(batch) == 5
    assert [p["data-value"] for p in batch if p["data-series"] == "Monetary"] == ["0.05", "0.1"]
    # four events × three features, oldest first
    online = tree.chart_points("drift-online")
    assert len(online) == 12
    assert [p["data-value"] for p in online if p["data-series"] == "Recency"] == ["0.0", "0.1", "0.3", "0.9"]
    for metric, value in (("spearman", "0.41"), ("r2", "0.12"), ("mae", "900.0")):
        points = tree.chart_points(f"quality-{metric}")
        assert [p["data-value"] for p in points] == [value] * 3, metric
    assert len(tree.find("g", class_="bar")) == 3  # one bar per ingestion request
    assert len(tree.find("line", class_="threshold")) >= 2 + 3  # warning, critical; held-out figures


def test_a_gap_breaks_the_line_and_is_never_joined():
    svg = line_chart("t", "t", ["a", "b", "c", "d"], [_series([1.0, 2.0, None, 3.0])], empty="none")
    assert svg.count('class="segment"') == 1  # a-b; d alone has its point only
    assert svg.count('class="point"') == 3


def _series(values: list[float | None]):  # type: ignore[no-untyped-def]
    from clvdrift.render.dashboard import Series

    return Series("s", values)


def test_every_value_is_escaped():
    data = full_data()
    data["champion"]["version"] = EVIL
    data["runs"][2]["run_id"] = EVIL
    data["runs"][2]["details"]["check"]["column_scores"] = {EVIL: 0.4}
    data["runs"][3]["report_url"] = 'javascript:alert(1)" onclick="x'
    data["drift_events"][0]["source"] = EVIL
    data["drift_events"][0]["severity"] = EVIL
    data["quarantined"][0]["name"] = EVIL
    data["ingestion"]["rejects_by_reason"] = {EVIL: 1}
    data["replay"]["name"] = EVIL
    html = dashboard_page(data, nonce="n0nce")
    tree = Tree(html)
    assert [t for t, _ in tree.tags if t == "script"] == ["script"]  # the page's own, only
    assert not tree.find("img", src="x")
    for _, attrs in tree.tags:
        assert not [k for k in attrs if k.startswith("on")], attrs
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert 'href="javascript:alert(1)&quot; onclick=&quot;x"' in html  # one attribute value, inert text
    text = "".join(tree.text)
    assert text.count('<script>alert("x")</script>') >= 6  # shown as text where it was given


def test_empty_store_shows_empty_states():
    tree = Tree(dashboard_fragment({}))
    empties = {a["data-empty"] for a in tree.find("p", class_="empty")}
    assert {
        "champion",
        "quality-spearman",
        "quality-r2",
        "quality-mae",
        "drift-batch",
        "drift-online",
        "events",
        "history",
        "runs",
        "ingest",
        "quarantined",
        "replay",
    } <= empties
    assert not tree.find("svg")
    text = " ".join(tree.text)
    assert "No replay yet" in text and "No online drift event yet" in text and "No run yet" in text


def test_runs_without_a_check_and_no_replay():
    data = full_data()
    data["runs"] = [_run("cycle_x", "2024-05-01T00:00:00+00:00", status="skipped")]
    data["replay"] = None
    tree = Tree(dashboard_fragment(data))
    empties = {a["data-empty"] for a in tree.find("p", class_="empty")}
    assert {"drift-batch", "quality-spearman", "replay"} <= empties
    assert "runs" not in empties and len(tree.find("tr", class_="row", data_run="cycle_x")) == 1
    assert not tree.find("img")


def test_the_replay_chart_and_the_reports_are_linked():
    tree = Tree(dashboard_fragment(full_data()))
    assert tree.find("img", class_="replay")[0]["src"] == "/replays/latest/chart.svg?replay=20240501T000000Z"
    assert [a["href"] for a in tree.find("a", class_="report")] == ["/reports/drift_b"]


def test_events_table_is_newest_first_with_severity():
    tree = Tree(dashboard_fragment(full_data()))
    assert [
        a["data-event"] for a in tree.find("tr", class_="row") if a.get("data-event", "").startswith("e")
    ] == [
        "e4",
        "e3",
        "e2",
        "e1",
    ]
    assert [a["data-severity"] for a in tree.find("span", class_="sev")] == [
        "critical",
        "warning",
        "ok",
        "ok",
    ]


def test_history_has_trainings_gate_verdicts_promotions_and_rollbacks_newest_first():
    tree = Tree(dashboard_fragment(full_data()))
    rows = [
        (a["data-event"], a["data-outcome"]) for a in tree.find("tr", class_="row") if "data-outcome" in a
    ]
    assert rows == [
        ("rollback", "success"),
        ("promotion", "success"),
        ("retrained (gate)", "rejected"),
        ("trained", "champion"),
    ]
    html = dashboard_fragment(full_data())
    assert "v1 → v2 (forced over the gate)" in html and "worse by 0.1" in html


def test_champion_metrics_against_the_baseline():
    html = dashboard_fragment(full_data())
    spearman = re.search(r'<tr class="row" data-metric="spearman">(.*?)</tr>', html, re.S)
    mae = re.search(r'<tr class="row" data-metric="mae">(.*?)</tr>', html, re.S)
    assert spearman and "+0.053 (better)" in spearman.group(1)
    assert mae and "+55.500 (worse)" in mae.group(1)  # lower is better for MAE


def test_page_has_one_nonced_script_a_noscript_refresh_and_no_inline_style_or_handler():
    html = dashboard_page(full_data(), nonce="abc123")
    assert html.count("<script") == 1 and '<script nonce="abc123">' in html
    assert '<style nonce="abc123">' in html
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert "/dashboard/fragment" in html
    assert dashboard_fragment(full_data()) in html  # the page's content is the fragment


def test_rendering_is_deterministic():
    assert dashboard_page(full_data(), nonce="n") == dashboard_page(full_data(), nonce="n")


@pytest.mark.parametrize("error", [None, EVIL])
def test_login_page_posts_the_key_and_escapes_the_error(error):
    html = login_page(nonce="n", error=error)
    tree = Tree(html)
    form = tree.find("form")[0]
    assert form["method"] == "post" and form["action"] == "/dashboard/login"
    assert tree.find("input", name="key")[0]["type"] == "password"
    assert "<script" not in html
    if error:
        assert "&lt;script&gt;" in html
