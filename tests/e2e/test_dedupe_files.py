"""The files `crmkit dedupe` writes for people, and the review file as a spreadsheet gives it back
(issue 22, item 12).

clusters.csv, review.csv and golden.csv were written raw: formula cells live, no BOM (mojibake
in Excel), mode 0600.  Now they go through crmkit.csvout, and the review file is read back
whether Excel re-saved it as UTF-8 with BOM or as GB18030, with csvout's ``'`` taken off.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import cli
from tests.e2e.test_dedupe import CHINESE_RULES

#: keys a spreadsheet would take for formulas; 王方 (C4) is the doubtful one, reviewed against 王芳
DATA = """id,full_name,phone,birth_date
=1+1,王芳,13900139001,1986-04-01
-C2,Wang Fang,139-0013-9001,1986-04-01
@C3,Fang Wang,13900139001,1986-04-01
'=C4,王方,13700000002,1990-10-10
C5,李娜,,1992-02-02
"""


@pytest.fixture
def written(tmp_path: Path) -> Path:
    (tmp_path / "cn.csv").write_text(DATA, encoding="utf-8")
    (tmp_path / "cn.yaml").write_text(CHINESE_RULES, encoding="utf-8")
    res = dedupe(tmp_path, "--review", str(tmp_path / "review.csv"), "--golden", str(tmp_path / "golden.csv"))
    assert res.exit_code == 0, res.output
    return tmp_path


def dedupe(folder: Path, *more: str):
    return cli(
        "dedupe", str(folder / "cn.csv"), "--rules", str(folder / "cn.yaml"), "--out", str(folder / "c.csv"), *more
    )


@pytest.mark.parametrize("name", ["c.csv", "review.csv", "golden.csv"])
def test_every_dedupe_file_opens_in_a_spreadsheet_safely(written, name):
    data = (written / name).read_bytes()
    assert data.startswith(codecs.BOM_UTF8)  # Excel reads UTF-8, not the local code page
    text = data.decode("utf-8-sig")
    assert "王芳" in text or name == "c.csv"
    cells = [cell.strip('"') for line in text.splitlines() for cell in line.split(",")]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")], cells  # no live formula
    assert "'=1+1" in cells and "NaN" not in text
    mode = stat.S_IMODE((written / name).stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # an ordinary file, not a temporary file's 0600


def test_the_quote_csvout_adds_is_taken_off_and_one_that_was_there_stays(written):
    review = pl.read_csv(written / "review.csv", infer_schema=False)
    keys = set(review["left_key"]) | set(review["right_key"])
    assert "''=C4" in keys  # a key that began with ' before a formula character gets its own prefix
    from crmkit.dedupe.review import read_decisions

    decided = review.with_columns(pl.lit("match").alias("decision"))
    decided.write_csv(written / "decided.csv")  # the prefixes as they were written
    got = read_decisions([written / "decided.csv"])
    keys = set(got["left_key"]) | set(got["right_key"])
    assert {"=1+1", "'=C4"} <= keys and not {"'=1+1", "''=C4"} & keys


@pytest.mark.parametrize("saved_as", ["gb18030", "utf-8-sig", "utf-16"])
def test_a_review_file_resaved_by_a_spreadsheet_is_read_and_applied(written, saved_as):
    """Excel on a Chinese Windows saves "CSV" in GB18030 (no BOM), "CSV UTF-8" with a BOM, "Unicode Text" in UTF-16."""
    review = pl.read_csv(written / "review.csv", infer_schema=False)
    pair = {review["left_key"][0], review["right_key"][0]}
    assert pair == {"'=1+1", "''=C4"}
    text = review.with_columns(pl.lit("match").alias("decision")).write_csv()
    if saved_as == "utf-16":
        text = review.with_columns(pl.lit("match").alias("decision")).write_csv(separator="\t")
    assert "王芳" in text and "王方" in text
    (written / "back.csv").write_bytes(text.replace("\n", "\r\n").encode(saved_as))
    res = dedupe(written, "--decisions", str(written / "back.csv"))
    assert res.exit_code == 0, res.output
    clusters = pl.read_csv(written / "c.csv", infer_schema=False)
    ids = dict(zip(clusters["record_id"], clusters["cluster_id"]))
    assert ids["'=1+1"] == ids["''=C4"]  # the decision reached the records it names
