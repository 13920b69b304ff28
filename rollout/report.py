"""The rollout report: a self-contained HTML page — timeline of waves, gates, rows per department.

Drawn with the report kit (crmkit.report): no script, no network, every value escaped.
"""

from __future__ import annotations

from pathlib import Path

from crmkit.report import TONES, Html, escape, page, stacked_bar_chart, table, timeline_chart
from crmkit.rollout.engine import Status

_STATUS_COLOUR = {
    "migrated": TONES["good"],
    "pending": TONES["muted"],
    "rolled_back": TONES["bad"],
}
_GATE_TONE = {"pass": "good", "fail": "bad", "inconclusive": "warn"}
_ENTITY_COLOUR = {"accounts": "#1565c0", "contacts": "#6a1b9a", "opportunities": "#ef6c00"}


def _timeline(st: Status) -> str:
    return timeline_chart(
        [(w.name, w.status) for w in st.waves],
        title="waves of the rollout",
        current=st.next_wave,
        current_label="next",
        colours=_STATUS_COLOUR,
        empty="The plan has no wave.",
    )


def _department_chart(st: Status) -> str:
    per_dept: dict[str, dict[str, float]] = {}
    for wave in st.waves:
        for dept, ents in wave.counts.items():
            for ent, n in ents.items():
                row = per_dept.setdefault(dept, {})
                row[ent] = row.get(ent, 0) + n
    seen = {ent for row in per_dept.values() for ent in row}
    series = [e for e in _ENTITY_COLOUR if e in seen] + sorted(seen - set(_ENTITY_COLOUR))
    return stacked_bar_chart(
        sorted(per_dept.items()),
        series,
        title="rows migrated per department",
        name="departments",
        unit="rows",
        colours=_ENTITY_COLOUR,
        width=640,
        empty="No wave migrated yet.",
    )


def _tone(status: str) -> Html:
    return Html(f'<span class="{_GATE_TONE.get(status, "")}">{escape(status)}</span>')


def _gates(st: Status) -> str:
    wave = next((w for w in st.waves if w.name == st.next_wave), None)
    if wave is None:
        return "<p>Every wave is migrated.</p>"
    rows = [[g.gate, g.subject, _tone(g.status), g.measured, g.required, g.hint] for g in wave.gates]
    return f"<h2>Gates of the next wave: {escape(wave.name)}</h2>\n" + table(
        ["gate", "judges", "status", "measured", "required", "what to do"], rows, name="gates"
    )


def render(st: Status) -> str:
    waves = [[w.name, w.status, w.migrated_at or "", ", ".join(map(str, w.run_ids))] for w in st.waves]
    state = "— ready to advance" if st.ready else ("— waiting on its gates" if st.next_wave else "")
    return page(
        f"Rollout {st.plan}",
        [
            f"<p>Target <code>{escape(st.target)}</code>. Next: <b>{escape(st.next_wave or 'none')}</b>\n{state}.</p>",
            f"<h2>Timeline</h2>\n{_timeline(st)}\n"
            + table(["wave", "status", "migrated at", "runs"], waves, name="waves"),
            _gates(st),
            f"<h2>Rows migrated per department</h2>\n{_department_chart(st)}",
        ],
    )


def write(st: Status, path: str | Path) -> Path:
    out = Path(path)
    if out.suffix != ".html":
        out.mkdir(parents=True, exist_ok=True)
        out = out / "rollout.html"
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(st), encoding="utf-8")
    return out
