"""The one CSV writer for files people open: BOM, no live formulas, capped cells."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from crmkit.csvout import MAX_CELL, TRUNCATED, write_people_csv

HOSTILE = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "plain", "张伟", None]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_formula_cells_are_text_and_the_file_has_a_bom(tmp_path: Path) -> None:
    frame = pl.DataFrame({"value": HOSTILE, "row": list(range(len(HOSTILE)))})
    path = write_people_csv(frame, tmp_path / "x.csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    got = [r["value"] for r in _read(path)]
    for raw, cell in zip(HOSTILE, got, strict=True):
        if raw is None:
            assert cell == ""
        elif raw[0] in "=+-@\t\r":
            assert cell == "'" + raw, cell
        else:
            assert cell == raw
    assert [r["row"] for r in _read(path)] == [str(i) for i in range(len(HOSTILE))]  # numbers untouched


def test_a_huge_value_is_capped_with_a_marker(tmp_path: Path) -> None:
    path = write_people_csv(pl.DataFrame({"v": ["x" * (MAX_CELL * 3), "=" + "y" * MAX_CELL]}), tmp_path / "big.csv")
    first, second = (r["v"] for r in _read(path))
    assert len(first) == MAX_CELL and first.endswith(TRUNCATED)
    assert second.startswith("'=") and len(second) == MAX_CELL + 1 and second.endswith(TRUNCATED)


def test_chinese_text_survives_the_round_trip(tmp_path: Path) -> None:
    path = write_people_csv(
        pl.DataFrame({"客户名称": ["北京某某科技有限公司"], "原因": ["电话号码无效"]}), tmp_path / "zh.csv"
    )
    assert _read(path) == [{"客户名称": "北京某某科技有限公司", "原因": "电话号码无效"}]
