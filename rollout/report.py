"""The rollout report: a self-contained HTML page — timeline of waves, gates, rows per department."""

from __future__ import annotations

import html
from pathlib import Path

from crmkit.rollout.engine import Status

_STATUS_COLOUR = {
    "migrated": "#2e7d32",
    "pending": "#90a4ae",
    "rolled_back": "#c62828",
    "pass": "#2e7d32",
    "fail": "#c62828",
    "inconclusive": "#f9a825",
}
_ENTITY_COLOUR = {"accounts": "#1565c0", "contacts": "#6a1b9a", "opportunities": "#ef6c00"}


def _timeline(st: Status) -> str:
    w = 160
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{w * len(st.waves) + 20}" height="90">']
    for i, wave in enumerate(st.waves):
        x = 10 + i * w
        colour = _STATUS_COLOUR.get(wave.status, "#90a4ae")
        nxt = ' stroke="#000" stroke-width="3"' if wave.name == st.next_wave else ""
        parts.append(
            f'<rect class="wave {html.escape(wave.status)}" x="{x}" y="10" width="{w - 20}" height="40" rx="8" '
            f'fill="{colour}"{nxt}><title>{html.escape(wave.name)}: {wave.status}</title></rect>'
        )
        parts.append(
            f'<text x="{x + (w - 20) / 2}" y="35" text-anchor="middle" fill="#fff">{html.escape(wave.name)}</text>'
        )
        parts.append(
            f'<text x="{x + (w - 20) / 2}" y="70" text-anchor="middle">{html.escape(wave.status)}'
            f"{' (next)' if wave.name == st.next_wave else ''}</text>"
        )
        if i:
            parts.append(f'<line x1="{x - 20}" y1="30" x2="{x}" y2="30" stroke="#555" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _department_chart(st: Status) -> str:
    rows = [(w.name, dept, ent, n) for w in st.waves for dept, ents in w.counts.items() for ent, n in ents.items()]
    if not rows:
        return "<p>No wave migrated yet.</p>"
    depts = sorted({r[1] for r in rows})
    top = max(sum(n for (_, d, _, n) in rows if d == dept) for dept in depts) or 1
    bar_h, width, left = 24, 640, 120
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart departments" width="{width}" '
        f'height="{len(depts) * (bar_h + 10) + 40}">'
    ]
    for i, dept in enumerate(depts):
        y = 10 + i * (bar_h + 10)
        parts.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{html.escape(dept)}</text>')
        x = float(left)
        for ent in _ENTITY_COLOUR:
            n = sum(r[3] for r in rows if r[1] == dept and r[2] == ent)
            if not n:
                continue
            bw = (width - left - 20) * n / top
            parts.append(
                f'<rect class="bar {ent}" x="{x:.1f}" y="{y}" width="{bw:.1f}" height="{bar_h}" '
                f'fill="{_ENTITY_COLOUR[ent]}"><title>{html.escape(dept)} {ent}: {n}</title></rect>'
            )
            x += bw
    ly = len(depts) * (bar_h + 10) + 30
    for j, ent in enumerate(_ENTITY_COLOUR):
        parts.append(
            f'<rect x="{left + j * 130}" y="{ly - 10}" width="12" height="12" fill="{_ENTITY_COLOUR[ent]}"/>'
            f'<text x="{left + j * 130 + 16}" y="{ly}">{ent}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _gates(st: Status) -> str:
    wave = next((w for w in st.waves if w.name == st.next_wave), None)
    if wave is None:
        return "<p>Every wave is migrated.</p>"
    rows = "".join(
        f'<tr class="{g.status}"><td>{html.escape(g.gate)}</td><td>{html.escape(g.subject)}</td>'
        f'<td style="color:{_STATUS_COLOUR[g.status]}">{g.status}</td><td>{html.escape(g.measured)}</td>'
        f"<td>{html.escape(g.required)}</td><td>{html.escape(g.hint)}</td></tr>"
        for g in wave.gates
    )
    return (
        f"<h2>Gates of the next wave: {html.escape(wave.name)}</h2><table><thead><tr><th>gate</th><th>judges</th>"
        f"<th>status</th><th>measured</th><th>required</th><th>what to do</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def render(st: Status) -> str:
    waves = "".join(
        f"<tr><td>{html.escape(w.name)}</td><td>{w.status}</td><td>{w.migrated_at or ''}</td>"
        f"<td>{', '.join(map(str, w.run_ids))}</td></tr>"
        for w in st.waves
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rollout {html.escape(st.plan)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}} table{{border-collapse:collapse;margin:1rem 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}} th{{background:#f3f3f3}} svg text{{font-size:12px}}</style>
</head><body>
<h1>Rollout {html.escape(st.plan)}</h1>
<p>Target <code>{html.escape(st.target)}</code>. Next: <b>{html.escape(st.next_wave or "none")}</b>
{"— ready to advance" if st.ready else ("— waiting on its gates" if st.next_wave else "")}.</p>
<h2>Timeline</h2>
{_timeline(st)}
<table><thead><tr><th>wave</th><th>status</th><th>migrated at</th><th>runs</th></tr></thead><tbody>{waves}</tbody></table>
{_gates(st)}
<h2>Rows migrated per department</h2>
{_department_chart(st)}
</body></html>
"""


def write(st: Status, path: str | Path) -> Path:
    out = Path(path)
    if out.suffix != ".html":
        out.mkdir(parents=True, exist_ok=True)
        out = out / "rollout.html"
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(st), encoding="utf-8")
    return out
