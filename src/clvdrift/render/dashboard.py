"""The live dashboard of ``clvdrift serve`` (``GET /dashboard``): one server-rendered HTML page.

The page shows, from top to bottom:

- statistics cards: the champion and its Spearman (vs the persistence baseline), the monitoring runs,
  the runs that found data or model drift, the online drift events and the newest one's severity, the
  rows ingested, the rows ingested in the last hour, the quarantined files, the gate's verdicts;
- the champion: its version, family, cutoff, dates and its held-out metrics next to the persistence
  baseline's (better / worse per metric);
- model quality over time: the realized Spearman, R² and MAE of each monitoring run's check, with the
  reference the check compared them with (dashed) and the current champion's held-out figure (dotted);
- drift score per feature over time: the statistic per column of each monitoring run's check, and the
  score per feature of each online drift event (``POST /drift``) with its warning and critical lines;
- the online drift events, newest first, with their severity;
- the training, promotion and rollback history with the gate's outcomes, and the latest runs with links
  to their reports (``/reports/{run_id}``);
- the ingestion: rows per request (new, duplicates, rejected), rejects by reason, the history's size,
  and the quarantined files;
- the latest replay's chart (``/replays/latest/chart.svg``), or "no replay yet".

Charts are inline SVG drawn here (no JavaScript chart library, nothing loaded from another site); each
point has a ``<title>`` tooltip. The page (:func:`dashboard_page`) wraps the fragment
(:func:`dashboard_fragment`) that its one inline script, allowed by a CSP nonce, fetches again every few
seconds from ``/dashboard/fragment`` and swaps in when it changed; without JavaScript a
``<noscript>`` meta refresh reloads the page. No inline style attribute nor event handler anywhere, so a
strict Content-Security-Policy holds.

Input (:func:`dashboard_fragment`): one plain dict (JSON types, times as ISO strings, as ``to_dict()``
gives them), every key optional: ``generated_at``; ``champion`` (a registry version summary:
``version``, ``family``, ``target``, ``cutoff``, ``created_at``, ``promoted_at``, ``metrics``,
``baseline``) and ``served`` (``version``, ``problem``); ``totals`` (:meth:`RunStore.totals`) and
``runs`` (run records, newest first, each with an optional ``report_url``); ``drift_events`` (newest
first) and ``drift_event_count``; ``versions`` (registry version summaries); ``ingestion`` (the store's
ingestion stats), ``history`` (the history's size) and ``ingest_requests`` (``created_at``,
``accepted``, ``rejected``, ``rows_added``, oldest first); ``quarantined`` (``name``, ``reason``,
``processed_at``, ``run_id``) and ``quarantined_count``; ``replay`` (``name`` and ``chart_url``, or None).

Elements tests can count carry classes: ``div.card`` with ``data-stat``; ``svg.chart`` with
``data-chart`` holding ``circle.point`` (``data-series``, ``data-value``); ``g.bar`` of the ingestion
chart; ``table`` with ``data-table`` and ``tr.row``; ``p.empty`` with ``data-empty`` for an empty state;
``span.sev`` with ``data-severity``.

Pure standard library, deterministic (same input, same string), every value escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from clvdrift.render.replay_chart import PALETTE, _c, _esc, _finite, _tick_label, nice_ticks

__all__ = [
    "FRAGMENT_URL",
    "REFRESH_SECONDS",
    "Series",
    "bar_chart",
    "dashboard_fragment",
    "dashboard_page",
    "line_chart",
    "login_page",
]

REFRESH_SECONDS = 5
FRAGMENT_URL = "/dashboard/fragment"
LOGIN_URL = "/dashboard/login"
SEVERITY_COLOURS = {"ok": "#2ca02c", "warning": "#ff7f0e", "critical": "#d62728"}
HIGHER_IS_BETTER = {
    "spearman": True,
    "r2": True,
    "gini_normalized": True,
    "top10_capture": True,
    "mae": False,
    "rmse": False,
}
"""Which way each champion metric is better (absent: no verdict)."""
CHAMPION_METRICS = ("spearman", "r2", "mae", "rmse", "gini_normalized", "top10_capture")
METRIC_NAMES = {
    "spearman": "Spearman",
    "r2": "R²",
    "mae": "MAE",
    "rmse": "RMSE",
    "gini_normalized": "normalized Gini",
    "top10_capture": "top-10% capture",
}
QUALITY_METRICS = ("spearman", "r2", "mae")
MAX_CHART_POINTS = 60
MAX_TABLE_ROWS = 20
MAX_LEGEND = 12

# chart geometry (px)
CHART_WIDTH = 640
SMALL_CHART_WIDTH = 440
CHART_HEIGHT = 230
LEGEND_WIDTH = 150  # right of the plot
PLOT_LEFT = 56.0
PLOT_TOP = 14.0
PLOT_BOTTOM = 190.0
PAD = 12.0  # between the frame and the first / last point

_CSS = """
body{font-family:sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#1f2d3d;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:baseline}
header h1{font-size:20px;margin:0}
header .meta{font-size:13px;color:#cfd8e3}
header form{margin-left:auto}
#refresh-status.bad{color:#ffb4a8}
main{padding:12px 20px;max-width:1360px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 14px;margin:12px 0}
h2{font-size:16px;margin:4px 0 8px}
h3{font-size:13px;margin:6px 0 2px;color:#444}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:8px 10px}
.card .label{font-size:12px;color:#666}
.card .value{font-size:22px;font-weight:bold;margin:2px 0;overflow-wrap:anywhere}
.card.wide{grid-column:span 2}
.card .sub{font-size:12px;color:#555}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
.grid3{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:12px}
svg.chart{width:100%;height:auto;max-width:760px;background:#fff}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid #e3e6ea;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f1f3f5;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td:first-child{white-space:nowrap}
.sev{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:12px}
.sev-ok{background:#2ca02c}.sev-warning{background:#e07b00}.sev-critical{background:#d62728}
.sev-unknown{background:#888}
.better{color:#1a7f37}.worse{color:#c62828}
.empty{color:#777;font-style:italic}
.outcome-promoted,.status-success{color:#1a7f37}.outcome-rejected,.status-partial{color:#b35c00}
.status-failed,.status-rejected,.outcome-failed{color:#c62828}
img.replay{max-width:100%;height:auto;border:1px solid #dde1e6}
.login{max-width:420px;margin:80px auto;background:#fff;border:1px solid #dde1e6;border-radius:6px;
padding:20px}
.login input[type=password]{width:100%;box-sizing:border-box;padding:6px;margin:8px 0}
.error{color:#c62828}
code{font-size:12px}
"""

_SCRIPT = """
(function () {
  var box = document.getElementById("dash");
  var status = document.getElementById("refresh-status");
  var every = %d * 1000;
  var last = null;
  function later() { window.setTimeout(tick, every); }
  function tick() {
    if (document.hidden) { later(); return; }
    fetch("%s", {credentials: "same-origin", cache: "no-store"})
      .then(function (r) {
        if (r.status === 401) { window.location.assign("%s"); return null; }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (text) {
        if (text === null) { return; }
        if (text !== last) { box.innerHTML = text; last = text; }
        status.textContent = "updated " + new Date().toLocaleTimeString();
        status.className = "ok";
      })
      .catch(function (e) {
        status.textContent = "refresh failed (" + e.message + "), retrying";
        status.className = "bad";
      })
      .then(later);
  }
  last = box.innerHTML;
  later();
})();
"""


# ----------------------------------------------------------------------------------------- helpers
def _get(mapping: object, *keys: str) -> Any:
    """``mapping[k1][k2]…``, or None when a level is missing or not a mapping."""
    value: Any = mapping
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _num(value: object, digits: int = 3) -> str:
    """A number with ``digits`` decimals (large ones with thousands separators), None → "—"."""
    number = _finite(value)
    if number is None:
        return "—"
    if abs(number) >= 1000:
        return f"{number:,.{min(digits, 1)}f}"
    return f"{number:.{digits}f}"


def _int(value: object) -> str:
    """A count with thousands separators, anything else → "—"."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "—"
    return f"{value:,}"


def _count(value: object) -> int:
    """A count, 0 when not an int."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _time(value: object) -> datetime | None:
    """An ISO time (naive = UTC), or None."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _when(value: object) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS`` UTC, the text itself when it does not parse, None → "—"."""
    moment = _time(value)
    if moment is None:
        return "—" if value in (None, "") else str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _short_times(values: Sequence[object]) -> list[str]:
    """Axis labels of times: the date when they span days, else the time of day."""
    moments = [_time(v) for v in values]
    known = [m for m in moments if m is not None]
    span = (max(known) - min(known)) if known else timedelta(0)
    pattern = (
        "%m-%d" if span > timedelta(days=2) else "%m-%d %H:%M" if span > timedelta(hours=1) else "%H:%M:%S"
    )
    return [m.strftime(pattern) if m is not None else "?" for m in moments]


def _cell(text: object, css: str = "", limit: int | None = 120) -> str:
    klass = f' class="{_esc(css)}"' if css else ""
    return f"<td{klass}>{_esc(text, limit)}</td>"


def _severity(value: object) -> str:
    """A severity badge (ok, warning, critical; anything else shown as unknown)."""
    name = str(value) if value is not None else "unknown"
    css = name if name in SEVERITY_COLOURS else "unknown"
    return f'<span class="sev sev-{css}" data-severity="{_esc(name)}">{_esc(name, 20)}</span>'


def _empty(key: str, text: str) -> str:
    return f'<p class="empty" data-empty="{_esc(key)}">{_esc(text)}</p>'


def _table(key: str, header: Sequence[str], rows: Sequence[str], numeric: Sequence[int] = ()) -> str:
    head = "".join(
        f'<th class="num">{_esc(h)}</th>' if i in numeric else f"<th>{_esc(h)}</th>"
        for i, h in enumerate(header)
    )
    return (
        f'<table data-table="{_esc(key)}"><thead><tr>{head}</tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


# ------------------------------------------------------------------------------------------ charts
@dataclass(frozen=True)
class Series:
    """One line of a chart: a value (or None: a gap) and a tooltip per x position."""

    name: str
    values: Sequence[float | None]
    tips: Sequence[str] = ()
    colour: str = PALETTE[0]
    dashed: bool = False
    points: bool = True


@dataclass(frozen=True)
class _Plot:
    """The geometry of one chart ``width`` px wide: the plot, then the legend right of it."""

    width: int
    height: int = CHART_HEIGHT

    @property
    def right(self) -> float:
        return float(self.width - LEGEND_WIDTH)

    def xs(self, count: int) -> list[float]:
        """The x of each of ``count`` positions, evenly spread inside the plot."""
        if count == 1:
            return [(PLOT_LEFT + self.right) / 2]
        step = (self.right - PLOT_LEFT - 2 * PAD) / max(count - 1, 1)
        return [PLOT_LEFT + PAD + i * step for i in range(count)]

    def open(self, key: str, label: str) -> list[str]:
        return [
            f'<svg class="chart" data-chart="{_esc(key)}" xmlns="http://www.w3.org/2000/svg" '
            f'width="{self.width}" height="{self.height}" viewBox="0 0 {self.width} {self.height}" '
            f'font-family="sans-serif" role="img" aria-label="{_esc(label)}">',
            f"<title>{_esc(label)}</title>",
        ]

    def frame(
        self, out: list[str], ticks: Sequence[float], y: Any, x_labels: Sequence[str], xs: Sequence[float]
    ) -> None:
        """The plot's box, y grid lines and tick labels, x ticks with thinned labels."""
        out.append(
            f'<rect x="{_c(PLOT_LEFT)}" y="{_c(PLOT_TOP)}" width="{_c(self.right - PLOT_LEFT)}" '
            f'height="{_c(PLOT_BOTTOM - PLOT_TOP)}" fill="none" stroke="#bbb"/>'
        )
        for tick in ticks:
            ty = y(tick)
            stroke = "#999" if tick == 0 else "#eee"
            out.append(
                f'<line x1="{_c(PLOT_LEFT)}" y1="{_c(ty)}" x2="{_c(self.right)}" y2="{_c(ty)}" '
                f'stroke="{stroke}"/>'
            )
            out.append(
                f'<text class="ytick-label" x="{_c(PLOT_LEFT - 5)}" y="{_c(ty + 3.5)}" text-anchor="end" '
                f'font-size="10">{_esc(_tick_label(tick, ticks))}</text>'
            )
        most = max(2, int((self.right - PLOT_LEFT) // 70))
        for index in _label_positions(len(x_labels), most):
            x = xs[index]
            out.append(
                f'<line x1="{_c(x)}" y1="{_c(PLOT_BOTTOM)}" x2="{_c(x)}" y2="{_c(PLOT_BOTTOM + 4)}" '
                'stroke="#444"/>'
            )
            out.append(
                f'<text class="xtick-label" x="{_c(x)}" y="{_c(PLOT_BOTTOM + 16)}" text-anchor="middle" '
                f'font-size="10">{_esc(x_labels[index], 16)}</text>'
            )

    def legend(self, out: list[str], entries: Sequence[tuple[str, str, bool]]) -> None:
        """Swatch and name per (name, colour, dashed), right of the plot; the rest counted."""
        x, y = self.right + 12, PLOT_TOP + 8
        out.append('<g class="legend">')
        for name, colour, dashed in entries[:MAX_LEGEND]:
            dash = ' stroke-dasharray="5 3"' if dashed else ""
            out.append(
                f'<line x1="{_c(x)}" y1="{_c(y - 4)}" x2="{_c(x + 18)}" y2="{_c(y - 4)}" stroke="{colour}" '
                f'stroke-width="2.5"{dash}/>'
            )
            out.append(
                f'<text class="legend-entry" x="{_c(x + 24)}" y="{_c(y)}" font-size="10">'
                f"{_esc(name, 20)}</text>"
            )
            y += 14
        if len(entries) > MAX_LEGEND:
            out.append(
                f'<text x="{_c(x)}" y="{_c(y)}" font-size="10" fill="#777">'
                f"+{len(entries) - MAX_LEGEND} more (hover the points)</text>"
            )
        out.append("</g>")


def _label_positions(count: int, most: int = 6) -> list[int]:
    """Which x positions get a label: the first, the last and evenly spread ones, at most ``most``."""
    if count <= most:
        return list(range(count))
    return sorted({round(k * (count - 1) / (most - 1)) for k in range(most)})


def line_chart(
    key: str,
    label: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    empty: str,
    thresholds: Sequence[tuple[float, str, str]] = (),
    width: int = CHART_WIDTH,
) -> str:
    """An inline SVG line chart (one line per series, gaps at None, a ``<title>`` per point, the
    ``thresholds`` (value, name, colour) as horizontal lines), or ``empty`` when no series has a value."""
    values = [v for s in series for raw in s.values if (v := _finite(raw)) is not None]
    if not values or not x_labels:
        return _empty(key, empty)
    limits = [*values, *(t[0] for t in thresholds if _finite(t[0]) is not None)]
    ticks = nice_ticks(min(limits), max(limits))
    low, high = ticks[0], ticks[-1]

    def y(value: float) -> float:
        return PLOT_BOTTOM - (value - low) / (high - low) * (PLOT_BOTTOM - PLOT_TOP)

    plot = _Plot(width)
    xs = plot.xs(len(x_labels))
    out = plot.open(key, label)
    plot.frame(out, ticks, y, x_labels, xs)
    for level, name, colour in thresholds:
        if _finite(level) is None:
            continue
        ty = y(float(level))
        out.append(
            f'<line class="threshold" x1="{_c(PLOT_LEFT)}" y1="{_c(ty)}" x2="{_c(plot.right)}" '
            f'y2="{_c(ty)}" stroke="{colour}" stroke-width="1.2" stroke-dasharray="2 3">'
            f"<title>{_esc(name)}: {_esc(_num(level))}</title></line>"
        )
    for line in series:
        _series(out, line, xs, y)
    entries = [(s.name, s.colour, s.dashed) for s in series]
    entries += [(name, colour, True) for level, name, colour in thresholds if _finite(level) is not None]
    plot.legend(out, entries)
    out.append("</svg>")
    return "\n".join(out)


def _series(out: list[str], line: Series, xs: Sequence[float], y: Any) -> None:
    """One series: its segments (a lone value of a series without points: a short dash), its points."""
    segments: list[list[tuple[float, float]]] = [[]]
    for index, raw in enumerate(line.values[: len(xs)]):
        value = _finite(raw)
        if value is None:
            segments.append([])
        else:
            segments[-1].append((xs[index], y(value)))
    dash = ' stroke-dasharray="5 3"' if line.dashed else ""
    out.append(f'<g class="series" data-series="{_esc(line.name)}">')
    out.append(f"<title>{_esc(line.name)}</title>")
    for segment in segments:
        if len(segment) == 1 and not line.points:
            (px, py) = segment[0]
            segment = [(px - 8, py), (px + 8, py)]
        if len(segment) > 1:
            points = " ".join(f"{_c(px)},{_c(py)}" for px, py in segment)
            out.append(
                f'<polyline class="segment" points="{points}" fill="none" stroke="{line.colour}" '
                f'stroke-width="{1.5 if line.dashed else 2}"{dash} stroke-linejoin="round"/>'
            )
    if line.points:
        for index, raw in enumerate(line.values[: len(xs)]):
            value = _finite(raw)
            if value is None:
                continue
            tip = line.tips[index] if index < len(line.tips) else f"{line.name}: {_num(value)}"
            out.append(
                f'<circle class="point" data-series="{_esc(line.name)}" data-value="{value!r}" '
                f'cx="{_c(xs[index])}" cy="{_c(y(value))}" r="3.5" fill="{line.colour}" stroke="#fff" '
                f'stroke-width="1"><title>{_esc(tip)}</title></circle>'
            )
    out.append("</g>")


def bar_chart(
    key: str,
    label: str,
    x_labels: Sequence[str],
    stacks: Sequence[Sequence[float]],
    parts: Sequence[tuple[str, str]],
    tips: Sequence[str],
    *,
    empty: str,
    width: int = CHART_WIDTH,
) -> str:
    """An inline SVG stacked bar chart: one bar per x (``stacks[i]``: one value per part, ``parts``:
    (name, colour)), a ``<title>`` per bar; ``empty`` without bars."""
    if not stacks or not x_labels:
        return _empty(key, empty)
    totals = [sum(max(_finite(v) or 0.0, 0.0) for v in stack) for stack in stacks]
    ticks = nice_ticks(0.0, max(max(totals), 1.0))
    high = ticks[-1]

    def y(value: float) -> float:
        return PLOT_BOTTOM - value / high * (PLOT_BOTTOM - PLOT_TOP)

    plot = _Plot(width)
    xs = plot.xs(len(stacks))
    bar = max(min((plot.right - PLOT_LEFT - 2 * PAD) / max(len(stacks), 1) * 0.7, 28.0), 1.5)
    out = plot.open(key, label)
    plot.frame(out, ticks, y, x_labels, xs)
    for index, stack in enumerate(stacks):
        tip = tips[index] if index < len(tips) else ""
        values = [max(_finite(v) or 0.0, 0.0) for v in stack]
        data = " ".join(
            f'data-{_esc(name.replace(" ", "-"))}="{value:g}"'
            for (name, _), value in zip(parts, values, strict=False)
        )
        out.append(f'<g class="bar" {data}><title>{_esc(tip)}</title>')
        base = 0.0
        for (_, colour), value in zip(parts, values, strict=False):
            if value <= 0:
                continue
            top, bottom = y(base + value), y(base)
            out.append(
                f'<rect x="{_c(xs[index] - bar / 2)}" y="{_c(top)}" width="{_c(bar)}" '
                f'height="{_c(max(bottom - top, 0.5))}" fill="{colour}"/>'
            )
            base += value
        out.append("</g>")
    plot.legend(out, [(name, colour, False) for name, colour in parts])
    out.append("</svg>")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------- sections
def _card(stat: str, label: str, value: str, sub: str = "") -> str:
    css = "card wide" if len(value) > 12 else "card"  # a model version: two columns wide
    return (
        f'<div class="{css}" data-stat="{_esc(stat)}"><div class="label">{_esc(label)}</div>'
        f'<div class="value">{_esc(value)}</div>'
        f'<div class="sub">{_esc(sub)}</div></div>'
    )


def _recent_rows(requests: Sequence[Mapping[str, Any]], now: datetime | None, hours: float) -> int | None:
    """Rows accepted by the requests of the last ``hours`` before ``now`` (None without ``now``)."""
    if now is None:
        return None
    since = now - timedelta(hours=hours)
    total = 0
    for request in requests:
        moment = _time(request.get("created_at"))
        accepted = request.get("accepted")
        if moment is not None and moment >= since and isinstance(accepted, int):
            total += accepted
    return total


def _cards(data: Mapping[str, Any]) -> str:
    champion = data.get("champion") or {}
    totals = data.get("totals") or {}
    events = data.get("drift_events") or []
    ingestion = data.get("ingestion") or {}
    spearman, base = _get(champion, "metrics", "spearman"), _get(champion, "baseline", "spearman")
    newest = events[0] if events else None
    recent = _recent_rows(data.get("ingest_requests") or [], _time(data.get("generated_at")), 1.0)
    cards = [
        _card(
            "champion",
            "Champion",
            str(champion.get("version") or "none"),
            f"{champion.get('family') or ''} · cutoff {champion.get('cutoff') or '—'}"
            if champion
            else "no champion",
        ),
        _card("spearman", "Champion Spearman", _num(spearman), f"persistence baseline {_num(base)}"),
        _card(
            "runs",
            "Monitoring runs",
            _int(totals.get("runs", 0)),
            f"{_int(totals.get('success', 0))} success · {_int(totals.get('partial', 0))} partial · "
            f"{_int(totals.get('failed', 0))} failed · {_int(totals.get('running', 0))} running",
        ),
        _card(
            "drift-runs",
            "Runs with drift",
            f"{_int(totals.get('data_drift', 0))} / {_int(totals.get('model_drift', 0))}",
            "data drift / model drift",
        ),
        _card(
            "drift-events",
            "Online drift events",
            _int(data.get("drift_event_count", len(events))),
            f"newest: {newest.get('severity')}" if isinstance(newest, Mapping) else "none yet",
        ),
        _card(
            "rows-ingested",
            "Rows ingested",
            _int(ingestion.get("rows_accepted", 0)),
            f"{_int(ingestion.get('rows_added', 0))} new · "
            f"{_int(ingestion.get('rows_rejected', 0))} rejected · "
            f"{_int(ingestion.get('requests', 0))} requests",
        ),
        _card(
            "ingest-rate",
            "Rows in the last hour",
            _int(recent) if recent is not None else "—",
            "accepted by POST /ingest",
        ),
        _card(
            "quarantined",
            "Quarantined files",
            _int(data.get("quarantined_count", len(data.get("quarantined") or []))),
            "refused by the monitoring loop",
        ),
        _card(
            "gate",
            "Gate verdicts",
            f"{_int(totals.get('promotions', 0))} / {_int(totals.get('rejections', 0))}",
            f"promoted / rejected · {_int(totals.get('rollbacks', 0))} rollbacks · "
            f"{_int(totals.get('manual_promotions', 0))} manual promotions",
        ),
    ]
    return '<section class="cards" id="cards">' + "".join(cards) + "</section>"


def _champion(data: Mapping[str, Any]) -> str:
    champion = data.get("champion")
    served = data.get("served") or {}
    parts = ['<section id="champion"><h2>Champion</h2>']
    if not isinstance(champion, Mapping) or not champion.get("version"):
        problem = served.get("problem") or "no champion is registered"
        parts.append(
            _empty("champion", f"No champion: {problem}. Train one (clvdrift train) or promote one.")
        )
        return "".join(parts) + "</section>"
    facts = [
        ("version", champion.get("version")),
        ("family", champion.get("family")),
        ("target", champion.get("target")),
        ("trained up to (cutoff)", champion.get("cutoff")),
        ("registered", _when(champion.get("created_at"))),
        ("promoted", _when(champion.get("promoted_at"))),
        (
            "served by this process",
            served.get("version") or f"none ({served.get('problem') or 'not loaded'})",
        ),
    ]
    parts.append(
        '<p class="facts">'
        + " · ".join(f"{_esc(k)}: <b>{_esc(v if v not in (None, '') else '—')}</b>" for k, v in facts)
        + "</p>"
    )
    rows = []
    metrics, baseline = champion.get("metrics") or {}, champion.get("baseline") or {}
    for metric in CHAMPION_METRICS:
        ours, theirs = _finite(metrics.get(metric)), _finite(baseline.get(metric))
        if ours is None and theirs is None:
            continue
        verdict, css = "—", ""
        if ours is not None and theirs is not None:
            delta = ours - theirs
            higher = HIGHER_IS_BETTER.get(metric)
            if higher is not None and delta != 0:
                good = (delta > 0) == higher
                verdict, css = ("better" if good else "worse"), ("better" if good else "worse")
            verdict = f"{delta:+.3f} ({verdict})" if verdict != "—" else f"{delta:+.3f}"
        rows.append(
            f'<tr class="row" data-metric="{_esc(metric)}">'
            + _cell(METRIC_NAMES.get(metric, metric))
            + _cell(_num(ours), "num")
            + _cell(_num(theirs), "num")
            + _cell(verdict, f"num {css}".strip())
            + "</tr>"
        )
    if rows:
        parts.append(
            _table(
                "champion-metrics",
                ["metric (held-out, time split)", "champion", "persistence baseline", "champion − baseline"],
                rows,
                numeric=(1, 2, 3),
            )
        )
    else:
        parts.append(_empty("champion-metrics", "The champion's registry entry holds no metrics."))
    return "".join(parts) + "</section>"


def _checked_runs(runs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Runs whose details hold a drift check, oldest first, the newest :data:`MAX_CHART_POINTS`."""
    checked = [r for r in runs if isinstance(_get(r, "details", "check"), Mapping)]
    checked.sort(key=lambda r: str(r.get("finished_at") or r.get("started_at") or ""))
    return checked[-MAX_CHART_POINTS:]


def _quality(data: Mapping[str, Any]) -> str:
    runs = _checked_runs(data.get("runs") or [])
    labels = _short_times([r.get("finished_at") or r.get("started_at") for r in runs])
    champion = data.get("champion") or {}
    charts = []
    for metric in QUALITY_METRICS:
        name = METRIC_NAMES[metric]
        realized, reference, tips = [], [], []
        for run in runs:
            check = run["details"]["check"]
            value = _finite(_get(check, "performance", metric))
            ref = _finite(_get(check, "reference_performance", metric))
            realized.append(value)
            reference.append(ref)
            tips.append(
                f"{run.get('run_id')} ({_when(run.get('finished_at'))}), model {check.get('model_version')}: "
                f"realized {name} {_num(value)} vs reference {_num(ref)} "
                f"on {check.get('customers', '?')} customers"
            )
        held_out = _finite(_get(champion, "metrics", metric))
        chart = line_chart(
            f"quality-{metric}",
            f"Realized {name} of each monitoring run's check",
            labels,
            [
                Series("realized", realized, tips, PALETTE[0]),
                Series("check's reference", reference, (), "#7f7f7f", dashed=True, points=False),
            ],
            thresholds=[(held_out, "champion held-out", "#2ca02c")] if held_out is not None else [],
            empty=f"No realized {name} yet: no monitoring run has checked a batch with matured labels.",
            width=SMALL_CHART_WIDTH,
        )
        charts.append(f"<div><h3>{_esc(name)}</h3>{chart}</div>")
    return (
        '<section id="quality"><h2>Model quality over time</h2>'
        "<p>Realized quality of the champion on each monitoring run's batch (labels matured), against the "
        "reference the check compared it with (dashed) and the current champion's held-out figure (dotted)."
        f'</p><div class="grid3">{"".join(charts)}</div></section>'
    )


def _feature_series(rows: Sequence[Mapping[str, Any]], tip: Any) -> list[Series]:
    """One series per feature (first-seen order) over ``rows``, each a mapping feature → score;
    ``tip(index, feature, value)`` makes each point's tooltip."""
    features: list[str] = []
    for row in rows:
        features.extend(str(k) for k in row)
    features = list(dict.fromkeys(features))
    series = []
    for number, feature in enumerate(features):
        values = [_finite(row.get(feature)) for row in rows]
        tips = [tip(index, feature, value) for index, value in enumerate(values)]
        series.append(Series(feature, values, tips, PALETTE[number % len(PALETTE)]))
    return series


def _drift_charts(data: Mapping[str, Any]) -> str:
    runs = _checked_runs(data.get("runs") or [])
    scores = [dict(_get(r, "details", "check", "column_scores") or {}) for r in runs]

    def run_tip(index: int, feature: str, value: float | None) -> str:
        run = runs[index]
        drifted = "data drift" if _get(run, "details", "check", "data_drift") else "no data drift"
        when = _when(run.get("finished_at"))
        return f"{feature} · {run.get('run_id')} ({when}): {_num(value)} · run: {drifted}"

    batch_series = _feature_series(scores, run_tip)
    batch = line_chart(
        "drift-batch",
        "Drift statistic per column of each monitoring run's check",
        _short_times([r.get("finished_at") or r.get("started_at") for r in runs]),
        batch_series,
        empty="No monitoring run has checked a batch yet (clvdrift monitor).",
    )
    events = [e for e in (data.get("drift_events") or []) if isinstance(e, Mapping)][:MAX_CHART_POINTS]
    events = list(reversed(events))  # oldest first
    per_event = []
    for event in events:
        features = _get(event, "result", "features") or []
        per_event.append(
            {
                str(f.get("feature")): f.get("score")
                for f in features
                if isinstance(f, Mapping) and f.get("feature")
            }
        )

    def event_tip(index: int, feature: str, value: float | None) -> str:
        event = events[index]
        found = next(
            (
                f
                for f in _get(event, "result", "features") or []
                if isinstance(f, Mapping) and f.get("feature") == feature
            ),
            {},
        )
        return (
            f"{feature} · {_when(event.get('created_at'))}: score {_num(value)} ({found.get('test', '?')}), "
            f"{found.get('severity', '?')} · event {event.get('event_id')}, {event.get('rows')} rows"
        )

    online_series = _feature_series(per_event, event_tip)
    newest = events[-1] if events else {}
    thresholds = [
        (_get(newest, "result", "warning"), "warning", SEVERITY_COLOURS["warning"]),
        (_get(newest, "result", "critical"), "critical", SEVERITY_COLOURS["critical"]),
    ]
    online = line_chart(
        "drift-online",
        "Online drift score per feature of each drift event",
        _short_times([e.get("created_at") for e in events]),
        online_series,
        thresholds=[t for t in thresholds if _finite(t[0]) is not None],
        empty="No online drift event yet (POST /drift).",
    )
    return (
        '<section id="drift"><h2>Drift score per feature over time</h2><div class="grid2">'
        f"<div><h3>Monitoring runs (batch checks: each column's test statistic)</h3>{batch}</div>"
        f"<div><h3>Online drift events (POST /drift: score per feature)</h3>{online}</div>"
        "</div></section>"
    )


def _events_table(data: Mapping[str, Any]) -> str:
    events = [e for e in (data.get("drift_events") or []) if isinstance(e, Mapping)]
    count = data.get("drift_event_count", len(events))
    parts = [
        '<section id="events"><h2>Online drift events '
        f"<small>({_esc(_int(count))}, newest first)</small></h2>"
    ]
    if not events:
        parts.append(_empty("events", "No online drift event yet (POST /drift)."))
        return "".join(parts) + "</section>"
    rows = []
    for event in events[:MAX_TABLE_ROWS]:
        features = [f for f in _get(event, "result", "features") or [] if isinstance(f, Mapping)]
        scored = [f for f in features if _finite(f.get("score")) is not None]
        worst = max(scored, key=lambda f: float(f["score"])) if scored else None
        drifted = sum(1 for f in features if f.get("drifted") is True)
        rows.append(
            f'<tr class="row" data-event="{_esc(event.get("event_id"))}">'
            + _cell(_when(event.get("created_at")))
            + f"<td>{_severity(event.get('severity'))}</td>"
            + _cell(_int(event.get("rows")), "num")
            + _cell(f"{drifted} / {len(features)}", "num")
            + _cell(
                f"{worst.get('feature')} {_num(worst.get('score'))} ({worst.get('test')})" if worst else "—"
            )
            + _cell(event.get("model_version"))
            + _cell(event.get("source"))
            + "</tr>"
        )
    parts.append(
        _table(
            "events",
            [
                "time (UTC)",
                "severity",
                "rows",
                "features drifted",
                "worst feature (score, test)",
                "model",
                "source",
            ],
            rows,
            numeric=(2, 3),
        )
    )
    return "".join(parts) + "</section>"


def _history_items(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Trainings, retrainings (with the gate's verdict), promotions and rollbacks, newest first."""
    items: list[dict[str, Any]] = []
    for version in data.get("versions") or []:
        if isinstance(version, Mapping) and not version.get("run_id"):
            items.append(
                {
                    "time": version.get("created_at"),
                    "event": "trained",
                    "version": version.get("version"),
                    "outcome": "champion" if version.get("is_champion") else "registered",
                    "detail": f"{version.get('family') or ''}, held-out Spearman "
                    f"{_num(_get(version, 'metrics', 'spearman'))}",
                    "run": None,
                }
            )
    for run in data.get("runs") or []:
        if not isinstance(run, Mapping):
            continue
        kind = run.get("kind")
        when = run.get("finished_at") or run.get("started_at")
        challenger = run.get("challenger")
        if kind == "monitor" and isinstance(challenger, Mapping):
            items.append(
                {
                    "time": when,
                    "event": "retrained (gate)",
                    "version": challenger.get("version"),
                    "outcome": challenger.get("outcome"),
                    "detail": challenger.get("reason"),
                    "run": run,
                }
            )
        elif kind == "monitor" and run.get("decision") == "retrain" and run.get("status") == "failed":
            items.append(
                {
                    "time": when,
                    "event": "retraining",
                    "version": None,
                    "outcome": "failed",
                    "detail": run.get("error"),
                    "run": run,
                }
            )
        elif kind in ("promote", "rollback"):
            details = run.get("details") or {}
            inputs: Mapping[str, Any] = run["inputs"] if isinstance(run.get("inputs"), Mapping) else {}
            source = details.get("from", inputs.get("from"))
            target = details.get("to", inputs.get("to"))
            detail = f"{source or 'none'} → {target or '?'}"
            if details.get("forced"):
                detail += " (forced over the gate)"
            if details.get("gate_reason"):
                detail += f"; gate: {details.get('gate_reason')}"
            if run.get("error"):
                detail += f"; {run.get('error')}"
            items.append(
                {
                    "time": when,
                    "event": "promotion" if kind == "promote" else "rollback",
                    "version": target,
                    "outcome": run.get("status"),
                    "detail": f"{detail} (trigger {run.get('trigger')})",
                    "run": run,
                }
            )
    items.sort(key=lambda i: _time(i["time"]) or datetime.min.replace(tzinfo=UTC), reverse=True)
    return items


def _history(data: Mapping[str, Any]) -> str:
    items = _history_items(data)
    parts = ['<section id="history"><h2>Training, promotion and rollback history</h2>']
    if not items:
        parts.append(_empty("history", "No training, retraining, promotion or rollback recorded yet."))
        return "".join(parts) + "</section>"
    rows = []
    for item in items[:MAX_TABLE_ROWS]:
        run = item["run"] or {}
        outcome = str(item["outcome"] or "—")
        rows.append(
            f'<tr class="row" data-event="{_esc(item["event"])}" data-outcome="{_esc(outcome)}">'
            + _cell(_when(item["time"]))
            + _cell(item["event"])
            + _cell(item["version"] or "—")
            + _cell(
                outcome,
                f"outcome-{outcome}"
                if outcome in ("promoted", "rejected", "failed")
                else f"status-{outcome}",
            )
            + _cell(item["detail"] or "—", limit=240)
            + _cell(run.get("run_id") or "—")
            + "</tr>"
        )
    parts.append(_table("history", ["time (UTC)", "event", "version", "outcome", "detail", "run"], rows))
    return "".join(parts) + "</section>"


def _flag(value: object) -> str:
    return "yes" if value is True else "no" if value is False else "—"


def _runs_table(data: Mapping[str, Any]) -> str:
    runs = [r for r in (data.get("runs") or []) if isinstance(r, Mapping)]
    parts = ['<section id="runs"><h2>Latest runs <small>(newest first; reports open as JSON)</small></h2>']
    if not runs:
        parts.append(
            _empty("runs", "No run yet: `clvdrift monitor` (or the Airflow DAG) records one per cycle.")
        )
        return "".join(parts) + "</section>"
    rows = []
    for run in runs[:MAX_TABLE_ROWS]:
        url = run.get("report_url")
        report = f'<a class="report" href="{_esc(url)}">report</a>' if isinstance(url, str) and url else "—"
        challenger = run.get("challenger") if isinstance(run.get("challenger"), Mapping) else None
        status = str(run.get("status") or "—")
        rows.append(
            f'<tr class="row" data-run="{_esc(run.get("run_id"))}" data-kind="{_esc(run.get("kind"))}">'
            + _cell(_when(run.get("started_at")))
            + _cell(run.get("run_id"))
            + _cell(run.get("kind"))
            + _cell(run.get("trigger"))
            + _cell(status, f"status-{status}")
            + _cell(_flag(run.get("data_drift")))
            + _cell(_flag(run.get("model_drift")))
            + _cell(run.get("decision") or "—")
            + _cell(challenger.get("outcome") if challenger else "—")
            + f"<td>{report}</td>"
            + "</tr>"
        )
    parts.append(
        _table(
            "runs",
            [
                "started (UTC)",
                "run",
                "kind",
                "trigger",
                "status",
                "data drift",
                "model drift",
                "decision",
                "challenger",
                "report",
            ],
            rows,
        )
    )
    return "".join(parts) + "</section>"


def _ingestion(data: Mapping[str, Any]) -> str:
    requests = [r for r in (data.get("ingest_requests") or []) if isinstance(r, Mapping)][-MAX_CHART_POINTS:]
    stacks, tips = [], []
    for request in requests:
        accepted, added, rejected = (_count(request.get(k)) for k in ("accepted", "rows_added", "rejected"))
        stacks.append([float(added), float(max(accepted - added, 0)), float(rejected)])
        tips.append(
            f"{_when(request.get('created_at'))}: {accepted} accepted ({added} new, "
            f"{max(accepted - added, 0)} duplicates), {rejected} rejected"
        )
    chart = bar_chart(
        "ingest",
        "Rows per ingestion request",
        _short_times([r.get("created_at") for r in requests]),
        stacks,
        [("new", "#2ca02c"), ("duplicate", "#a6d8a6"), ("rejected", "#d62728")],
        tips,
        empty="Nothing ingested through the API yet (POST /ingest/batch or /ingest/stream).",
    )
    ingestion = data.get("ingestion") or {}
    history = data.get("history") or {}
    reasons = ingestion.get("rejects_by_reason") or {}
    reason_rows = [
        f'<tr class="row">{_cell(reason)}{_cell(_int(count), "num")}</tr>'
        for reason, count in list(reasons.items())[:10]
    ]
    facts = (
        f"<p>History: {_esc(_int(history.get('rows')))} rows, "
        f"{_esc(_int(history.get('customers')))} customers in {_esc(_int(history.get('batches')))} "
        f"batches; last batch {_esc(_when(_get(history, 'last_batch', 'created_at')))}."
        f" Ingestion: {_esc(_int(ingestion.get('requests', 0)))} requests, "
        f"{_esc(_int(ingestion.get('rows_accepted', 0)))} rows accepted, "
        f"{_esc(_int(ingestion.get('rows_rejected', 0)))} rejected.</p>"
    )
    rejects = (
        _table("rejects", ["reject reason", "rows"], reason_rows, numeric=(1,))
        if reason_rows
        else _empty("rejects", "No row rejected.")
    )
    return (
        '<section id="ingestion"><h2>Ingestion</h2>'
        + facts
        + f'<div class="grid2"><div><h3>Rows per request (oldest → newest)</h3>{chart}</div>'
        + f"<div><h3>Rejected rows by reason</h3>{rejects}{_quarantine(data)}</div></div></section>"
    )


def _quarantine(data: Mapping[str, Any]) -> str:
    files = [f for f in (data.get("quarantined") or []) if isinstance(f, Mapping)]
    count = data.get("quarantined_count", len(files))
    head = f"<h3>Quarantined files ({_esc(_int(count))}, newest first)</h3>"
    if not files:
        return head + _empty("quarantined", "No file quarantined.")
    rows = [
        f'<tr class="row">{_cell(_when(f.get("processed_at")))}{_cell(f.get("name") or f.get("path"))}'
        f"{_cell(f.get('reason') or '—', limit=200)}{_cell(f.get('run_id') or '—')}</tr>"
        for f in files[:MAX_TABLE_ROWS]
    ]
    return head + _table("quarantined", ["time (UTC)", "file", "reason", "run"], rows)


def _replay(data: Mapping[str, Any]) -> str:
    replay = data.get("replay")
    body = _empty("replay", "No replay yet (clvdrift replay).")
    if isinstance(replay, Mapping) and replay.get("chart_url"):
        body = (
            f"<p>Replay {_esc(replay.get('name'))}.</p>"
            f'<img class="replay" src="{_esc(replay.get("chart_url"))}" '
            f'alt="{_esc("latest replay chart " + str(replay.get("name") or ""))}">'
        )
    return f'<section id="replay"><h2>Latest replay</h2>{body}</section>'


# ------------------------------------------------------------------------------------------- pages
def dashboard_fragment(data: Mapping[str, Any]) -> str:
    """The dashboard's content (everything the refresh replaces), from the plain dict ``data``."""
    sections = [
        _cards(data),
        _champion(data),
        _quality(data),
        _drift_charts(data),
        _events_table(data),
        _history(data),
        _runs_table(data),
        _ingestion(data),
        _replay(data),
    ]
    return "\n".join(sections) + "\n"


def _head(title: str, nonce: str, refresh: bool) -> list[str]:
    return [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_esc(title)}</title>",
        *(
            [f'<noscript><meta http-equiv="refresh" content="{REFRESH_SECONDS}"></noscript>']
            if refresh
            else []
        ),
        f'<style nonce="{_esc(nonce)}">{_CSS}</style>',
        "</head>",
    ]


def dashboard_page(data: Mapping[str, Any], *, nonce: str) -> str:
    """The whole dashboard page: header, the fragment, and the refresh script allowed by ``nonce``."""
    served = _get(data, "served", "version") or "none"
    script = _SCRIPT % (REFRESH_SECONDS, FRAGMENT_URL, LOGIN_URL)
    parts = [
        *_head("clvdrift dashboard", nonce, refresh=True),
        "<body>",
        "<header><h1>clvdrift dashboard</h1>",
        f'<span class="meta">serving {_esc(served)} · rendered {_esc(_when(data.get("generated_at")))} UTC · '
        f'refreshes every {REFRESH_SECONDS} s <span id="refresh-status"></span></span>',
        '<form method="post" action="/dashboard/logout"><button type="submit">Sign out</button></form>',
        "</header>",
        '<main id="dash">',
        dashboard_fragment(data).rstrip("\n"),
        "</main>",
        f'<script nonce="{_esc(nonce)}">{script}</script>',
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def login_page(*, nonce: str, error: str | None = None) -> str:
    """The sign-in form of the dashboard: one API key field, posted to ``/dashboard/login``."""
    message = f'<p class="error" role="alert">{_esc(error)}</p>' if error else ""
    parts = [
        *_head("clvdrift dashboard: sign in", nonce, refresh=False),
        "<body>",
        '<div class="login"><h1>clvdrift dashboard</h1>',
        "<p>Sign in with an API key (<code>clvdrift apikey create</code>). It is kept in an HttpOnly cookie "
        "of this site only.</p>",
        message,
        f'<form method="post" action="{LOGIN_URL}">',
        '<label for="key">API key</label>',
        '<input type="password" id="key" name="key" required autocomplete="off" autofocus>',
        '<button type="submit">Sign in</button>',
        "</form></div>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"
