"""Replay charts (issue 9): one standalone SVG and one self-contained HTML page from a replay's output.

Input: the parsed ``timeline.json`` (``{"steps": [...]}``, one record per step date and policy, see
``docs/replay_timeline.schema.json``) and ``summary.json`` of :mod:`clvdrift.pipeline.replay`.

The SVG (:func:`replay_svg`) stacks three panels sharing one x axis (the summary's step ``dates``):

1. realized Spearman of the champion in use, one line per policy; a step without a matured window (or
   with an undefined Spearman) breaks the line, never interpolated across. Retrain markers at the
   step's x on the policy's line (on the x axis when the step has no quality): promoted = filled
   circle, rejected = hollow circle, error (no gated retraining possible) = cross;
2. realized MAE per policy, same conventions, without markers;
3. drift heat map column × step for one policy (the first ``on-drift*`` policy, else the first one):
   red = drifted, grey = tested and not drifted, hatched = unknown; a dark bar above a step marks
   dataset drift, the "model drift" row the detection's model-drift result. Every cell has a
   ``<title>`` tooltip. Rows come from each step's optional ``column_drift`` mapping
   (``{column: {drifted, test, statistic, p_value}}``); without it anywhere, from ``drifted_columns``.

Elements tests and scripts can count carry classes: ``g.line-spearman`` / ``g.line-mae`` (one per
policy with data, ``data-policy``) holding ``polyline.segment``; ``.marker`` with ``data-outcome``;
``rect.cell`` with ``data-state`` (drifted, stable, unknown); ``rect.model-cell``;
``rect.dataset-drift``; ``text.xtick-label``.

Pure standard library, deterministic (same input, same string), every input text escaped.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clvdrift.errors import DataError
from clvdrift.io import atomic_write_text

__all__ = ["heatmap_policy", "nice_ticks", "replay_html", "replay_svg", "write_charts"]

SVG_NS = "http://www.w3.org/2000/svg"
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#d62728",
)
DRIFTED_FILL = "#d62728"
STABLE_FILL = "#e3e3e3"
MODEL_DRIFT_FILL = "#6a3d9a"
DATASET_DRIFT_FILL = "#222222"
MAX_X_LABELS = 10
MIN_LABEL_SPACING = 72.0  # px between two date labels ("2011-09-01" at 10 px is ~55 px wide)

# geometry (px)
WIDTH = 980
LEFT = 140  # room for the heat map's row labels
RIGHT = 210  # room for the legends
PLOT_X0 = float(LEFT)
PLOT_X1 = float(WIDTH - RIGHT)
QUALITY_HEIGHT = 220.0
MAE_HEIGHT = 130.0
ROW_HEIGHT = 16.0
BAR_HEIGHT = 6.0

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _esc(value: object, limit: int | None = None) -> str:
    """Escape a text for XML/HTML text and attributes (quotes included), shortened to ``limit`` chars."""
    text = _XML_INVALID.sub("", str(value))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=True)


def _tail(value: object, limit: int) -> str:
    """The last ``limit`` characters of a long text (a path's file name matters most)."""
    text = str(value)
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _finite(value: object) -> float | None:
    """A finite number, or None (null, NaN, infinities, booleans, anything else)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _c(value: float) -> str:
    """A coordinate: two decimals, never ``-0.00``."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _fmt(value: object, digits: int = 3) -> str:
    """A number for a tooltip or table: ``digits`` significant-ish decimals, None → "—"."""
    number = _finite(value)
    if number is None:
        return "—"
    if number != 0 and abs(number) < 10 ** (-digits):
        return f"{number:.{digits - 1}e}"
    return f"{number:.{digits}f}"


def nice_ticks(low: float | None, high: float | None) -> list[float]:
    """4–6 round tick values covering [low, high] (0 among them when in range); [0, 1] without data."""
    if low is None or high is None:
        low, high = 0.0, 1.0
    if high - low < 1e-12:
        pad = max(abs(low) * 0.1, 0.05)
        low, high = low - pad, high + pad
    magnitude = math.floor(math.log10(high - low))
    best: tuple[float, float, list[float]] | None = None
    for exponent in range(magnitude - 2, magnitude + 2):
        for mantissa in (1.0, 2.0, 2.5, 5.0):
            step = mantissa * 10.0**exponent
            first = math.floor(low / step + 1e-9)
            last = math.ceil(high / step - 1e-9)
            count = last - first + 1
            score = 0.0 if 4 <= count <= 6 else float(abs(count - 5))
            span = (last - first) * step
            if best is None or (score, span) < (best[0], best[1]):
                ticks = [round((first + k) * step, 12) + 0.0 for k in range(count)]
                best = (score, span, ticks)
    assert best is not None
    return best[2]


def _tick_label(value: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = 0
    while decimals < 8 and abs(round(step, decimals) - step) > 1e-9 * max(1.0, step):
        decimals += 1
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


@dataclass(frozen=True)
class _Replay:
    """The replay's output, indexed: policies and dates in order, one step record per (policy, date)."""

    summary: Mapping[str, Any]
    policies: list[str]
    dates: list[str]
    steps: dict[tuple[str, str], Mapping[str, Any]]

    def step(self, policy: str, day: str) -> Mapping[str, Any] | None:
        return self.steps.get((policy, day))

    def metric(self, policy: str, day: str, name: str) -> float | None:
        record = self.step(policy, day)
        quality = record.get("quality") if record is not None else None
        return _finite(quality.get(name)) if isinstance(quality, Mapping) else None

    def x(self, index: int) -> float:
        return PLOT_X0 + self.cell_width * (index + 0.5)

    @property
    def cell_width(self) -> float:
        return (PLOT_X1 - PLOT_X0) / max(len(self.dates), 1)


def _load(timeline: Mapping[str, Any], summary: Mapping[str, Any]) -> _Replay:
    if not isinstance(timeline, Mapping) or not isinstance(timeline.get("steps"), list):
        raise DataError("replay chart: the timeline has no 'steps' list (expected timeline.json's content)")
    if not isinstance(summary, Mapping):
        raise DataError("replay chart: the summary is not a JSON object (expected summary.json's content)")
    steps: dict[tuple[str, str], Mapping[str, Any]] = {}
    policies: list[str] = [str(p) for p in summary.get("policies") or []]
    seen_dates: list[str] = []
    for index, record in enumerate(timeline["steps"]):
        if not isinstance(record, Mapping) or "policy" not in record or "date" not in record:
            raise DataError(f"replay chart: timeline step {index} has no 'policy' and 'date'")
        policy, day = str(record["policy"]), str(record["date"])
        steps[(policy, day)] = record
        if policy not in policies:
            policies.append(policy)
        if day not in seen_dates:
            seen_dates.append(day)
    dates = [str(d) for d in summary.get("dates") or []] or sorted(seen_dates)
    policies = list(dict.fromkeys(policies))
    return _Replay(summary=summary, policies=policies, dates=list(dict.fromkeys(dates)), steps=steps)


def heatmap_policy(policies: Sequence[str]) -> str | None:
    """The policy the drift heat map shows: the first whose name starts with "on-drift", else the first."""
    for policy in policies:
        if policy.startswith("on-drift"):
            return policy
    return policies[0] if policies else None


def _label_indices(count: int, cell_width: float) -> list[int]:
    """Which dates get a label: at most :data:`MAX_X_LABELS`, at least :data:`MIN_LABEL_SPACING` apart."""
    if count == 0:
        return []
    stride = max(math.ceil(count / MAX_X_LABELS), math.ceil(MIN_LABEL_SPACING / max(cell_width, 1e-9)), 1)
    return list(range(0, count, stride))


def _x_axis(out: list[str], data: _Replay, bottom: float) -> None:
    out.append(
        f'<line x1="{_c(PLOT_X0)}" y1="{_c(bottom)}" x2="{_c(PLOT_X1)}" y2="{_c(bottom)}" stroke="#444"/>'
    )
    labelled = set(_label_indices(len(data.dates), data.cell_width))
    for index, day in enumerate(data.dates):
        x = data.x(index)
        tick = 5.0 if index in labelled else 2.5
        out.append(
            f'<line x1="{_c(x)}" y1="{_c(bottom)}" x2="{_c(x)}" y2="{_c(bottom + tick)}" stroke="#444"/>'
        )
        if index in labelled:
            out.append(
                f'<text class="xtick-label" x="{_c(x)}" y="{_c(bottom + 16)}" text-anchor="middle" '
                f'font-size="10">{_esc(day)}</text>'
            )


def _line_width(number: int) -> str:
    """Earlier policies are drawn wider, so a later policy's identical line leaves them visible."""
    return f"{max(1.5, 3.5 - 0.6 * number):.1f}"


def _dash(number: int) -> str:
    """Policies after the third are dashed: two identical lines still show both colours."""
    patterns = ("6 4", "2 3", "8 3 2 3")
    return "" if number < 3 else f' stroke-dasharray="{patterns[(number - 3) % len(patterns)]}"'


def _line_panel(
    out: list[str], data: _Replay, metric: str, title: str, top: float, height: float, markers: bool
) -> None:
    """One metric per policy over the step dates, with y ticks, gaps at missing values and markers."""
    bottom = top + height
    values = [v for p in data.policies for d in data.dates if (v := data.metric(p, d, metric)) is not None]
    ticks = nice_ticks(min(values), max(values)) if values else nice_ticks(None, None)
    low, high = ticks[0], ticks[-1]

    def y(value: float) -> float:
        return bottom - (value - low) / (high - low) * height

    out.append(f'<g class="panel panel-{metric}">')
    out.append(
        f'<text x="{_c(PLOT_X0)}" y="{_c(top - 8)}" font-size="13" font-weight="bold">{_esc(title)}</text>'
    )
    out.append(
        f'<rect x="{_c(PLOT_X0)}" y="{_c(top)}" width="{_c(PLOT_X1 - PLOT_X0)}" height="{_c(height)}" '
        'fill="none" stroke="#bbb"/>'
    )
    for tick in ticks:
        ty = y(tick)
        stroke = "#999" if tick == 0 else "#eee"
        out.append(
            f'<line x1="{_c(PLOT_X0)}" y1="{_c(ty)}" x2="{_c(PLOT_X1)}" y2="{_c(ty)}" stroke="{stroke}"/>'
        )
        out.append(
            f'<text class="ytick-label" x="{_c(PLOT_X0 - 6)}" y="{_c(ty + 3.5)}" text-anchor="end" '
            f'font-size="10">{_esc(_tick_label(tick, ticks))}</text>'
        )
    _x_axis(out, data, bottom)
    if not values:
        out.append(
            f'<text x="{_c((PLOT_X0 + PLOT_X1) / 2)}" y="{_c(top + height / 2)}" text-anchor="middle" '
            f'font-size="12" fill="#777">no matured window: realized {_esc(metric)} unknown at every step'
            "</text>"
        )
    for number, policy in enumerate(data.policies):
        colour = PALETTE[number % len(PALETTE)]
        segments: list[list[tuple[float, float]]] = []
        current: list[tuple[float, float]] = []
        for index, day in enumerate(data.dates):
            value = data.metric(policy, day, metric)
            if value is None:
                if current:
                    segments.append(current)
                current = []
            else:
                current.append((data.x(index), y(value)))
        if current:
            segments.append(current)
        if segments:
            out.append(f'<g class="line-{metric}" data-policy="{_esc(policy)}">')
            out.append(f"<title>{_esc(policy)}: realized {_esc(metric)}</title>")
            for segment in segments:
                points = " ".join(f"{_c(px)},{_c(py)}" for px, py in segment)
                out.append(
                    f'<polyline class="segment" points="{points}" fill="none" stroke="{colour}" '
                    f'stroke-width="{_line_width(number)}"{_dash(number)} stroke-linejoin="round"/>'
                )
                if len(segment) == 1:  # a lone matured step: a polyline of one point draws nothing
                    px, py = segment[0]
                    out.append(
                        f'<circle class="lone-point" cx="{_c(px)}" cy="{_c(py)}" r="2.5" fill="{colour}"/>'
                    )
            out.append("</g>")
    if markers:  # above every line
        for number, policy in enumerate(data.policies):
            _markers(out, data, policy, PALETTE[number % len(PALETTE)], metric, y, bottom)
    out.append("</g>")


def _markers(
    out: list[str], data: _Replay, policy: str, colour: str, metric: str, y: Any, bottom: float
) -> None:
    for index, day in enumerate(data.dates):
        record = data.step(policy, day)
        outcome = record.get("gate_outcome") if record is not None else None
        if outcome not in ("promoted", "rejected", "error"):
            continue
        assert record is not None
        value = data.metric(policy, day, metric)
        x, my = data.x(index), (y(value) if value is not None else bottom)
        reason = record.get("gate_reason")
        tip = f"{policy} {day}: retrain {outcome}" + (f" ({reason})" if reason else "")
        common = f'class="marker marker-{outcome}" data-outcome="{outcome}" data-policy="{_esc(policy)}"'
        out.append(f"<g {common}><title>{_esc(tip)}</title>")
        if outcome == "promoted":
            out.append(
                f'<circle cx="{_c(x)}" cy="{_c(my)}" r="5" fill="{colour}" stroke="#fff" stroke-width="1"/>'
            )
        elif outcome == "rejected":
            out.append(
                f'<circle cx="{_c(x)}" cy="{_c(my)}" r="4.5" fill="#fff" stroke="{colour}" stroke-width="2"/>'
            )
        else:
            d = 3.5
            out.append(
                f'<path d="M{_c(x - d)},{_c(my - d)} L{_c(x + d)},{_c(my + d)} M{_c(x - d)},{_c(my + d)} '
                f'L{_c(x + d)},{_c(my - d)}" stroke="{colour}" stroke-width="2" fill="none"/>'
            )
        out.append("</g>")


def _legend(out: list[str], data: _Replay, top: float) -> None:
    x = PLOT_X1 + 18
    out.append('<g class="legend">')
    out.append(f'<text x="{_c(x)}" y="{_c(top + 4)}" font-size="11" font-weight="bold">Policies</text>')
    y = top + 22
    for number, policy in enumerate(data.policies):
        colour = PALETTE[number % len(PALETTE)]
        matured = any(data.metric(policy, d, "spearman") is not None for d in data.dates)
        note = "" if matured else " (no matured step)"
        out.append(
            f'<line x1="{_c(x)}" y1="{_c(y - 4)}" x2="{_c(x + 22)}" y2="{_c(y - 4)}" stroke="{colour}" '
            f'stroke-width="{_line_width(number)}"{_dash(number)}/>'
        )
        out.append(
            f'<text class="legend-policy" data-policy="{_esc(policy)}" x="{_c(x + 28)}" y="{_c(y)}" '
            f'font-size="{11 if len(policy) <= 24 else 10}">{_esc(policy, 28)}{note}</text>'
        )
        y += 17
    y += 8
    grey = "#555"
    out.append(f'<text x="{_c(x)}" y="{_c(y)}" font-size="11" font-weight="bold">Retrains</text>')
    y += 17
    out.append(f'<circle cx="{_c(x + 11)}" cy="{_c(y - 4)}" r="5" fill="{grey}"/>')
    out.append(f'<text x="{_c(x + 28)}" y="{_c(y)}" font-size="11">promoted</text>')
    y += 17
    out.append(
        f'<circle cx="{_c(x + 11)}" cy="{_c(y - 4)}" r="4.5" fill="#fff" stroke="{grey}" stroke-width="2"/>'
    )
    out.append(f'<text x="{_c(x + 28)}" y="{_c(y)}" font-size="11">rejected by the gate</text>')
    y += 17
    out.append(
        f'<path d="M{_c(x + 7.5)},{_c(y - 7.5)} L{_c(x + 14.5)},{_c(y - 0.5)} M{_c(x + 7.5)},{_c(y - 0.5)} '
        f'L{_c(x + 14.5)},{_c(y - 7.5)}" stroke="{grey}" stroke-width="2" fill="none"/>'
    )
    out.append(f'<text x="{_c(x + 28)}" y="{_c(y)}" font-size="11">not possible (error)</text>')
    out.append("</g>")


def _column_rows(data: _Replay, policy: str) -> tuple[list[str], bool]:
    """Heat-map rows: the union of ``column_drift`` keys (first-seen order) and whether any step has one."""
    rows: list[str] = []
    detailed = False
    records = [r for d in data.dates if (r := data.step(policy, d)) is not None]
    for record in records:
        tested = record.get("column_drift")
        if isinstance(tested, Mapping):
            detailed = True
            rows.extend(str(k) for k in tested)
    for record in records:
        rows.extend(str(c) for c in record.get("drifted_columns") or [])
    return list(dict.fromkeys(rows)), detailed


def _cell(record: Mapping[str, Any] | None, column: str, day: str, detailed: bool) -> tuple[str, str]:
    """(state, tooltip) of one heat-map cell; state is drifted, stable or unknown."""
    if record is None:
        return "unknown", f"{column} {day}: — / — / no step record (unknown)"
    tested = record.get("column_drift")
    if isinstance(tested, Mapping):
        result = tested.get(column)
        if not isinstance(result, Mapping):
            return "unknown", f"{column} {day}: — / — / not tested (unknown)"
        state = "drifted" if result.get("drifted") is True else "stable"
        test = result.get("test") or "—"
        statistic, p_value = _fmt(result.get("statistic")), _fmt(result.get("p_value"), 4)
        tip = f"{column} {day}: statistic {statistic} / p-value {p_value} / {test}"
        return state, f"{tip} ({'drifted' if state == 'drifted' else 'not drifted'})"
    drifted = column in [str(c) for c in record.get("drifted_columns") or []]
    if drifted:
        return "drifted", f"{column} {day}: — / — / drifted (no statistics recorded)"
    if detailed:  # other steps carry statistics, this one does not: do not guess
        return "unknown", f"{column} {day}: — / — / no statistics recorded (unknown)"
    return "stable", f"{column} {day}: — / — / not among the drifted columns (no statistics recorded)"


def _heatmap(out: list[str], data: _Replay, top: float) -> float:
    """Draw the drift heat map below ``top``; return the y where it ends."""
    policy = heatmap_policy(data.policies)
    out.append('<g class="panel panel-heatmap">')
    if policy is None:
        out.append(
            f'<text x="{_c(PLOT_X0)}" y="{_c(top)}" font-size="13" font-weight="bold">Drift: no policy</text>'
        )
        out.append("</g>")
        return top + 10
    columns, detailed = _column_rows(data, policy)
    out.append(
        f'<text class="heatmap-title" data-policy="{_esc(policy)}" x="{_c(PLOT_X0)}" y="{_c(top)}" '
        f'font-size="13" font-weight="bold">Drift per column and step, policy {_esc(policy, 40)}</text>'
    )
    if not detailed:
        note = "no per-column statistics in the timeline: rows are the columns that drifted at least once"
        out.append(
            f'<text x="{_c(PLOT_X0)}" y="{_c(top + 14)}" font-size="10" fill="#777">{_esc(note)}</text>'
        )
    width = data.cell_width
    bar_top = top + 22
    rows_top = bar_top + BAR_HEIGHT + 2
    for index, day in enumerate(data.dates):
        record = data.step(policy, day)
        if record is not None and record.get("dataset_drift") is True:
            out.append(
                f'<rect class="dataset-drift" x="{_c(data.x(index) - width / 2 + 0.5)}" y="{_c(bar_top)}" '
                f'width="{_c(max(width - 1, 0.5))}" height="{_c(BAR_HEIGHT)}" fill="{DATASET_DRIFT_FILL}">'
                f"<title>{_esc(day)}: dataset drift</title></rect>"
            )
    labels = [*columns, "model drift"]
    for row, label in enumerate(labels):
        ry = rows_top + row * ROW_HEIGHT
        weight = ' font-style="italic"' if row == len(columns) else ""
        out.append(
            f'<text class="row-label" x="{_c(PLOT_X0 - 6)}" y="{_c(ry + ROW_HEIGHT / 2 + 3.5)}" '
            f'text-anchor="end" font-size="10"{weight}>{_esc(label, 22)}</text>'
        )
        for index, day in enumerate(data.dates):
            record = data.step(policy, day)
            x = data.x(index) - width / 2
            geometry = f'x="{_c(x)}" y="{_c(ry)}" width="{_c(width)}" height="{_c(ROW_HEIGHT)}"'
            if row < len(columns):
                state, tip = _cell(record, label, day, detailed)
                fill = {"drifted": DRIFTED_FILL, "stable": STABLE_FILL, "unknown": "url(#hatch)"}[state]
                css = "cell"
            else:
                if record is None or record.get("model_drift_assessable") is not True:
                    state, tip = "unknown", f"model drift {day}: not assessable (labels not matured)"
                elif record.get("model_drift") is True:
                    state, tip = "drifted", f"model drift {day}: drifted"
                else:
                    state, tip = "stable", f"model drift {day}: not drifted"
                fill = {"drifted": MODEL_DRIFT_FILL, "stable": STABLE_FILL, "unknown": "url(#hatch)"}[state]
                css = "model-cell"
            out.append(
                f'<rect class="{css}" data-state="{state}" data-date="{_esc(day)}" {geometry} fill="{fill}" '
                f'stroke="#fff" stroke-width="1"><title>{_esc(tip)}</title></rect>'
            )
    bottom = rows_top + len(labels) * ROW_HEIGHT
    _x_axis(out, data, bottom)
    # legend of the heat map, right of it
    x, y = PLOT_X1 + 18, bar_top + 4
    keys = [
        (DRIFTED_FILL, "column drifted"),
        (STABLE_FILL, "tested, not drifted"),
        ("url(#hatch)", "unknown / not tested"),
        (DATASET_DRIFT_FILL, "dataset drift (bar)"),
        (MODEL_DRIFT_FILL, "model drift"),
    ]
    for fill, text in keys:
        out.append(
            f'<rect x="{_c(x)}" y="{_c(y - 9)}" width="14" height="10" fill="{fill}" stroke="#999" '
            'stroke-width="0.5"/>'
        )
        out.append(f'<text x="{_c(x + 20)}" y="{_c(y)}" font-size="11">{_esc(text)}</text>')
        y += 16
    out.append("</g>")
    return max(bottom + 24, y)


def _span(data: _Replay) -> str:
    """First → last step date: what the chart shows (the asked-for end may lie after the last step)."""
    if data.dates:
        return f"{data.dates[0]} → {data.dates[-1]}"
    return f"{data.summary.get('start', '?')} → {data.summary.get('end', '?')}"


def replay_svg(timeline: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """One standalone SVG document: realized quality per policy, MAE per policy, drift heat map."""
    data = _load(timeline, summary)
    body: list[str] = []
    title = (
        f"Replay of {_tail(summary.get('source', '?'), 70)}: "
        f"{_span(data)}, "
        f"step {summary.get('step_days', '?')} d, H = {summary.get('horizon_days', '?')} d"
    )
    body.append(
        f'<text class="chart-title" x="16" y="26" font-size="16" font-weight="bold">{_esc(title)}</text>'
    )
    quality_top = 70.0
    _line_panel(
        body,
        data,
        "spearman",
        "Realized Spearman of the champion in use (matured windows)",
        quality_top,
        QUALITY_HEIGHT,
        markers=True,
    )
    _legend(body, data, quality_top)
    mae_top = quality_top + QUALITY_HEIGHT + 56
    _line_panel(body, data, "mae", "Realized MAE of the champion in use", mae_top, MAE_HEIGHT, markers=False)
    height = _heatmap(body, data, mae_top + MAE_HEIGHT + 56)
    total = math.ceil(height)
    head = [
        f'<svg xmlns="{SVG_NS}" width="{WIDTH}" height="{total}" viewBox="0 0 {WIDTH} {total}" '
        'font-family="sans-serif" role="img">',
        f"<title>{_esc(title)}</title>",
        "<defs>",
        '<pattern id="hatch" patternUnits="userSpaceOnUse" width="6" height="6">'
        '<rect width="6" height="6" fill="#fff"/>'
        '<path d="M0,6 L6,0" stroke="#c8c8c8" stroke-width="1"/></pattern>',
        "</defs>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{total}" fill="#fff"/>',
    ]
    return "\n".join([*head, *body, "</svg>"]) + "\n"


def _summary_rows(summary: Mapping[str, Any]) -> list[str]:
    rows = []
    for item in summary.get("summaries") or []:
        if not isinstance(item, Mapping):
            continue
        precision = _finite(item.get("alarm_precision"))
        if precision is None:
            precision_text = "—"
        else:
            precision_text = f"{precision:.0%}"
            confirmed, judged = item.get("confirmed_alarms"), item.get("judged_alarms")
            if isinstance(confirmed, int) and isinstance(judged, int):
                precision_text += f" ({confirmed}/{judged})"

        def count(key: str, entry: Mapping[str, Any] = item) -> str:
            value = entry.get(key)
            return str(value) if isinstance(value, int) and not isinstance(value, bool) else "—"

        cells = [
            count("steps") + (f" ({item['failed_steps']} failed)" if item.get("failed_steps") else ""),
            count("retrains"),
            count("retrain_errors"),
            count("promotions"),
            f"{count('alarms')} ({count('data_drift_alarms')} / {count('model_drift_alarms')})",
            count("matured_steps"),
            _fmt(item.get("mean_spearman")),
            _fmt(item.get("worst_spearman")),
            _fmt(item.get("mean_mae"), 2),
            _fmt(item.get("worst_mae"), 2),
            _fmt(item.get("paired_mean_spearman")),
            _fmt(item.get("paired_mean_mae"), 2),
            precision_text,
        ]
        policy = _esc(item.get("policy", "?"))
        rows.append(
            f'<tr data-policy="{policy}"><td>{policy}</td>'
            + "".join(f"<td>{_esc(c)}</td>" for c in cells)
            + "</tr>"
        )
    return rows


def replay_html(timeline: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """A self-contained HTML5 page (no external URL): heading, summary table, the SVG inline, a legend."""
    svg = replay_svg(timeline, summary)
    data = _load(timeline, summary)
    source = _esc(summary.get("source", "?"))
    header = (
        "<tr><th>policy</th><th>steps</th><th>retrains</th><th>retrain errors</th><th>promotions</th>"
        "<th>alarms (data / model drift)</th><th>matured steps</th>"
        "<th>mean Spearman</th><th>worst Spearman</th>"
        "<th>mean MAE</th><th>worst MAE</th>"
        "<th>paired mean Spearman</th><th>paired mean MAE</th><th>alarm precision</th></tr>"
    )
    facts = (
        f"{_esc(_span(data))}, a step every "
        f"{_esc(summary.get('step_days', '?'))} days ({len(data.dates)} step dates), horizon H = "
        f"{_esc(summary.get('horizon_days', '?'))} days, "
        + (
            f"lookback L = {_esc(summary.get('lookback_days', '?'))} days (the -lookback policies), "
            if any(p.endswith("-lookback") for p in data.policies)
            else ""
        )
        + f"{len(data.policies)} policies."
    )
    heat = heatmap_policy(data.policies)
    legend = [
        "Top panels: realized quality of the champion in use at each step, on the newest matured window "
        "(customers it did not train on). A gap in a line is a step without a matured window or with an "
        "undefined metric; lines never join across it.",
        "Markers on a policy's line at the step it retrained: filled circle = challenger promoted, hollow "
        "circle = challenger rejected by the gate, cross = no gated retraining was possible (e.g. too little "
        "history). A marker on the x axis is a retrain at a step without a realized quality.",
        f"Heat map (policy {_esc(heat or '—')}): one row per tested column, one column per step. Red = the "
        "column's drift test fired, grey = tested and not drifted, hatched = unknown (not tested or no "
        "record). A dark bar above a step = dataset drift; the purple cells of the last row = model drift, "
        "hatched there when labels had not matured. Hover a cell for statistic / p-value / test.",
        "Alarm precision: the share of judgeable alarms followed by a real quality drop.",
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>clvdrift replay: {source}</title>",
        "<style>",
        "body{font-family:sans-serif;margin:24px;color:#222;max-width:1040px}",
        "table{border-collapse:collapse;font-size:14px}",
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}",
        "th:first-child,td:first-child{text-align:left}",
        "th{background:#f4f4f4}",
        "svg{max-width:100%;height:auto}",
        "</style>",
        "</head>",
        "<body>",
        f"<h1>Replay of {source}</h1>",
        f"<p>{facts}</p>",
        "<h2>Summary per policy</h2>",
        "<table>",
        f"<thead>{header}</thead>",
        "<tbody>",
        *_summary_rows(summary),
        "</tbody>",
        "</table>",
        "<h2>Timeline</h2>",
        svg.rstrip("\n"),
        "<h2>How to read the chart</h2>",
        "<ul>",
        *(f"<li>{item}</li>" for item in legend),
        "</ul>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def write_charts(timeline: Mapping[str, Any], summary: Mapping[str, Any], out_dir: Path) -> dict[str, str]:
    """Write ``chart.svg`` and ``chart.html`` into ``out_dir`` (atomically); return their paths."""
    out_dir = Path(out_dir)
    svg_path, html_path = out_dir / "chart.svg", out_dir / "chart.html"
    atomic_write_text(svg_path, replay_svg(timeline, summary))
    atomic_write_text(html_path, replay_html(timeline, summary))
    return {"svg": str(svg_path), "html": str(html_path)}
