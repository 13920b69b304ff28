"""The page and the table of every crmkit report, and the escape helper they share.

:func:`page` wraps HTML fragments into one self-contained document (inline CSS, no script,
no network), so every report has the same look on screen and on paper (A4 landscape).
Everything that is not :class:`Html` is escaped on the way in.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

#: fonts that render Latin and CJK text on Linux, macOS and Windows without a download
FONTS = 'system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Microsoft YaHei", sans-serif'

#: the colours of the page; charts use the same ones (crmkit.report.charts)
TONES = {"good": "#2e7d32", "bad": "#c62828", "warn": "#f9a825", "muted": "#90a4ae", "ink": "#222"}

CSS = f"""
body{{font-family:{FONTS};margin:2rem;color:{TONES["ink"]};max-width:1200px;line-height:1.4}}
h1{{font-size:1.6rem;margin:0 0 .5rem}} h2{{font-size:1.25rem;margin:1.5rem 0 .5rem}}
table{{border-collapse:collapse;margin:1rem 0}} caption{{text-align:left;font-weight:bold;padding:4px 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}} th{{background:#f3f3f3}}
.chart{{display:block;max-width:100%;height:auto;margin:.5rem 0}} .chart text{{font-size:12px;font-family:{FONTS}}}
.good{{color:{TONES["good"]}}} .bad{{color:{TONES["bad"]}}} .warn{{color:#8a6d00}} .none{{color:#555;font-style:italic}}
.note{{color:#8a6d00}}
@page{{size:A4 landscape;margin:12mm}}
@media print{{body{{margin:0;max-width:none;font-size:10pt}} section{{break-inside:avoid}} a{{color:inherit}}
th{{background:#eee;-webkit-print-color-adjust:exact;print-color-adjust:exact}}
.chart{{-webkit-print-color-adjust:exact;print-color-adjust:exact}}}}
"""


class Html(str):
    """Markup that is already safe: :func:`escape` passes it through unchanged."""

    __slots__ = ()


def escape(value: object) -> Html:
    """``value`` as text for HTML or SVG: ``None`` is empty, :class:`Html` stays as it is."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value)))


def table(
    headers: Sequence[object], rows: Iterable[Sequence[object]], *, caption: str | None = None, name: str = ""
) -> Html:
    """A table with one header row; every header and cell is escaped (pass :class:`Html` for a link)."""
    cls = f' class="{escape(name)}"' if name else ""
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return Html(f"<table{cls}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def page(title: str, sections: Iterable[str], lang: str = "en") -> Html:
    """A complete HTML document: ``title`` as its title and heading, then each fragment as a section.

    Fragments are HTML (build them with :func:`escape`, :func:`table` and the charts); empty
    ones are left out.  CSS classes for text: ``good``, ``bad``, ``warn``, ``none``, ``note``.
    """
    body = "\n".join(f"<section>\n{s}\n</section>" for s in sections if s)
    return Html(
        f'<!doctype html>\n<html lang="{escape(lang)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style></head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )
