"""CSV files that people open: one writer for all of them.

A spreadsheet opened on a Chinese (or any) Windows reads a CSV without a byte-order mark in the
local code page, and treats a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or
carriage return) as a formula: legacy data is untrusted, so such a cell could run a formula
on the reader's machine (CSV injection, OWASP). :func:`write_people_csv` writes UTF-8 with a
BOM, prefixes those cells with ``'`` (the spreadsheet shows the text as it was), and caps a
value at :data:`MAX_CELL` characters with a marker (a spreadsheet cell holds 32,767). The
full values stay where the data lives (the database, the JSON summary).  A float that is not
a number (NaN) is written as an empty cell.

The neutralising is reversible, for the files crmkit reads back (the dedupe review file): a
value is prefixed when it starts with a formula character after any apostrophes (so ``'=x``
is written ``''=x``), and :func:`unneutralised` takes exactly one apostrophe off such a
value.  Values that do not look like formulas are written and read as they are.

The file is written next to its place and renamed into it (a reader never sees half a
file), with the usual mode (0644 under the usual umask, not a temporary file's 0600).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import polars as pl

#: a cell that starts with one of these is a formula to a spreadsheet
FORMULA_START = r"^[=+\-@\t\r]"
#: what is prefixed with ``'``: a formula start after any apostrophes (so the prefix can be taken off again)
NEUTRALISE = r"^'*[=+\-@\t\r]"
#: what a reader takes one ``'`` off
NEUTRALISED = r"^'+[=+\-@\t\r]"
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
    """``col`` (text) with formula cells neutralised (reversibly) and long values capped."""
    capped = capped_text(col, max_chars)
    return pl.when(capped.str.contains(NEUTRALISE)).then(pl.lit("'") + capped).otherwise(capped)


def unneutralised(col: pl.Expr) -> pl.Expr:
    """``col`` (text read back from a file :func:`write_people_csv` wrote) with the ``'`` it added taken off."""
    return pl.when(col.str.contains(NEUTRALISED)).then(col.str.slice(1)).otherwise(col)


def people_frame(frame: pl.DataFrame, max_chars: int = MAX_CELL) -> pl.DataFrame:
    """``frame`` with every text column made safe for a spreadsheet (other columns as they are)."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    exprs = [safe_text(pl.col(c), max_chars).alias(c) for c in text] + [pl.col(c).fill_nan(None) for c in floats]
    return frame.with_columns(exprs) if exprs else frame


def write_people_csv(frame: pl.DataFrame, path: str | Path, max_chars: int = MAX_CELL) -> Path:
    """Write ``frame`` as a CSV a person opens in a spreadsheet: UTF-8 with BOM, no live formulas."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        people_frame(frame, max_chars).write_csv(tmp, include_bom=True)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
