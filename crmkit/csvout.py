"""CSV files that people open: one writer for all of them.

A spreadsheet opened on a Chinese (or any) Windows reads a CSV without a byte-order mark in the
local code page, and treats a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or
carriage return) as a formula: legacy data is untrusted, so such a cell could run a formula
on the reader's machine (CSV injection, OWASP). :func:`write_people_csv` writes UTF-8 with a
BOM, prefixes those cells with ``'`` (the spreadsheet shows the text as it was), and caps a
value at :data:`MAX_CELL` characters with a marker (a spreadsheet cell holds 32,767). The
full values stay where the data lives (the database, the JSON summary).

Files crmkit reads back (mapping sources, dedupe review decisions) are not written with it.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

#: a cell that starts with one of these is a formula to a spreadsheet
FORMULA_START = r"^[=+\-@\t\r]"
MAX_CELL = 32_000
TRUNCATED = " …[truncated: the full value is in the database]"


#: the most of one source value the rejects table keeps (a 200 MB cell would be copied whole)
MAX_STORED = 10_000
STORED_TRUNCATED = " …[truncated]"


def capped_text(col: pl.Expr, max_chars: int, marker: str = TRUNCATED) -> pl.Expr:
    """``col`` (text) cut to at most ``max_chars`` characters, the cut marked with ``marker``."""
    return (
        pl.when(col.str.len_chars() > max_chars)
        .then(col.str.slice(0, max_chars - len(marker)) + pl.lit(marker))
        .otherwise(col)
    )


def safe_text(col: pl.Expr, max_chars: int = MAX_CELL) -> pl.Expr:
    """``col`` (text) with formula cells neutralised and long values capped."""
    capped = capped_text(col, max_chars)
    return pl.when(capped.str.contains(FORMULA_START)).then(pl.lit("'") + capped).otherwise(capped)


def people_frame(frame: pl.DataFrame, max_chars: int = MAX_CELL) -> pl.DataFrame:
    """``frame`` with every text column made safe for a spreadsheet (other columns as they are)."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(safe_text(pl.col(c), max_chars).alias(c) for c in text) if text else frame


def write_people_csv(frame: pl.DataFrame, path: str | Path, max_chars: int = MAX_CELL) -> Path:
    """Write ``frame`` as a CSV a person opens in a spreadsheet: UTF-8 with BOM, no live formulas."""
    out = Path(path)
    people_frame(frame, max_chars).write_csv(out, include_bom=True)
    return out
