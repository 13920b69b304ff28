"""``kind: csv`` and ``kind: tsv``: delimited text, its encoding given or detected."""

from __future__ import annotations

import codecs
import re
from typing import Literal

import polars as pl
from pydantic import Field, field_validator

from crmkit.errors import SourceError
from crmkit.migrate.sources import decode
from crmkit.migrate.sources.base import ROW, Extracted, FileSource, drop_blank, register_kind

ENCODINGS_HINT = "utf-8, utf-8-sig, gb18030, gbk, big5, latin-1, cp1252"


class CsvSource(FileSource):
    """A delimited text file.  Every column is read as text."""

    kind: Literal["csv", "tsv"]
    delimiter: str | None = None
    quote: str = '"'
    encoding: str | None = None
    header_row: int = Field(1, ge=1)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError(f"unknown encoding '{v}' (try one of {ENCODINGS_HINT})") from None
        return v

    @property
    def sep(self) -> str:
        return self.delimiter or ("\t" if self.kind == "tsv" else ",")


def read_csv(name: str, src: CsvSource) -> Extracted:
    path = src.path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"source {name}: {path}: no such file") from None
    except OSError as exc:
        raise SourceError(f"source {name}: {path}: {exc.strerror}") from None
    declared = None if src.encoding is None else codecs.lookup(src.encoding).name
    frame, problem = _parse_csv(data, src) if declared in (None, "utf-8") else (None, None)
    marked = False
    if frame is not None:  # polars validated the bytes as UTF-8 while parsing: no decode in Python
        encoding = "utf-8"
    else:
        if declared is None:
            text, encoding = decode.choose(path, data)
        else:
            (text, marked), encoding = decode.decode_declared(path, data, declared), declared
        frame, problem = _parse_csv(text.encode("utf-8"), src)
        if frame is None:
            assert problem is not None
            raise SourceError(f"{path}: {_csv_problem(text, src, problem)}")
    frame = frame.rename(lambda c: c.strip().lstrip("\ufeff"))
    frame = frame.with_row_index(ROW, offset=src.header_row + 1).with_columns(pl.col(ROW).cast(pl.Int64))
    frame, blanks = drop_blank(frame)
    frame, bad = decode.bad_values(frame, ROW, encoding, marked, scan=b"\x00" in data)
    return Extracted(
        name, frame, blank_rows=blanks, encoding=encoding, detected=declared is None and encoding != "utf-8", bad=bad
    )


def _parse_csv(data: bytes, src: CsvSource) -> tuple[pl.DataFrame | None, Exception | None]:
    """The frame, or None and why polars could not read it (bad UTF-8 is one such reason)."""
    try:
        return pl.read_csv(
            data,
            separator=src.sep,
            quote_char=src.quote or None,
            skip_rows=src.header_row - 1,
            infer_schema=False,
            has_header=True,
        ), None
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError) as exc:
        return None, exc


def _csv_problem(text: str, src: CsvSource, exc: Exception) -> str:
    """Find the first record whose field count differs from the header's (error path only)."""
    import csv
    import io

    rows = csv.reader(io.StringIO(text), delimiter=src.sep, quotechar=src.quote or '"')
    try:
        for _ in range(src.header_row - 1):
            next(rows)
        header = next(rows)
        for row in rows:
            if row and len(row) != len(header):
                return (
                    f"line {rows.line_num}: {len(row)} fields where the header has {len(header)} "
                    f"(check the delimiter {src.sep!r} and quoting)"
                )
    except StopIteration:
        return "the file is empty: expected a header line"
    except csv.Error as err:
        return f"line {rows.line_num}: {err}"
    return f"cannot be read as CSV ({_without_content(str(exc))}): check the delimiter, quoting and encoding"


def _without_content(message: str) -> str:
    """polars' parse error with the text it quotes from the file left out (it may be any file's content)."""
    first = message.splitlines()[0] if message.strip() else "unreadable"
    return re.sub(r"`[^`]*(`|$)|\"[^\"]*(\"|$)|'[^']*('|$)", "…", first).strip()


register_kind(
    "csv",
    CsvSource,
    read_csv,
    suffixes=(".csv", ".txt"),
    summary="delimited text, comma-separated by default; the encoding given or detected",
)
register_kind(
    "tsv",
    CsvSource,
    read_csv,
    suffixes=(".tsv", ".tab"),
    summary="delimited text, tab-separated by default; the encoding given or detected",
)
