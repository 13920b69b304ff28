"""Values that cannot be loaded as they are: a NUL character, bytes that do not decode, a
spreadsheet that would not fit in memory (issue 22, item 11).

A NUL loaded silently into SQLite and made every PostgreSQL run (and its ``--resume``) fail;
now it is a per-row reject with its source column and reason on every source kind (csv,
xlsx, sql), and no NUL reaches the target, its rejects table or the rejects file.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import cli, mapping_text

FIELDS = {"full_name": "name", "email": "mail"}


def run(mapping: Path, url: str, report: Path, *more: str) -> tuple[int, dict, pl.DataFrame, str]:
    res = cli("migrate", "run", str(mapping), "--target", url, "--json", "--report", str(report), *more)
    assert res.exit_code in (0, 1), res.output + res.stderr
    rejects = pl.read_csv(report / "rejects.csv", infer_schema=False, encoding="utf8")
    return res.exit_code, json.loads(res.output)["entities"]["contacts"], rejects, res.output


def case(folder: Path, source: str) -> Path:
    mapping = folder / "case.yaml"
    mapping.write_text(mapping_text("contacts", FIELDS, "id", None, source), encoding="utf-8")
    return mapping


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_nul_byte_is_a_per_row_reject_and_never_reaches_the_target(request, tmp_path, backend):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    rows = [b"1,Ann,a@x.org,", b"2,B\x00b,b@x.org,", b"3,Cy,c@x.org,x\x00y", b"4,Dee,d\x00@x.org,"]
    (tmp_path / "source.csv").write_bytes(b"id,name,mail,note\n" + b"\n".join(rows) + b"\n")
    mapping = case(tmp_path, "{kind: csv, path: source.csv}")
    for attempt in ("first", "again"):  # the PostgreSQL run failed forever, its --resume too
        _, counts, rejects, _ = run(mapping, url, tmp_path / attempt)
        assert counts["rejected"] == 2, counts
        reasons = dict(zip(rejects["legacy_key"], rejects["reasons"]))
        assert reasons == {"2": r"name: holds a NUL character (\x00)", "4": r"mail: holds a NUL character (\x00)"}
        assert b"\x00" not in (tmp_path / attempt / "rejects.csv").read_bytes()
    engine = create_engine(url)
    with engine.connect() as conn:
        loaded = conn.execute(text("SELECT legacy_key, full_name FROM contacts ORDER BY legacy_key")).all()
        raw = [r[0] for r in conn.execute(text("SELECT raw_json FROM crmkit_rejects"))]
    engine.dispose()
    assert [tuple(r) for r in loaded] == [("1", "Ann"), ("3", "Cy")]  # a NUL in a column nobody reads is harmless
    assert raw and all("\x00" not in r and "\\\\x00" in r for r in raw)


def test_a_declared_encoding_rejects_the_rows_that_do_not_decode(tmp_path, sqlite_url):
    data = b"id,name,mail\n1," + "张三".encode() + b",a@x.org\n2," + "李四".encode("gb18030") + b",b@x.org\n"
    (tmp_path / "source.csv").write_bytes(data)
    mapping = case(tmp_path, "{kind: csv, path: source.csv, encoding: utf-8}")
    _, counts, rejects, _ = run(mapping, sqlite_url, tmp_path / "rep")
    assert counts["rejected"] == 1 and rejects["reasons"].to_list() == ["name: byte 0xc0 does not decode as utf-8"]
    assert rejects["legacy_key"].to_list() == ["2"]


def test_undeclared_mixed_encodings_are_one_line_naming_the_lines(tmp_path, sqlite_url):
    data = b"id,name,mail\n1," + "张三".encode() + b",a@x.org\n2," + "李四".encode("gb18030") + b",b@x.org\n"
    (tmp_path / "source.csv").write_bytes(data)
    res = cli("migrate", "run", str(case(tmp_path, "{kind: csv, path: source.csv}")), "--target", sqlite_url)
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and "mixes encodings: line 2 is UTF-8 but line 3 is not" in res.stderr


def test_a_gb18030_file_with_a_long_ascii_head_loads_its_chinese(tmp_path, sqlite_url):
    head = b"".join(b"%d,ascii %d,p%d@x.org\n" % (i, i, i) for i in range(1, 2001))
    (tmp_path / "source.csv").write_bytes(b"id,name,mail\n" + head + "9999,张三丰,z@x.org\n".encode("gb18030"))
    mapping = case(tmp_path, "{kind: csv, path: source.csv}")
    res = cli("migrate", "run", str(mapping), "--target", sqlite_url)
    assert res.exit_code == 0 and "gb18030 (detected)" in res.output, res.output
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        name = conn.execute(text("SELECT full_name FROM contacts WHERE legacy_key = '9999'")).scalar()
    engine.dispose()
    assert name == "张三丰"


def test_sql_text_with_a_nul_or_bytes_that_are_not_utf8_is_a_reject(tmp_path, sqlite_url):
    legacy = tmp_path / "legacy.db"
    con = sqlite3.connect(legacy)
    con.execute("CREATE TABLE people (id TEXT, name TEXT, mail TEXT)")
    con.execute("INSERT INTO people VALUES ('1', '张三', 'a@x.org'), ('2', 'B' || char(0) || 'b', 'b@x.org')")
    con.execute("INSERT INTO people VALUES ('3', CAST(x'c0ee41' AS TEXT), 'c@x.org')")
    con.commit()
    con.close()
    mapping = case(tmp_path, f"{{kind: sql, url: 'sqlite:///{legacy}', table: people}}")
    _, counts, rejects, _ = run(mapping, sqlite_url, tmp_path / "rep")
    assert counts["rejected"] == 2
    assert dict(zip(rejects["legacy_key"], rejects["reasons"])) == {
        "2": r"name: holds a NUL character (\x00)",
        "3": "name: byte 0xc0 does not decode as utf-8",
    }


def workbook(path: Path, cells: dict[str, str]) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    for ref, value in cells.items():
        ws[ref] = value
    wb.save(path)
    return path


def test_xlsx_nul_is_a_reject(tmp_path, sqlite_url):
    """Excel writes a NUL as ``_x0000_``, which the reader turns back into one."""
    cells = {"A1": "id", "B1": "name", "C1": "mail", "A2": "1", "B2": "a_x0000_b", "C2": "a@x.org"}
    cells |= {"A3": "2", "B3": "李四", "C3": "b@x.org"}
    workbook(tmp_path / "book.xlsx", cells)
    _, counts, rejects, _ = run(case(tmp_path, "{kind: xlsx, path: book.xlsx}"), sqlite_url, tmp_path / "rep")
    assert counts["rejected"] == 1 and rejects["reasons"].to_list() == [r"name: holds a NUL character (\x00)"]


HUGE = {"A1": "id", "B1": "name", "A2": "1", "B2": "x", "XFD1048576": "far away"}


def test_an_xlsx_whose_cells_span_the_whole_sheet_is_refused_in_one_line(tmp_path, sqlite_url):
    """A 6 KB workbook with one cell at XFD1048576 aborted the process (calamine allocated 17G cells).

    The read runs in a child process: should the check ever let it through, the abort kills the
    child, not the test session.
    """
    book = workbook(tmp_path / "book.xlsx", HUGE)
    assert book.stat().st_size < 10_000
    mapping = case(tmp_path, "{kind: xlsx, path: book.xlsx}")
    code = "import sys; from crmkit.cli import main; sys.exit(main(sys.argv[1:]))"
    res = subprocess.run(
        [sys.executable, "-c", code, "migrate", "plan", str(mapping)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "spans 1,048,576 rows x 16,384 columns" in res.stderr and "the limit is 30,000,000" in res.stderr


def test_a_styled_empty_cell_far_away_is_no_reason_to_refuse(tmp_path, sqlite_url):
    import openpyxl
    from openpyxl.styles import Font

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    for ref, value in {"A1": "id", "B1": "name", "C1": "mail", "A2": "1", "B2": "Ann", "C2": "a@x.org"}.items():
        ws[ref] = value
    ws["XFD1048576"].font = Font(bold=True)  # formatted, no value: the reader skips it
    wb.save(tmp_path / "book.xlsx")
    _, counts, _, _ = run(case(tmp_path, "{kind: xlsx, path: book.xlsx}"), sqlite_url, tmp_path / "rep")
    assert counts["rejected"] == 0


def test_an_xlsx_part_that_unzips_past_the_limit_is_refused(tmp_path, monkeypatch):
    from crmkit.errors import SourceError
    from crmkit.migrate.sources import XlsxSource, extract
    from crmkit.migrate.sources import xlsx as xlsx_module

    book = workbook(tmp_path / "book.xlsx", {"A1": "id", "A2": "1"})
    with zipfile.ZipFile(book, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/media/padding.bin", b"\0" * 2_000_000)  # compresses to a few KB
    monkeypatch.setattr(xlsx_module, "MAX_UNCOMPRESSED", 1_000_000)
    with pytest.raises(SourceError, match=r"xl/media/padding.bin unzips to more than 1,000,000 bytes"):
        extract("s", XlsxSource(kind="xlsx", path=book))
