"""The HTML validation report, rendered by headless Chromium: the three charts are there.

Needs Debian's ``chromium`` (``apt-get install -y chromium``; ``.ci/run`` installs it).
Without it the test skips, unless CRMKIT_REQUIRE_SERVICES=1, where it fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.chromium import browse
from tests.conftest import cli
from tests.e2e.test_validate_rules import GOOD, write_csv


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    good = GOOD["contacts"]
    rows = [{**good, "legacy_key": f"K{i}", "email": f"p{i}@example.com"} for i in range(40)]
    rows[1].update(email="<script>alert(1)</script>@")  # escaped, never run
    rows[2].update(country="XX", phone="12")
    rows[3].update(birth_date="1850-01-01")
    rows[4].update(legacy_key="K0", email="", phone="")
    rows[5].update(full_name="", birth_date="31.12.1980")
    rows[6].update(country="<b>X</b>")  # not personal data: shown, escaped
    src = write_csv(tmp / "contacts.csv", rows)
    res = cli("validate", str(src), "--entity", "contacts", "--report", str(tmp / "rep"), "--json")
    assert res.exit_code == 1, res.output
    assert json.loads(res.stdout)["report"] == str(tmp / "rep" / "report.html")
    return tmp / "rep" / "report.html"


def test_report_files_are_written(report):
    folder = report.parent
    assert {p.name for p in folder.iterdir()} == {"report.html", "validation.json", "failures.csv"}
    doc = json.loads((folder / "validation.json").read_text(encoding="utf-8"))
    lines = (folder / "failures.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "source,row,key,field,rule,severity,value,reason"
    assert len(lines) - 1 == sum(r["failures"] for r in doc["rules"])


def test_report_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    assert "&lt;b&gt;X&lt;/b&gt;" in text and "<b>X</b>" not in text, "values are HTML-escaped"
    assert not re.search(r'(src|href)="(https?:)?//', text), "no network resources"
    assert "<script" not in text


def test_chromium_renders_the_three_charts(report, tmp_path):
    res = browse(report, tmp_path, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    rules = re.search(r'<svg[^>]*class="chart rules".*?</svg>', dom, re.S)
    pie = re.search(r'<svg[^>]*class="chart pie".*?</svg>', dom, re.S)
    columns = re.search(r'<svg[^>]*class="chart columns".*?</svg>', dom, re.S)
    assert rules and pie and columns, "all three charts are in the rendered page"
    assert 'class="bar error"' in rules.group(0) and 'class="bar warning"' in rules.group(0)
    assert len(re.findall(r'class="slice"', pie.group(0))) >= 4  # several reasons for rejects
    for part in ("valid", "invalid", "missing"):
        assert f'class="seg {part}"' in columns.group(0)
    assert "email_syntax" in rules.group(0) and "legacy_key_unique" in pie.group(0)
    assert "<script>alert(1)</script>" not in dom


def test_chromium_screenshot(report, tmp_path):
    shot = tmp_path / "report.png"
    res = browse(report, tmp_path, f"--screenshot={shot}", "--window-size=1200,2000")
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
