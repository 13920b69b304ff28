"""Run reports: ``summary.json``, ``rejects.csv``, ``warnings.csv`` and a self-contained ``report.html``.

Rejects (rows that did not load) and warnings (rows that loaded with a value left empty) are
listed apart, each row with its severity, in the files, the page and the JSON summary.

The HTML page is a page of the report kit (crmkit.report): no network, the chart an inline
SVG (stacked bars of outcomes per entity), every value escaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from crmkit.csvout import write_people_csv
from crmkit.report import escape, page, stacked_bar_chart, table

if TYPE_CHECKING:
    from crmkit.migrate.pipeline.result import RunResult

#: rejects and warnings listed on the page (each); the CSV files hold all of them
SHOWN = 500
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
    """Write the report files into ``directory``; returns the HTML page's path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    doc = result.to_json()
    doc["report_dir"] = str(out)
    (out / "summary.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_people_csv(result.rejects, out / "rejects.csv")
    write_people_csv(result.warnings, out / "warnings.csv")
    if result.validation is not None:
        result.validation.write_report(out / "validation")
    path = out / "report.html"
    shown = [frame.head(SHOWN).rows(named=True) for frame in (result.rejects, result.warnings)]
    path.write_text(render_html(doc, *shown), encoding="utf-8")
    return path


def chart_svg(entities: dict[str, dict[str, int]], width: int = 720) -> str:
    """Horizontal stacked bars: one per entity, one segment per outcome."""
    return stacked_bar_chart(
        [(name, {o: counts.get(o, 0) for o in OUTCOMES}) for name, counts in entities.items()],
        OUTCOMES,
        title="outcomes per entity",
        name="outcomes",
        unit="rows",
        colours=COLOURS,
        width=width,
        empty="No entity was run.",
    )


def _summary(doc: dict[str, object]) -> str:
    status = str(doc["status"])
    tone = "good" if status == "succeeded" else "bad"
    validation = doc.get("validation")
    gates = ""
    if validation:
        passed = isinstance(validation, dict) and validation.get("passed")
        gates = (
            '<p>Validation before the load: <a href="validation/index.html">validation report</a>'
            + (" (gates passed)" if passed else " (gates failed)")
            + "</p>"
        )
    return (
        f'<p>Status: <strong class="status {escape(status)} {tone}">{escape(status)}</strong>'
        f"{' (dry run: nothing was written)' if doc['dry_run'] else ''}"
        f" · target <code>{escape(doc['target'])}</code> · started {escape(doc['started_at'])}"
        f" · finished {escape(doc['finished_at'])} · max rejects {escape(doc['max_rejects'])}</p>\n{gates}"
    )


def _listed(rows: list[dict[str, object]], name: str) -> str:
    return table(
        ["entity", "source", "row", "legacy key", "reasons"],
        [[r["entity"], r["source_name"], r["row_number"], r["legacy_key"], r["reasons"]] for r in rows],
        name=name,
    )


def render_html(
    doc: dict[str, object], rejects: list[dict[str, object]], warnings: list[dict[str, object]] | None = None
) -> str:
    entities = doc["entities"]
    assert isinstance(entities, dict)
    warnings = warnings or []
    cols = ["extracted", *OUTCOMES, "warnings"]
    counts = table(["entity", *cols], [[e, *(v[c] for c in cols)] for e, v in entities.items()], name="counts")
    rejected = sum(v["rejected"] for v in entities.values())
    warned = sum(v["warnings"] for v in entities.values())
    return page(
        f"crmkit {'dry run' if doc['run_id'] is None else 'run ' + str(doc['run_id'])} — {doc['mapping']}",
        [
            _summary(doc),
            f"<h2>Outcomes per entity</h2>\n{chart_svg(entities)}\n{counts}",
            f"<h2>Rejects</h2>\n<p>{rejected} rows rejected (not loaded); the first {len(rejects)} are listed here,\n"
            f'all of them in <a href="rejects.csv">rejects.csv</a>.</p>\n{_listed(rejects, "rejects")}',
            f"<h2>Warnings</h2>\n<p>{warned} rows loaded with a warning (a value left empty); the first "
            f'{len(warnings)} are listed here,\nall of them in <a href="warnings.csv">warnings.csv</a>.</p>\n'
            f"{_listed(warnings, 'warnings')}",
        ],
    )
