"""The report kit's pages as headless Chromium renders them: every chart kind, Chinese text intact.

The migration and rollout reports are rendered from made-up facts here (no database);
tests/e2e/test_validate_report.py renders a validation report end to end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crmkit.migrate.report import render_html
from crmkit.report import bar_chart, line_chart, page, pie_chart, stacked_bar_chart, table, timeline_chart
from crmkit.rollout.engine import Status, WaveStatus
from crmkit.rollout.gates import GateResult
from tests.chromium import browse, dump_dom


def _svg(dom: str, name: str) -> str:
    found = re.search(rf'<svg[^>]*class="chart {name}".*?</svg>', dom, re.S)
    assert found, f"no chart {name} in the rendered page"
    return found.group(0)


@pytest.fixture(scope="module")
def kit_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sections = [
        "<h2>失败规则</h2>"
        + bar_chart([("邮箱格式", 12, "error"), ("电话号码", 5, "warning")], title="每条规则的失败数"),
        "<h2>部门</h2>"
        + stacked_bar_chart(
            [("华东销售部", {"客户": 40, "联系人": 7}), ("客服中心", {"客户": 13})],
            ["客户", "联系人"],
            title="各部门迁移行数",
        ),
        "<h2>拒绝原因</h2>" + pie_chart([("缺少姓名", 30), ("国家代码无效", 10)], title="拒绝原因", donut=True),
        "<h2>趋势</h2>" + line_chart(["一月", "二月", "三月"], {"已迁移": [100, 250, 410]}, title="每月迁移行数"),
        "<h2>波次</h2>" + timeline_chart([("试点", "done"), ("北区", "pending")], title="上线波次", current="北区"),
        table(["部门", "行数"], [["华东销售部", 47]], caption="汇总"),
    ]
    path = tmp_path_factory.mktemp("kit") / "kit.html"
    path.write_text(page("客户迁移报告", sections, lang="zh-CN"), encoding="utf-8")
    return path


def test_every_chart_kind_renders_with_its_chinese_labels(kit_page, tmp_path):
    dom = dump_dom(kit_page, tmp_path)
    assert re.search(r'<html lang="zh-CN">', dom) and "<title>客户迁移报告</title>" in dom
    expected = {
        "bars": ["邮箱格式", "电话号码", ">12<"],
        "stacked": ["华东销售部", "客服中心", "客户: 53", "联系人: 7", ">47<"],
        "pie": ["缺少姓名: 30 (75.0%)", "国家代码无效: 10 (25.0%)"],
        "line": ["一月", "三月", ">410<", "已迁移"],
        "timeline": ["试点", "北区", "pending (current)"],
    }
    for name, texts in expected.items():
        svg = _svg(dom, name)
        assert 'role="img"' in svg and "<title>" in svg and "<desc>" in svg
        for text in texts:
            assert text in svg, f"{text!r} is not in the rendered {name} chart"
    assert "<caption>汇总</caption>" in dom and "<td>华东销售部</td>" in dom


def test_the_kit_page_prints_on_a4_landscape(kit_page, tmp_path):
    pdf = tmp_path / "kit.pdf"
    res = browse(kit_page, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert res.returncode == 0 and pdf.exists(), res.stderr[-2000:]
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
    assert boxes, "the PDF has no page size"
    width, height = (float(v) for v in boxes[0])
    assert (round(width), round(height)) == (842, 595), "A4 landscape is 842 x 595 points"


def test_the_migration_report_renders_in_chromium(tmp_path):
    doc = {
        "run_id": 7,
        "mapping": "acme.yaml",
        "status": "succeeded",
        "dry_run": False,
        "target": "sqlite:///crm.db",
        "started_at": "2026-01-01T10:00:00",
        "finished_at": "2026-01-01T10:01:00",
        "max_rejects": "1%",
        "validation": None,
        "entities": {
            "accounts": {"extracted": 60, "inserted": 55, "updated": 0, "unchanged": 0, "merged": 2}
            | {"filtered": 0, "rejected": 3, "warnings": 1},
            "联系人": {"extracted": 10, "inserted": 10, "updated": 0, "unchanged": 0, "merged": 0}
            | {"filtered": 0, "rejected": 0, "warnings": 0},
        },
    }
    rejects = [{"entity": "accounts", "source_name": "erp", "row_number": 4, "legacy_key": "A4", "reasons": "<x>"}]
    path = tmp_path / "report.html"
    path.write_text(render_html(doc, rejects), encoding="utf-8")
    svg = _svg(dump_dom(path, tmp_path), "outcomes")
    assert 'class="seg inserted"' in svg and 'class="seg rejected"' in svg and "联系人" in svg and ">55<" in svg


def test_the_rollout_report_renders_in_chromium(tmp_path):
    from crmkit.rollout.report import write

    gate = GateResult("feedback", "pilot", "fail", "mean 3.1", "mean ≥ 3.5", "collect more answers")
    waves = [
        WaveStatus(
            "pilot", 0, "migrated", [1], "2026-01-01", counts={"销售部": {"accounts": 12, "contacts": 30, "leads": 5}}
        ),
        WaveStatus("north", 1, "pending", [], None, gates=[gate]),
    ]
    page_path = write(Status("acme", "sqlite:///crm.db", waves, "north", [gate]), tmp_path / "rollout.html")
    dom = dump_dom(page_path, tmp_path)
    assert "pending (next)" in _svg(dom, "timeline")
    departments = _svg(dom, "departments")
    assert "销售部" in departments and 'class="seg contacts"' in departments and ">47<" in departments
    assert 'class="seg leads"' in departments, "an entity beyond accounts, contacts and opportunities is drawn too"
    assert 'class="bad">fail<' in dom and "collect more answers" in dom
