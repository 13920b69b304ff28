"""The HTML report kit (crmkit.report): escaping, the page, the table and every chart kind."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from crmkit.report import (
    Html,
    bar_chart,
    escape,
    line_chart,
    num,
    page,
    pie_chart,
    stacked_bar_chart,
    table,
    text_width,
    timeline_chart,
)

SVG = "{http://www.w3.org/2000/svg}"
EVIL = "<script>alert('x')</script> & \"q\""

CHARTS: dict[str, Callable[[], str]] = {
    "bar": lambda: bar_chart([("email_syntax", 12, "error"), ("电话", 3.5, "warning")], title="failures", unit="rows"),
    "stacked": lambda: stacked_bar_chart(
        [("销售部", {"accounts": 40, "contacts": 7}), ("service", {"accounts": 1234})],
        ["accounts", "contacts"],
        title="rows per department",
    ),
    "pie": lambda: pie_chart([("邮箱", 30), ("phone", 10), ("zero", 0)], title="reasons"),
    "donut": lambda: pie_chart([("only", 17)], title="one slice", donut=True),
    "line": lambda: line_chart(
        ["一月", "二月", "三月"], {"p95": [120, 180.5, 90], "p50": [40, 42, 39]}, title="latency"
    ),
    "timeline": lambda: timeline_chart(
        [("pilot", "migrated"), ("北区", "pending")], title="waves", current="北区", current_label="next"
    ),
}
NUMBERS = {
    "bar": ["12", "3.5"],
    "stacked": ["40", "7", "47", "1,234"],
    "pie": ["30", "10", "75.0%", "25.0%"],
    "donut": ["17", "100.0%"],
    "line": ["120", "180.5", "90", "42"],
    "timeline": ["pilot", "北区", "pending (next)"],
}


def _texts(svg: ET.Element) -> str:
    return " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))


def test_escape_makes_text_safe_and_leaves_html_alone() -> None:
    assert escape(EVIL) == "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;"
    assert escape(None) == "" and escape(3) == "3"
    link = Html('<a href="x">y</a>')
    assert escape(link) is link and escape(escape(EVIL)) == escape(EVIL)


def test_table_escapes_every_header_cell_and_caption() -> None:
    out = table([EVIL, "n"], [[EVIL, 1], [None, Html("<b>ok</b>")]], caption=EVIL, name="t")
    assert "<script>" not in out and out.count("&lt;script&gt;") == 3
    assert "<td></td>" in out and "<td><b>ok</b></td>" in out and out.startswith('<table class="t">')
    root = ET.fromstring(out)
    assert [len(r) for r in root.iter("tr")] == [2, 2, 2]


def test_page_is_complete_self_contained_and_prints_a4_landscape() -> None:
    doc = page(EVIL, ["<p>one</p>", "", "<p>two</p>"], lang="zh-CN")
    assert doc.startswith('<!doctype html>\n<html lang="zh-CN">')
    assert doc.count("<section>") == 2 and doc.rstrip().endswith("</body></html>")
    assert f"<title>{escape(EVIL)}</title>" in doc and f"<h1>{escape(EVIL)}</h1>" in doc and "<script" not in doc
    assert '"Noto Sans CJK SC"' in doc and "@page{size:A4 landscape" in doc and "@media print" in doc
    assert not re.search(r"https?://|@import|url\(", doc.split("<body>")[0]), "nothing from the network"
    assert 'lang="&quot;' in page("t", [], lang='"><script>')


@pytest.mark.parametrize("kind", sorted(CHARTS))
def test_every_chart_is_valid_svg_with_a_text_alternative_and_its_numbers(kind: str) -> None:
    svg = ET.fromstring(CHARTS[kind]())
    assert svg.tag == f"{SVG}svg" and svg.get("role") == "img" and svg.get("aria-label")
    assert "chart" in (svg.get("class") or "").split()
    title, desc = svg.find(f"{SVG}title"), svg.find(f"{SVG}desc")
    assert title is not None and title.text and desc is not None and desc.text
    labels = _texts(svg)
    for number in NUMBERS[kind]:
        assert number in labels, f"{number} is not a label of the {kind} chart: {labels}"
        assert number.rstrip("%").split(" ")[0] in desc.text, f"{number} is not in the text alternative"


@pytest.mark.parametrize(
    "chart",
    [
        lambda label: bar_chart([(label, 1, label)], title=label),
        lambda label: stacked_bar_chart([(label, {label: 2})], [label], title=label),
        lambda label: pie_chart([(label, 1), ("b", 1)], title=label),
        lambda label: line_chart([label], {label: [1]}, title=label),
        lambda label: timeline_chart([(label, label)], title=label, current=label),
    ],
)
def test_every_chart_escapes_its_labels(chart: Callable[[str], str]) -> None:
    out = chart(EVIL)
    assert "<script>" not in out and "&lt;script&gt;" in out
    ET.fromstring(out)


def test_empty_data_says_so_instead_of_crashing() -> None:
    outs = [
        bar_chart([], title="t", empty="No rule failed."),
        stacked_bar_chart([], ["a"], title="t"),
        stacked_bar_chart([("x", {})], [], title="t"),
        pie_chart([("zero", 0)], title="t"),
        line_chart([], {"a": [1]}, title="t"),
        line_chart(["x"], {}, title="t"),
        timeline_chart([], title="t"),
    ]
    assert outs[0] == '<p class="none">No rule failed.</p>'
    for out in outs:
        assert ET.fromstring(out).get("class") == "none"


def test_zero_and_negative_values_draw_without_crashing() -> None:
    for out in (
        bar_chart([("a", 0), ("b", -3)], title="t"),
        stacked_bar_chart([("a", {"x": 0})], ["x"], title="t"),
        line_chart(["a", "b"], {"s": [-2, 0]}, title="t"),
    ):
        ET.fromstring(out)


def test_a_stacked_chart_legend_gives_each_series_total() -> None:
    svg = ET.fromstring(stacked_bar_chart([("a", {"x": 2, "y": 1}), ("b", {"x": 3})], ["x", "y"], title="t"))
    assert "x: 5" in _texts(svg) and "y: 1" in _texts(svg)
    assert [r.get("class") for r in svg.iter(f"{SVG}rect") if r.get("class")] == ["seg x", "seg y", "seg x"]


def test_numbers_and_widths() -> None:
    assert num(1234) == "1,234" and num(2.0) == "2" and num(0.125) == "0.12" and num(1.5) == "1.5"
    assert text_width("销售") > text_width("ab") > 0 and text_width("") == 0
