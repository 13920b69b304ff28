"""Source kinds are one registry: a kind registered once is usable everywhere sources are read.

A tiny ``jsonl`` kind, registered here and removed after each test, is read by a mapping's
source, by ``crmkit validate``'s input resolution and by ``crmkit dedupe``'s, with no other
edit.  The rest pins the one suffix table and the checks a registration gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import polars as pl
import pytest

from crmkit.errors import MappingError
from crmkit.migrate.sources import (
    ROW,
    SOURCES,
    CsvSource,
    Extracted,
    FileSource,
    extract,
    file_suffixes,
    kind_for,
    register_kind,
)

PEOPLE = '{"legacy_key": "1", "full_name": "Li Wei", "email": "li@x.cn"}\n{"legacy_key": "2", "full_name": "Wang"}\n'

MAPPING = """\
version: 1
name: jsonl
sources:
  people: {kind: jsonl, path: people.jsonl}
entities:
  contacts:
    from: people
    key: legacy_key
    fields:
      full_name: full_name
      email: email
"""


class JsonlSource(FileSource):
    """One JSON object a line."""

    kind: Literal["jsonl"]


def read_jsonl(name: str, src: JsonlSource) -> Extracted:
    frame = pl.read_ndjson(src.path).with_columns(pl.all().cast(pl.String))
    return Extracted(name, frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64)))


@pytest.fixture
def jsonl(tmp_path: Path) -> Iterator[Path]:
    register_kind("jsonl", JsonlSource, read_jsonl, suffixes=(".jsonl",), summary="one JSON object a line")
    (tmp_path / "people.jsonl").write_text(PEOPLE, encoding="utf-8")
    try:
        yield tmp_path / "people.jsonl"
    finally:
        SOURCES.remove("jsonl")


def test_a_registered_kind_is_a_mapping_source(jsonl: Path) -> None:
    from crmkit.migrate.mapping import load_mapping

    (jsonl.parent / "m.yaml").write_text(MAPPING, encoding="utf-8")
    mapping = load_mapping(jsonl.parent / "m.yaml")
    source = mapping.sources["people"]
    assert isinstance(source, JsonlSource) and source.path == jsonl
    ex = extract("people", source)
    assert ex.columns == ["legacy_key", "full_name", "email"]
    assert ex.frame[ROW].to_list() == [1, 2]


def test_a_removed_kind_is_no_mapping_source_again(tmp_path: Path) -> None:
    from crmkit.migrate.mapping import load_mapping

    register_kind("jsonl", JsonlSource, read_jsonl, suffixes=(".jsonl",), summary="one JSON object a line")
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    try:
        load_mapping(tmp_path / "m.yaml")
    finally:
        SOURCES.remove("jsonl")
    with pytest.raises(MappingError, match="m.yaml:4: sources.people: .*expected tags: 'csv', 'tsv', 'xlsx', 'sql'"):
        load_mapping(tmp_path / "m.yaml")


def test_a_registered_kind_is_a_validate_input(jsonl: Path) -> None:
    from crmkit.validate.inputs import read_file

    found = read_file(jsonl, "contacts")
    assert found.kind == "file" and found.frame.height == 2
    assert found.missing_fields and "phone" not in found.unchecked_columns
    assert found.frame["full_name"].to_list() == ["Li Wei", "Wang"]


def test_a_registered_kind_is_a_dedupe_input(jsonl: Path) -> None:
    from crmkit.dedupe.inputs import read_input

    ex = read_input(str(jsonl))
    assert ex.name == "people" and ex.frame["email"].to_list() == ["li@x.cn", None]


def test_messages_list_the_registered_kinds(jsonl: Path) -> None:
    from crmkit.dedupe.inputs import read_input
    from crmkit.dedupe.rules import DedupeError
    from crmkit.errors import SourceError
    from crmkit.validate.inputs import read_file

    assert file_suffixes() == ".csv, .jsonl, .tsv or .xlsx"
    with pytest.raises(SourceError, match=r"validate a \.csv, \.jsonl, \.tsv or \.xlsx file"):
        read_file(jsonl.with_suffix(".json"), "contacts")
    with pytest.raises(SourceError, match=r"--sheet applies to \.xlsx files only"):
        read_file(jsonl, "contacts", sheet="1")
    with pytest.raises(DedupeError, match=r"use \.csv, \.jsonl, \.tsv, \.xlsx, \.parquet or URL#table"):
        read_input(str(jsonl.with_suffix(".json")))


def test_one_suffix_table() -> None:
    """validate and dedupe read the same files: .tab and .xlsm too, in either case."""
    assert [kind_for(Path(f"x{s}")) for s in (".csv", ".TXT", ".tsv", ".tab", ".xlsx", ".XLSM", ".json", "")] == [
        "csv",
        "csv",
        "tsv",
        "tsv",
        "xlsx",
        "xlsx",
        None,
        None,
    ]
    assert SOURCES.names() == ["csv", "sql", "tsv", "xlsx"]
    assert SOURCES.get("tsv").model is CsvSource


def test_dedupe_reads_every_suffix_validate_reads(tmp_path: Path) -> None:
    """Before the one table, ``crmkit dedupe`` refused the ``.tab`` files ``crmkit validate`` read."""
    from crmkit.dedupe.inputs import read_input

    (tmp_path / "desk.tab").write_text("id\tname\n1\tLi\n", encoding="utf-8")
    ex = read_input(str(tmp_path / "desk.tab"))
    assert ex.columns == ["id", "name"] and ex.frame["name"].to_list() == ["Li"]


def test_a_kind_registers_once_with_a_model_that_accepts_it() -> None:
    with pytest.raises(ValueError, match="source kind 'csv' is registered twice"):
        register_kind("csv", CsvSource, SOURCES.get("csv").read, summary="again")
    with pytest.raises(ValueError, match=r"JsonlSource.kind must accept it"):
        register_kind("ndjson", JsonlSource, read_jsonl, summary="wrong model")
    with pytest.raises(ValueError, match=r"suffix \.txt is csv's already"):
        register_kind("jsonl", JsonlSource, read_jsonl, suffixes=(".jsonl", ".txt"), summary="taken suffix")
    assert "jsonl" not in SOURCES and "ndjson" not in SOURCES
