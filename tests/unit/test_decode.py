"""Which encoding a file source is read in, and values that cannot be loaded (issue 22, item 11).

The guess is strict decoding in a fixed order over the whole file (migrate/sources/decode.py):
never a statistical guess that loads mojibake with exit 0.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import polars as pl
import pytest

from crmkit.errors import SourceError
from crmkit.migrate.sources import CsvSource, extract
from crmkit.migrate.sources.decode import bad_values, choose, decode_declared

HEAD = b"id,name\n"
ZH = "张三丰 李四 王五有限公司 北京市朝阳区"


def test_utf8_and_utf8_with_bom_are_utf8() -> None:
    assert choose("f.csv", HEAD + ZH.encode()) == ((HEAD + ZH.encode()).decode(), "utf-8")
    text, enc = choose("f.csv", codecs.BOM_UTF8 + HEAD + ZH.encode())
    assert (text, enc) == ((HEAD + ZH.encode()).decode(), "utf-8-sig")


def test_gb18030_after_a_long_ascii_head_is_read_as_chinese() -> None:
    """It was read as cp852: the old guess looked at the first 20,000 characters only."""
    data = HEAD + b"1,plain ascii name\n" * 3000 + ("2," + ZH + "\n").encode("gb18030")
    text, enc = choose("f.csv", data)
    assert enc == "gb18030" and text.endswith(ZH + "\n")


@pytest.mark.parametrize("word", ["Renée Müller", "José Peña", "Straße 5 – Köln"])
def test_western_text_is_cp1252_not_gb18030_mojibake(word: str) -> None:
    text, enc = choose("f.csv", HEAD + f"1,{word}\n".encode("cp1252"))
    assert (enc, text) == ("cp1252", f"id,name\n1,{word}\n")


def test_a_file_mixing_utf8_gb18030_and_cp1252_is_one_line_naming_the_lines() -> None:
    """It was detected as cp1006 and loaded as mojibake with exit 0."""
    data = (
        HEAD + b"1," + "张三".encode() + b"\n2," + "李四".encode("gb18030") + b"\n3," + "café".encode("cp1252") + b"\n"
    )
    with pytest.raises(SourceError) as err:
        choose("f.csv", data)
    msg = str(err.value)
    assert "\n" not in msg and "mixes encodings" in msg and "line 2 is UTF-8" in msg and "line 3 is not" in msg
    assert "`encoding:`" in msg


def test_a_file_no_encoding_reads_names_the_first_bad_byte() -> None:
    data = HEAD + b"1,ok\n2,\x81\x8d\x90 undefined in cp1252 \xff\n"  # not UTF-8, GB18030 or cp1252
    with pytest.raises(SourceError, match=r"first bad byte 0x81 at line 3"):
        choose("f.csv", data)


def test_a_declared_encoding_that_is_wholly_wrong_says_which_to_declare() -> None:
    with pytest.raises(SourceError, match=r"is not utf-8 \(byte 0xd5 at line 2\): try `encoding: gb18030`"):
        decode_declared("f.csv", HEAD + ("1," + ZH + "\n").encode("gb18030"), "utf-8")


def test_a_declared_encoding_marks_the_lines_that_do_not_decode(tmp_path: Path) -> None:
    """Declared (the person says what the file is): the rows that do not decode are rejects."""
    data = HEAD + b"1," + "张三".encode() + b"\n2," + "李四".encode("gb18030") + b"\n3,ok\n"
    (tmp_path / "f.csv").write_bytes(data)
    ex = extract("s", CsvSource(kind="csv", path=tmp_path / "f.csv", encoding="utf-8"))
    assert ex.frame["name"].to_list() == ["张三", r"\xc0\xee\xcb\xc4", "ok"]
    assert ex.bad is not None
    assert ex.bad.rows() == [(3, "name", "name: byte 0xc0 does not decode as utf-8")]


def test_nul_is_a_bad_value_and_cleaned() -> None:
    frame = pl.DataFrame({"__row": [2, 3], "a": ["x\x00y", "ok"], "b": ["fine", "\x00"]})
    cleaned, bad = bad_values(frame, "__row")
    assert cleaned["a"].to_list() == [r"x\x00y", "ok"] and cleaned["b"].to_list() == ["fine", r"\x00"]
    assert bad.rows() == [(2, "a", r"a: holds a NUL character (\x00)"), (3, "b", r"b: holds a NUL character (\x00)")]


def test_clean_frames_are_returned_as_they_are() -> None:
    frame = pl.DataFrame({"__row": [2], "a": ["张三"]})
    cleaned, bad = bad_values(frame, "__row", "utf-8", marked=True)
    assert cleaned is frame and bad.height == 0


def test_the_encoding_used_is_reported(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_bytes(HEAD + ("1," + ZH + "\n").encode("gb18030"))
    ex = extract("s", CsvSource(kind="csv", path=tmp_path / "f.csv"))
    assert (ex.encoding, ex.detected, ex.frame["name"][0]) == ("gb18030", True, ZH)


def test_utf16_with_its_bom_is_utf16_not_nul_riddled_cp1252() -> None:
    """Excel's "Unicode Text": a NUL between every ASCII byte, which must not become NUL rejects."""
    data = "id\tname\n1\t张三\n".encode("utf-16")
    assert choose("f.tsv", data) == ("id\tname\n1\t张三\n", "utf-16")
