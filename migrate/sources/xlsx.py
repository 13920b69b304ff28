"""``kind: xlsx``: one sheet of an Excel workbook, the header possibly below title rows."""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from crmkit.errors import SourceError
from crmkit.migrate.sources.base import ROW, Extracted, FileSource, drop_blank, first_line, register_kind


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
    return Extracted(name, frame, blank_rows=blanks)


register_kind(
    "xlsx",
    XlsxSource,
    read_xlsx,
    suffixes=(".xlsx", ".xlsm"),
    summary="one sheet of an Excel workbook; blank rows are counted and dropped",
)
