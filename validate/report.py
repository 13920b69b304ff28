"""The validation report: ``report.html`` (self-contained, inline SVG charts),
``validation.json`` and ``failures.csv`` (every failure, one line per row and rule).

Charts: failures per rule (bars), valid / invalid / missing per column (stacked bars),
reasons for rejects (pie of error failures by rule), drawn with the report kit
(crmkit.report).  Every value is HTML-escaped and personal data is masked as in the failure
cases.  No script, no network.
"""

from __future__ import annotations

import json
from pathlib import Path

from crmkit.csvout import write_people_csv
from crmkit.report import bar_chart, escape, page, pie_chart, stacked_bar_chart, table
from crmkit.validate.run import ValidationResult

SEVERITY_COLOURS = {"error": "#c62828", "warning": "#f9a825"}
PROFILE_COLOURS = {"valid": "#2e7d32", "invalid": "#c62828", "missing": "#b0bec5"}
MAX_SLICES = 10
EXAMPLES = 200


def write_report(result: ValidationResult, directory: str | Path) -> Path:
    """Write report.html, validation.json and failures.csv into ``directory``; returns the page."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    doc = result.to_json()
    (out / "validation.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    failures = result.evaluation.failure_cases()
    write_people_csv(failures, out / "failures.csv")
    path = out / "report.html"
    path.write_text(render_html(doc, failures.head(EXAMPLES).rows(named=True), failures.height), encoding="utf-8")
    return path


def _int(value: object) -> int:
    return int(value)  # type: ignore[call-overload]


def rules_chart(rules: list[dict[str, object]], width: int = 760) -> str:
    """Horizontal bars: failures per rule, coloured by severity."""
    failing = [(str(r["name"]), _int(r["failures"]), str(r["severity"])) for r in rules if _int(r["failures"]) > 0]
    return bar_chart(
        failing,
        title="failures per rule",
        name="rules",
        unit="failures",
        colours=SEVERITY_COLOURS,
        width=width,
        empty="No rule failed.",
    )


def columns_chart(columns: list[dict[str, object]], width: int = 760) -> str:
    """Stacked horizontal bars: valid / invalid / missing rows per column."""
    rows = [(str(c["field"]), {part: _int(c[part]) for part in PROFILE_COLOURS}) for c in columns]
    return stacked_bar_chart(
        rows if columns and _int(columns[0]["rows"]) else [],
        list(PROFILE_COLOURS),
        title="valid, invalid and missing values per column",
        name="columns",
        unit="rows",
        colours=PROFILE_COLOURS,
        width=width,
        empty="No rows to chart.",
    )


def rejects_pie(rules: list[dict[str, object]], size: int = 260) -> str:
    """A pie of error failures by rule: why rows would be rejected (the largest slices, the rest as one)."""
    parts = [(str(r["name"]), _int(r["failures"])) for r in rules if r["severity"] == "error" and _int(r["failures"])]
    parts.sort(key=lambda p: -p[1])
    if len(parts) > MAX_SLICES:
        parts = parts[: MAX_SLICES - 1] + [("other rules", sum(n for _, n in parts[MAX_SLICES - 1 :]))]
    return pie_chart(
        parts, title="reasons for rejects", name="pie", unit="failures", size=size, empty="No row would be rejected."
    )


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
    return table(["gate", "required", "measured", "result"], rows, name="gates")


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
    return table(
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
        name="profile",
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
    return page(
        title,
        [
            f'<p>Status: <strong class="{escape(status)} {"good" if status == "passed" else "bad"}">{escape(status)}</strong>'
            f" · {doc['rows']} rows · {doc['rows_with_errors']} with an error (would be rejected)"
            f" · {doc['rows_with_warnings']} with a warning (would load, flagged) · {doc['clean_rows']} clean"
            f" · engine {escape(doc['engine'])} · rules {escape(doc['rules_file'] or 'built-in only')}</p>"
            + (f'\n<p class="note">{escape(inp["note"])}</p>' if inp["note"] else ""),
            f"<h2>Gates</h2>\n{_gates(doc)}",
            f"<h2>Failures per rule</h2>\n{rules_chart(rules)}",
            f"<h2>Reasons for rejects</h2>\n{rejects_pie(rules)}",
            f"<h2>Valid, invalid and missing values per column</h2>\n{columns_chart(profile['columns'])}\n"
            f"{_profile_table(profile)}\n<p>{escape(key_line)}</p>\n"
            f"<p>Columns not checked (no field of {escape(doc['entity'])}): {escape(', '.join(unchecked) or 'none')}.\n"
            f"Rules not run (their columns are missing): {escape(skipped)}.</p>",
            "<h2>Rules</h2>\n"
            + table(["rule", "field", "severity", "origin", "a failing value…", "failures"], rule_rows, name="rules"),
            f"<h2>Failure cases</h2>\n<p>{failures} failures; the first {len(examples)} are listed here, all of them in\n"
            '<a href="failures.csv">failures.csv</a> (and the whole result in <a href="validation.json">validation.json</a>).\n'
            "Values of personal-data columns are masked.</p>\n"
            + table(
                ["source", "row", "key", "field", "rule", "severity", "value", "reason"], example_rows, name="failures"
            ),
        ],
    )
