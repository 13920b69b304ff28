"""Charts as inline SVG: bar, stacked bar, pie (or donut), line, and a timeline of steps.

Pure functions returning markup.  Every chart is ``<svg role="img" class="chart NAME">`` with
a ``<title>`` and a ``<desc>`` that spells out every number (the text alternative), shows its
numbers as labels, and escapes every label.  Empty data gives ``<p class="none">EMPTY</p>``.
Colours come from ``colours`` (key -> colour) where given, else from :data:`PALETTE`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence

from crmkit.report.document import FONTS, TONES, Html, escape

PALETTE = (
    "#1565c0",
    "#c62828",
    "#2e7d32",
    "#6a1b9a",
    "#ef6c00",
    "#00838f",
    "#558b2f",
    "#ad1457",
    "#4e342e",
    "#283593",
    "#9e9d24",
)
#: a bar's label, its value and (optionally) its kind: a CSS class and a key of ``colours``
Bar = tuple[str, float] | tuple[str, float, str]

_BAR, _GAP, _CHAR, _WIDE = 20, 8, 7.0, 12.5


def num(value: float) -> str:
    """A number as a label: whole numbers without decimals, others with up to two."""
    v = float(value)
    if v.is_integer():
        return f"{int(v):,}"
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def text_width(text: str) -> float:
    """The width of ``text`` at 12px, in pixels, estimated: wide (CJK) characters count double."""
    return sum(_WIDE if unicodedata.east_asian_width(c) in "WF" else _CHAR for c in text)


def _token(key: str) -> str:
    return re.sub(r"\s+", "-", key.strip())


def _colour(key: str, index: int, colours: Mapping[str, str] | None) -> str:
    return (colours or {}).get(key) or PALETTE[index % len(PALETTE)]


def _ink(colour: str) -> str:
    """Black or white, whichever reads better on ``colour`` (``#rrggbb``)."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        return "#fff"
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"


def _with_unit(value: float, unit: str) -> str:
    return f"{num(value)} {unit}".rstrip()


def _svg(title: str, desc: str, name: str, width: float, height: float, body: list[str]) -> Html:
    w, h = math.ceil(width), math.ceil(height)
    return Html(
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'class="chart {escape(name)}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'font-family="{escape(FONTS)}" font-size="12"><title>{escape(title)}</title>'
        f"<desc>{escape(desc)}</desc>" + "".join(body) + "</svg>"
    )


def _none(empty: str) -> Html:
    return Html(f'<p class="none">{escape(empty)}</p>')


def _legend(items: Sequence[tuple[str, str]], x0: float, y: float, width: float) -> tuple[list[str], float]:
    """Swatches with their text, wrapped into lines within ``width``; returns the markup and the last y."""
    parts, x = [], x0
    for text, colour in items:
        step = 16 + text_width(text) + 18
        if x > x0 and x + step > width:
            x, y = x0, y + 20
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 10}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 16:.1f}" y="{y}">{escape(text)}</text>'
        )
        x += step
    return parts, y


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    name: str = "bars",
    unit: str = "",
    colours: Mapping[str, str] | None = None,
    width: int = 760,
    empty: str = "No data.",
) -> Html:
    """Horizontal bars, one per ``(label, value[, kind])``, each with its value at its end."""
    if not bars:
        return _none(empty)
    rows = [(str(b[0]), float(b[1]), str(b[2]) if len(b) > 2 else "") for b in bars]
    left = min(max(text_width(label) for label, _, _ in rows) + 16, width * 0.45)
    room = max(text_width(_with_unit(v, "")) for _, v, _ in rows) + 12
    top = max([v for _, v, _ in rows] + [0.0]) or 1.0
    body = []
    for i, (label, value, kind) in enumerate(rows):
        y = i * (_BAR + _GAP) + 5
        w = max((width - left - room) * max(value, 0) / top, 1)
        tip = f"{label}{f' ({kind})' if kind else ''}: {_with_unit(value, unit)}"
        body.append(
            f'<text x="{left - 6:.1f}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="{escape(" ".join(["bar", _token(kind)]).strip())}" x="{left:.1f}" y="{y}" '
            f'width="{w:.1f}" height="{_BAR}" fill="{_colour(kind, 0, colours)}"><title>{escape(tip)}</title></rect>'
            f'<text x="{left + w + 5:.1f}" y="{y + 15}">{num(value)}</text>'
        )
    desc = "; ".join(f"{label}: {_with_unit(value, unit)}" for label, value, _ in rows)
    return _svg(title, desc, name, width, len(rows) * (_BAR + _GAP) + 10, body)


def stacked_bar_chart(
    rows: Sequence[tuple[str, Mapping[str, float]]],
    series: Sequence[str],
    *,
    title: str,
    name: str = "stacked",
    unit: str = "",
    colours: Mapping[str, str] | None = None,
    width: int = 760,
    empty: str = "No data.",
) -> Html:
    """Horizontal bars of segments, one per ``(label, {series: value})``, with a legend of ``series``.

    Segments wide enough show their number; every bar shows its total at its end.
    """
    if not rows or not series:
        return _none(empty)
    totals = [sum(max(float(v.get(s, 0)), 0) for s in series) for _, v in rows]
    left = min(max(text_width(str(label)) for label, _ in rows) + 16, width * 0.45)
    room = max(text_width(num(t)) for t in totals) + 12
    top = max(totals) or 1.0
    body = []
    for i, ((label, values), total) in enumerate(zip(rows, totals)):
        y, x = i * (_BAR + _GAP + 4) + 5, left
        body.append(f'<text x="{left - 6:.1f}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        for j, key in enumerate(series):
            n = max(float(values.get(key, 0)), 0)
            if not n:
                continue
            w, colour = (width - left - room) * n / top, _colour(key, j, colours)
            body.append(
                f'<rect class="seg {escape(_token(key))}" x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" '
                f'height="{_BAR}" fill="{colour}"><title>{escape(f"{label} {key}: {_with_unit(n, unit)}")}</title></rect>'
            )
            if w >= text_width(num(n)) + 6:
                body.append(
                    f'<text x="{x + w / 2:.1f}" y="{y + 15}" text-anchor="middle" fill="{_ink(colour)}">{num(n)}</text>'
                )
            x += w
        body.append(f'<text x="{x + 5:.1f}" y="{y + 15}">{num(total)}</text>')
    legend_y = len(rows) * (_BAR + _GAP + 4) + 22
    sums = {key: sum(max(float(v.get(key, 0)), 0) for _, v in rows) for key in series}
    items = [(f"{key}: {num(sums[key])}", _colour(key, j, colours)) for j, key in enumerate(series)]
    legend, last_y = _legend(items, left, legend_y, width)
    desc = "; ".join(
        f"{label}: " + ", ".join(f"{key} {num(float(v.get(key, 0)))}" for key in series) + f" (total {num(t)})"
        for (label, v), t in zip(rows, totals)
    )
    return _svg(title, desc + (f" ({unit})" if unit else ""), name, width, last_y + 10, body + legend)


def _slice(cx: float, cy: float, r: float, a0: float, a1: float) -> str:
    x0, y0 = cx + r * math.sin(a0), cy - r * math.cos(a0)
    x1, y1 = cx + r * math.sin(a1), cy - r * math.cos(a1)
    large = 1 if a1 - a0 > math.pi else 0
    return f"M{cx},{cy} L{x0:.2f},{y0:.2f} A{r},{r} 0 {large} 1 {x1:.2f},{y1:.2f} Z"


def pie_chart(
    slices: Sequence[tuple[str, float]],
    *,
    title: str,
    name: str = "pie",
    unit: str = "",
    colours: Mapping[str, str] | None = None,
    size: int = 260,
    donut: bool = False,
    empty: str = "No data.",
) -> Html:
    """A pie (a donut with ``donut=True``, its total in the middle) of the positive values, legend with shares."""
    parts = [(str(label), float(n)) for label, n in slices if float(n) > 0]
    if not parts:
        return _none(empty)
    total = sum(n for _, n in parts)
    cx = cy = size / 2
    r, a, body = size / 2 - 10, 0.0, []
    labels = [f"{label}: {_with_unit(n, unit)} ({100 * n / total:.1f}%)" for label, n in parts]
    for i, ((label, n), text) in enumerate(zip(parts, labels)):
        colour, tip = _colour(label, i, colours), f"<title>{escape(text)}</title>"
        if n == total:
            body.append(f'<circle class="slice" cx="{cx}" cy="{cy}" r="{r}" fill="{colour}">{tip}</circle>')
        else:
            a1 = a + 2 * math.pi * n / total
            body.append(f'<path class="slice" d="{_slice(cx, cy, r, a, a1)}" fill="{colour}">{tip}</path>')
            a = a1
    if donut:
        body.append(
            f'<circle cx="{cx}" cy="{cy}" r="{r * 0.55:.1f}" fill="#fff"/>'
            f'<text x="{cx}" y="{cy + 5}" text-anchor="middle" font-size="16">{num(total)}</text>'
        )
    legend_x = size + 10
    for i, ((label, _), text) in enumerate(zip(parts, labels)):
        y = 20 + i * 20
        body.append(
            f'<rect x="{legend_x}" y="{y - 10}" width="12" height="12" fill="{_colour(label, i, colours)}"/>'
            f'<text x="{legend_x + 16}" y="{y}">{escape(text)}</text>'
        )
    width = legend_x + 16 + max(text_width(t) for t in labels) + 10
    desc = "; ".join(labels) + f"; total {_with_unit(total, unit)}"
    return _svg(title, desc, name, width, max(size, 20 * len(parts) + 20), body)


def line_chart(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    name: str = "line",
    unit: str = "",
    colours: Mapping[str, str] | None = None,
    width: int = 760,
    height: int = 300,
    empty: str = "No data.",
) -> Html:
    """One line per series over ``x_labels``, a dot and (up to 30 points) its value at each point."""
    points = {key: [float(v) for v in values][: len(x_labels)] for key, values in series.items() if values}
    if not x_labels or not points:
        return _none(empty)
    values = [v for vs in points.values() for v in vs]
    low, high = min([*values, 0.0]), max([*values, 0.0])
    span = (high - low) or 1.0
    left, top_pad, plot_h = max(text_width(num(high)), text_width(num(low))) + 14, 20.0, height - 80.0
    step = (width - left - 30) / max(len(x_labels) - 1, 1)

    def at(i: int, v: float) -> tuple[float, float]:
        return left + 10 + i * step, top_pad + plot_h * (high - v) / span

    base_y = at(0, max(low, 0.0))[1]
    body = [
        f'<line x1="{left:.1f}" y1="{top_pad}" x2="{left:.1f}" y2="{top_pad + plot_h:.1f}" stroke="#999"/>'
        f'<line x1="{left:.1f}" y1="{base_y:.1f}" x2="{width - 10}" y2="{base_y:.1f}" stroke="#999"/>'
        f'<text x="{left - 4:.1f}" y="{top_pad + 4}" text-anchor="end">{num(high)}</text>'
        f'<text x="{left - 4:.1f}" y="{top_pad + plot_h + 4:.1f}" text-anchor="end">{num(low)}</text>'
    ]
    every = max(1, math.ceil((max(text_width(str(x)) for x in x_labels) + 8) / step))
    for i, x in enumerate(x_labels):
        if i % every == 0 or i == len(x_labels) - 1:
            body.append(
                f'<text x="{at(i, 0)[0]:.1f}" y="{top_pad + plot_h + 20:.1f}" text-anchor="middle">{escape(x)}</text>'
            )
    for j, (key, vs) in enumerate(points.items()):
        colour = _colour(key, j, colours)
        xy = [at(i, v) for i, v in enumerate(vs)]
        body.append(
            f'<polyline class="line {escape(_token(key))}" fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in xy)}"/>'
        )
        for i, ((px, py), v) in enumerate(zip(xy, vs)):
            tip = escape(f"{key}, {x_labels[i]}: {_with_unit(v, unit)}")
            body.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"><title>{tip}</title></circle>')
            if len(vs) <= 30:
                body.append(f'<text x="{px:.1f}" y="{py - 6:.1f}" text-anchor="middle" fill="{colour}">{num(v)}</text>')
    legend, last_y = _legend(
        [(key, _colour(key, j, colours)) for j, key in enumerate(points)], left, height - 20, width
    )
    desc = "; ".join(
        f"{key}: " + ", ".join(f"{x_labels[i]} {num(v)}" for i, v in enumerate(vs)) for key, vs in points.items()
    )
    return _svg(title, desc + (f" ({unit})" if unit else ""), name, width, last_y + 10, body + legend)


def timeline_chart(
    steps: Sequence[tuple[str, str]],
    *,
    title: str,
    name: str = "timeline",
    current: str | None = None,
    current_label: str = "current",
    colours: Mapping[str, str] | None = None,
    empty: str = "No steps.",
) -> Html:
    """Boxes in a row, one per ``(label, status)``, coloured by status; ``current`` is outlined."""
    if not steps:
        return _none(empty)
    box = max([text_width(label) + 24 for label, _ in steps] + [text_width(f"{s} ({current_label})") for _, s in steps])
    box = max(box, 140.0)
    w, body = box + 20, []
    for i, (label, status) in enumerate(steps):
        x, colour = 10 + i * w, (colours or {}).get(status, TONES["muted"])
        is_current = label == current
        ring = ' stroke="#000" stroke-width="3"' if is_current else ""
        note = f"{status} ({current_label})" if is_current else status
        body.append(
            f'<rect class="step {escape(_token(status))}" x="{x:.1f}" y="10" width="{box:.1f}" height="40" rx="8" '
            f'fill="{colour}"{ring}><title>{escape(f"{label}: {note}")}</title></rect>'
            f'<text x="{x + box / 2:.1f}" y="35" text-anchor="middle" fill="{_ink(colour)}">{escape(label)}</text>'
            f'<text x="{x + box / 2:.1f}" y="70" text-anchor="middle">{escape(note)}</text>'
        )
        if i:
            body.append(f'<line x1="{x - 20:.1f}" y1="30" x2="{x:.1f}" y2="30" stroke="#555" stroke-width="2"/>')
    desc = "; ".join(f"{label}: {f'{s} ({current_label})' if label == current else s}" for label, s in steps)
    return _svg(title, desc, name, w * len(steps) + 10, 90, body)
