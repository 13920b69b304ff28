"""The validation report: ``report.html`` (self-contained, inline SVG charts),
``validation.json`` and ``failures.csv`` (every failure, one line per row and rule).

Charts: failures per rule (bars), valid / invalid / missing per column (stacked bars),
reasons for rejects (pie of error failures by rule).  Every value is HTML-escaped and
personal data is masked as in the failure cases.  No script, no network.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from crmkit.validate.run import ValidationResult

SEVERITY_COLOURS = {"error": "#c62828", "warning": "#f9a825"}
PROFILE_COLOURS = {"valid": "#2e7d32", "invalid": "#c62828", "missing": "#b0bec5"}
PIE_COLOURS = (
    "#c62828",
    "#1565c0",
    "#6a1b9a",
    "#ef6c00",
    "#00838f",
    "#558b2f",
    "#ad1457",
    "#4e342e",
    "#283593",
    "#9e9d24",
)
EXAMPLES = 200


def write_report(result: ValidationResult, directory: str | Path) -> Path:
    """Write report.html, validation.json and failures.csv into ``directory``; returns the page."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    doc = result.to_json()
    (out / "validation.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    failures = result.evaluation.failure_cases()
    failures.write_csv(out / "failures.csv")
    page = out / "report.html"
    page.write_text(render_html(doc, failures.head(EXAMPLES).rows(named=True), failures.height), encoding="utf-8")
    return page


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _svg(label: str, cls: str, width: int, height: int, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_e(label)}" class="chart {cls}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">' + "".join(body) + "</svg>"
    )


def rules_chart(rules: list[dict[str, object]], width: int = 760) -> str:
    """Horizontal bars: failures per rule, coloured by severity."""
    failing = [r for r in rules if int(r["failures"]) > 0]  # type: ignore[call-overload]
    if not failing:
        return '<p class="none">No rule failed.</p>'
    bar, gap, left = 20, 8, 250
    top = max(int(r["failures"]) for r in failing)  # type: ignore[call-overload]
    height = len(failing) * (bar + gap) + 10
    body = []
    for i, r in enumerate(failing):
        y, n = i * (bar + gap) + 5, int(r["failures"])  # type: ignore[call-overload]
        w = max((width - left - 70) * n / top, 1)
        body.append(
            f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{_e(r["name"])}</text>'
            f'<rect class="bar {_e(r["severity"])}" x="{left}" y="{y}" width="{w:.1f}" height="{bar}" '
            f'fill="{SEVERITY_COLOURS[str(r["severity"])]}"><title>{_e(r["name"])} ({_e(r["severity"])}): '
            f'{n} failures</title></rect><text x="{left + w + 5:.1f}" y="{y + 15}">{n}</text>'
        )
    return _svg("failures per rule", "rules", width, height, body)


def columns_chart(columns: list[dict[str, object]], width: int = 760) -> str:
    """Stacked horizontal bars: valid / invalid / missing rows per column."""
    if not columns or not int(columns[0]["rows"]):  # type: ignore[call-overload]
        return '<p class="none">No rows to chart.</p>'
    bar, gap, left = 20, 8, 160
    height = len(columns) * (bar + gap) + 40
    body = []
    for i, c in enumerate(columns):
        y, x, rows = i * (bar + gap) + 5, float(left), int(c["rows"])  # type: ignore[call-overload]
        body.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{_e(c["field"])}</text>')
        for part in ("valid", "invalid", "missing"):
            n = int(c[part])  # type: ignore[call-overload]
            if not n:
                continue
            w = (width - left - 20) * n / rows
            body.append(
                f'<rect class="seg {part}" x="{x:.1f}" y="{y}" width="{max(w, 0.5):.1f}" height="{bar}" '
                f'fill="{PROFILE_COLOURS[part]}"><title>{_e(c["field"])} {part}: {n}</title></rect>'
            )
            x += w
    legend_y = height - 12
    for j, part in enumerate(PROFILE_COLOURS):
        lx = left + j * 100
        body.append(
            f'<rect x="{lx}" y="{legend_y - 10}" width="12" height="12" fill="{PROFILE_COLOURS[part]}"/>'
            f'<text x="{lx + 16}" y="{legend_y}">{part}</text>'
        )
    return _svg("valid, invalid and missing values per column", "columns", width, height, body)


def _slice(cx: float, cy: float, r: float, a0: float, a1: float) -> str:
    x0, y0 = cx + r * math.sin(a0), cy - r * math.cos(a0)
    x1, y1 = cx + r * math.sin(a1), cy - r * math.cos(a1)
    large = 1 if a1 - a0 > math.pi else 0
    return f"M{cx},{cy} L{x0:.2f},{y0:.2f} A{r},{r} 0 {large} 1 {x1:.2f},{y1:.2f} Z"


def rejects_pie(rules: list[dict[str, object]], size: int = 260) -> str:
    """A pie of error failures by rule: why rows would be rejected."""
    parts = [
        (str(r["name"]), int(r["failures"]))
        for r in rules  # type: ignore[call-overload]
        if r["severity"] == "error" and int(r["failures"]) > 0
    ]  # type: ignore[call-overload]
    if not parts:
        return '<p class="none">No row would be rejected.</p>'
    parts.sort(key=lambda p: -p[1])
    if len(parts) > len(PIE_COLOURS):
        parts = parts[: len(PIE_COLOURS) - 1] + [("other rules", sum(n for _, n in parts[len(PIE_COLOURS) - 1 :]))]
    total = sum(n for _, n in parts)
    cx = cy = size / 2
    r, a, body = size / 2 - 10, 0.0, []
    for i, (name, n) in enumerate(parts):
        colour, tip = PIE_COLOURS[i], f"<title>{_e(name)}: {n} ({100 * n / total:.1f}%)</title>"
        if n == total:
            body.append(f'<circle class="slice" cx="{cx}" cy="{cy}" r="{r}" fill="{colour}">{tip}</circle>')
        else:
            a1 = a + 2 * math.pi * n / total
            body.append(f'<path class="slice" d="{_slice(cx, cy, r, a, a1)}" fill="{colour}">{tip}</path>')
            a = a1
    legend_x = size + 10
    for i, (name, n) in enumerate(parts):
        y = 20 + i * 20
        body.append(
            f'<rect x="{legend_x}" y="{y - 10}" width="12" height="12" fill="{PIE_COLOURS[i]}"/>'
            f'<text x="{legend_x + 16}" y="{y}">{_e(name)}: {n} ({100 * n / total:.1f}%)</text>'
        )
    return _svg("reasons for rejects", "pie", size + 330, max(size, 20 * len(parts) + 20), body)


def _table(headers: list[str], rows: list[list[object]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _pct(value: object) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"  # type: ignore[arg-type]


def _gates(doc: dict[str, object]) -> str:
    gates = doc["gates"]
    assert isinstance(gates, list)
    rows = [
        [
            g["name"],
            g["required"],
            g["detail"],
            "inconclusive" + (" (passes)" if g["passed"] else " (fails)")
            if g["inconclusive"]
            else ("passed" if g["passed"] else "FAILED"),
        ]
        for g in gates
    ]
    return _table(["gate", "required", "measured", "result"], rows, "gates")


def _profile_table(profile: dict[str, object]) -> str:
    cols = profile["columns"]
    assert isinstance(cols, list)
    rows = [
        [
            c["field"],
            _pct(c["completeness"]),
            c["distinct"],
            c["valid"],
            c["invalid"],
            c["missing"],
            _pct(c["conformance"]),
            "; ".join(f"{v} ({n})" for v, n in c["top_invalid"]),
        ]
        for c in cols
    ]
    return _table(
        [
            "column",
            "completeness",
            "distinct",
            "valid",
            "invalid",
            "missing",
            "conformance",
            "most common invalid values",
        ],
        rows,
        "profile",
    )


def render_html(doc: dict[str, object], examples: list[dict[str, object]], failures: int) -> str:
    rules, profile, inp = doc["rules"], doc["profile"], doc["input"]
    assert isinstance(rules, list) and isinstance(profile, dict) and isinstance(inp, dict)
    key = profile["key"]
    status = str(doc["status"])
    title = f"Validation of {doc['entity']}: {inp['label']}"
    rule_rows = [[r["name"], r["field"], r["severity"], r["origin"], r["text"], r["failures"]] for r in rules]
    skipped = ", ".join(str(s["name"]) for s in doc["skipped_rules"]) or "none"  # type: ignore[attr-defined]
    unchecked = inp["unchecked_columns"]
    example_rows = [
        [f["source"], f["row"], f["key"], f["field"], f["rule"], f["severity"], f["value"], f["reason"]]
        for f in examples
    ]
    key_line = (
        f"Legacy key: {key['missing']} missing, {key['duplicate_rows']} duplicate rows "
        f"({key['duplicated_keys']} keys seen more than once)."
        if key["present"]
        else "No legacy key column: duplicates on the key were not checked."
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}}
table{{border-collapse:collapse;margin:1rem 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
th{{background:#f3f3f3}} .passed{{color:#2e7d32}} .failed{{color:#c62828}} .chart text{{font-size:12px}}
.charts{{display:flex;flex-wrap:wrap;gap:2rem}} .none{{color:#555;font-style:italic}} .note{{color:#8a6d00}}
</style></head><body>
<h1>{_e(title)}</h1>
<p>Status: <strong class="{_e(status)}">{_e(status)}</strong> · {doc["rows"]} rows · {doc["rows_with_errors"]} with an
error (would be rejected) · {doc["rows_with_warnings"]} with a warning (would load, flagged) · {doc["clean_rows"]} clean
· engine {_e(doc["engine"])} · rules {_e(doc["rules_file"] or "built-in only")}</p>
{f'<p class="note">{_e(inp["note"])}</p>' if inp["note"] else ""}
<h2>Gates</h2>
{_gates(doc)}
<h2>Failures per rule</h2>
{rules_chart(rules)}
<h2>Reasons for rejects</h2>
{rejects_pie(rules)}
<h2>Valid, invalid and missing values per column</h2>
{columns_chart(profile["columns"])}
{_profile_table(profile)}
<p>{_e(key_line)}</p>
<p>Columns not checked (no field of {_e(doc["entity"])}): {_e(", ".join(unchecked) or "none")}.
Rules not run (their columns are missing): {_e(skipped)}.</p>
<h2>Rules</h2>
{_table(["rule", "field", "severity", "origin", "a failing value…", "failures"], rule_rows, "rules")}
<h2>Failure cases</h2>
<p>{failures} failures; the first {len(examples)} are listed here, all of them in
<a href="failures.csv">failures.csv</a> (and the whole result in <a href="validation.json">validation.json</a>).
Values of personal-data columns are masked.</p>
{_table(["source", "row", "key", "field", "rule", "severity", "value", "reason"], example_rows, "failures")}
</body></html>
"""
