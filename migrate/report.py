"""Run reports: ``summary.json``, ``rejects.csv`` and a self-contained ``report.html``.

The HTML page needs no network: styles are inline and the chart is an inline SVG
(stacked bars of outcomes per entity).  Values in it are HTML-escaped.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmkit.migrate.run import RunResult

OUTCOMES = ("inserted", "updated", "unchanged", "merged", "filtered", "rejected")
COLOURS = {
    "inserted": "#2e7d32",
    "updated": "#1565c0",
    "unchanged": "#90a4ae",
    "merged": "#6a1b9a",
    "filtered": "#f9a825",
    "rejected": "#c62828",
}


def write_report(result: RunResult, directory: str | Path) -> Path:
    """Write the three report files into ``directory``; returns the HTML page's path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    doc = result.to_json()
    doc["report_dir"] = str(out)
    (out / "summary.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    result.rejects.write_csv(out / "rejects.csv")
    if result.validation is not None:
        result.validation.write_report(out / "validation")
    page = out / "report.html"
    page.write_text(render_html(doc, result.rejects.head(500).rows(named=True)), encoding="utf-8")
    return page


def chart_svg(entities: dict[str, dict[str, int]], width: int = 720) -> str:
    """Horizontal stacked bars: one per entity, one segment per outcome."""
    bar_h, gap, left = 26, 12, 130
    height = len(entities) * (bar_h + gap) + 40
    scale_max = max([sum(v.get(o, 0) for o in OUTCOMES) for v in entities.values()] + [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="outcomes per entity" '
        f'width="{width}" height="{height}" class="chart">'
    ]
    for i, (name, counts) in enumerate(entities.items()):
        y = i * (bar_h + gap) + 10
        parts.append(f'<text x="{left - 8}" y="{y + bar_h * 0.7}" text-anchor="end">{html.escape(name)}</text>')
        x = float(left)
        for outcome in OUTCOMES:
            n = counts.get(outcome, 0)
            if not n:
                continue
            w = (width - left - 20) * n / scale_max
            parts.append(
                f'<rect class="bar {outcome}" x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" '
                f'height="{bar_h}" fill="{COLOURS[outcome]}"><title>{html.escape(name)} {outcome}: '
                f"{n}</title></rect>"
            )
            x += w
    legend_y = height - 12
    for j, outcome in enumerate(OUTCOMES):
        lx = left + j * 95
        parts.append(
            f'<rect x="{lx}" y="{legend_y - 10}" width="12" height="12" fill="{COLOURS[outcome]}"/>'
            f'<text x="{lx + 16}" y="{legend_y}">{outcome}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(doc: dict[str, object], rejects: list[dict[str, object]]) -> str:
    entities = doc["entities"]
    assert isinstance(entities, dict)
    cols = ["extracted", *OUTCOMES, "warnings"]
    counts = _table(["entity", *cols], [[e, *(v[c] for c in cols)] for e, v in entities.items()])
    rej = _table(
        ["entity", "source", "row", "legacy key", "reasons"],
        [[r["entity"], r["source_name"], r["row_number"], r["legacy_key"], r["reasons"]] for r in rejects],
    )
    title = f"crmkit run {doc['run_id']} — {doc['mapping']}"
    status = html.escape(str(doc["status"]))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}} table{{border-collapse:collapse;margin:1rem 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}} th{{background:#f3f3f3}}
.status{{font-weight:bold}} .succeeded{{color:#2e7d32}} .rejects_over_threshold,.failed{{color:#c62828}}
.chart text{{font-size:12px}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Status: <span class="status {status}">{status}</span>{" (dry run: nothing was written)" if doc["dry_run"] else ""}
 · target <code>{html.escape(str(doc["target"]))}</code> · started {html.escape(str(doc["started_at"]))}
 · finished {html.escape(str(doc["finished_at"]))} · max rejects {html.escape(str(doc["max_rejects"]))}</p>
{
        '<p>Validation before the load: <a href="validation/index.html">validation report</a>'
        + (" (gates passed)" if (doc.get("validation") or {}).get("passed") else " (gates failed)")
        + "</p>"
        if doc.get("validation")
        else ""
    }
<h2>Outcomes per entity</h2>
{chart_svg(entities)}
{counts}
<h2>Rejects</h2>
<p>{sum(v["rejected"] for v in entities.values())} rows rejected; the first {len(rejects)} are listed here,
all of them in <a href="rejects.csv">rejects.csv</a>.</p>
{rej}
</body></html>
"""
