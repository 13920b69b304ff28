"""``kind: xlsx``: one sheet of an Excel workbook, the header possibly below title rows.

Before the workbook reaches calamine (through fastexcel), which allocates a sheet's whole
rectangle at once, :func:`check_workbook` looks at the zip cheaply: the declared uncompressed
size of every part (at most :data:`MAX_UNCOMPRESSED`), then the chosen sheet's XML, streamed
and counted (a zip bomb stops at the limit), for the rows and columns its cells span (at most
:data:`MAX_CELLS`).  One cell at XFD1048576 in a 6 KB file is refused in one line instead of
aborting the process.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Literal

import polars as pl
from pydantic import Field

from crmkit.errors import SourceError
from crmkit.migrate.sources.base import ROW, Extracted, FileSource, drop_blank, first_line, register_kind
from crmkit.migrate.sources.decode import bad_values


class XlsxSource(FileSource):
    """An Excel workbook sheet; the header may sit below title rows."""

    kind: Literal["xlsx"]
    sheet: str | int = 0
    header_row: int = Field(1, ge=1)


def read_xlsx(name: str, src: XlsxSource) -> Extracted:
    import fastexcel

    path = src.path
    if not path.exists():
        raise SourceError(f"source {name}: {path}: no such file")
    check_workbook(path, src.sheet)
    try:
        book = fastexcel.read_excel(path)
    except Exception as exc:  # fastexcel raises its own error types for a corrupt workbook
        raise SourceError(f"{path}: not a readable Excel workbook ({first_line(exc)})") from None
    if isinstance(src.sheet, str) and src.sheet not in book.sheet_names:
        raise SourceError(f"{path}: no sheet named {src.sheet!r} (sheets: {', '.join(book.sheet_names)})")
    if isinstance(src.sheet, int) and not 0 <= src.sheet < len(book.sheet_names):
        raise SourceError(f"{path}: no sheet number {src.sheet} (it has {len(book.sheet_names)}, counted from 0)")
    try:
        sheet = book.load_sheet(src.sheet, header_row=src.header_row - 1, dtypes="string")
        frame = pl.from_arrow(sheet.to_arrow())
    except Exception as exc:
        raise SourceError(f"{path}: sheet {src.sheet!r}: {first_line(exc)}") from None
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.all().cast(pl.String)).rename(lambda c: c.strip())
    frame = frame.with_row_index(ROW, offset=src.header_row + 1).with_columns(pl.col(ROW).cast(pl.Int64))
    frame, blanks = drop_blank(frame)
    frame, bad = bad_values(frame, ROW)
    return Extracted(name, frame, blank_rows=blanks, bad=bad)


MAX_CELLS = 30_000_000  # the rectangle a sheet's cells span: calamine allocates it whole (~32 bytes a cell)
MAX_UNCOMPRESSED = 2 << 30  # bytes of any part once unzipped
#: a cell's reference (any cell), then one with a value: calamine skips ``<c r="XFD1048576" s="1"/>``
_REF = re.compile(rb' r="([A-Z]{1,3})([0-9]{1,7})"')
_VALUED = re.compile(rb"<(?:\w+:)?c\s[^>]*?\br=\"([A-Z]{1,3})([0-9]{1,7})\"[^>]*(?<!/)>")
#: a cell placed by its order in its row (no ``r``), and a row's number (counted only then)
_PLACED = re.compile(rb"<(?:\w+:)?c(?:\s(?![^>]*\br=)[^>]*)?(?<!/)>")
_ROW = re.compile(rb"<(?:\w+:)?row\s[^>]*?\br=\"([0-9]{1,7})\"[^>]*(?<!/)>")
_DIGITS = [re.compile(rb' r="[A-Z]{1,3}[0-9]{%d}"' % d) for d in range(7, 0, -1)]
_LETTERS = [re.compile(rb' r="[A-Z]{%d}[0-9]' % k) for k in range(3, 0, -1)]
_SHEET = re.compile(rb"<(?:\w+:)?sheet\s[^>]*>")
_ATTR = re.compile(rb"([\w:]+)=\"([^\"]*)\"")


def check_workbook(path: Path, sheet: str | int) -> None:
    """Refuse (SourceError) a workbook whose parts unzip past the limit, or whose chosen sheet's
    cells span more than :data:`MAX_CELLS`: before anything allocates them."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.file_size > MAX_UNCOMPRESSED:
                    raise SourceError(_too_big(path, info.filename, info.file_size))
            part = _sheet_part(zf, sheet)
            if part is not None:
                _check_cells(path, zf, part, sheet)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError):
        return  # not a zip (or an odd one): fastexcel says what is wrong with it


def _too_big(path: Path, part: str, size: int) -> str:
    return (
        f"{path}: {part} unzips to more than {MAX_UNCOMPRESSED:,} bytes ({size:,}): "
        f"refused as a zip bomb; save the sheet as CSV"
    )


def _sheet_part(zf: zipfile.ZipFile, sheet: str | int) -> str | None:
    """The zip member of the sheet named (or numbered, from 0) ``sheet``, from the workbook's XML."""
    book = zf.read("xl/workbook.xml")[:MAX_UNCOMPRESSED]
    sheets = [dict(_ATTR.findall(m.group())) for m in _SHEET.finditer(book)]
    chosen = (
        sheets[sheet]
        if isinstance(sheet, int) and 0 <= sheet < len(sheets)
        else next((s for s in sheets if s.get(b"name", b"").decode("utf-8", "replace") == sheet), None)
    )
    rid = next((v for k, v in (chosen or {}).items() if k.endswith(b":id")), None)
    if rid is None:
        return None
    rels = zf.read("xl/_rels/workbook.xml.rels")
    for m in re.finditer(rb"<(?:\w+:)?Relationship\s[^>]*>", rels):
        attrs = dict(_ATTR.findall(m.group()))
        if attrs.get(b"Id") == rid:
            target = attrs.get(b"Target", b"").decode("utf-8", "replace")
            return target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl") / target)
    return None


def _check_cells(path: Path, zf: zipfile.ZipFile, part: str, sheet: str | int) -> None:
    """Refuse ``part`` when its cells span more than :data:`MAX_CELLS`, cheapest test first:
    the digits and letters of its references bound the span (a few searches per chunk); only
    past the limit are the references read, then only the cells with a value."""
    digits = letters = 0
    for text in _chunks(path, zf, part):
        digits = max(digits, next((7 - i for i, rx in enumerate(_DIGITS[: 7 - digits]) if rx.search(text)), 0))
        letters = max(letters, next((3 - i for i, rx in enumerate(_LETTERS[: 3 - letters]) if rx.search(text)), 0))
    if min(10**digits - 1, 1_048_576) * min(26**letters, 16_384) <= MAX_CELLS:
        return
    for pattern in (_REF, _VALUED):
        rows: set[int] = set()
        cols: set[bytes] = set()
        for text in _chunks(path, zf, part):
            for col, row in set(pattern.findall(text)):
                cols.add(col)
                rows.add(int(row))
            if _PLACED.search(text):
                rows.update(int(r) for r in _ROW.findall(text))
        numbers = [_column_number(c) for c in cols] or [1]
        height, width = (max(rows) - min(rows) + 1 if rows else 0), max(numbers) - min(numbers) + 1
        if height * width <= MAX_CELLS:
            return
    raise SourceError(
        f"{path}: sheet {sheet!r} spans {height:,} rows x {width:,} columns ({height * width:,} cells, "
        f"the limit is {MAX_CELLS:,}): delete what lies outside the data (a stray cell far away), or save it as CSV"
    )


def _chunks(path: Path, zf: zipfile.ZipFile, part: str) -> Iterator[bytes]:
    """``part`` unzipped in pieces that end before a tag; its size counted, not trusted."""
    size, tail = 0, b""
    with zf.open(part) as fh:
        while chunk := fh.read(1 << 22):
            size += len(chunk)
            if size > MAX_UNCOMPRESSED:
                raise SourceError(_too_big(path, part, size))
            text = tail + chunk
            cut = text.rfind(b"<")  # the last tag may be cut: it goes with the next piece
            text, tail = (text[:cut], text[cut:]) if cut > 0 else (text, b"")
            yield text
    yield tail


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


register_kind(
    "xlsx",
    XlsxSource,
    read_xlsx,
    suffixes=(".xlsx", ".xlsm"),
    summary="one sheet of an Excel workbook; blank rows are counted and dropped",
)
