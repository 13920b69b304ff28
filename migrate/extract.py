"""Extract: read each source into a polars frame of text columns plus ``__row``.

Every column comes out as text (legacy data is text until a transform says otherwise);
``__row`` is the row number a person would look for: the line or spreadsheet row for
files, the ordinal for a query.  Blank rows of a spreadsheet are counted and dropped here.
Readers register by source kind in :data:`READERS`.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from crmkit.config import expand_env
from crmkit.db.url import mask_url
from crmkit.errors import SourceError
from crmkit.migrate.mapping import CsvSource, SqlSource, XlsxSource

ROW = "__row"


@dataclass
class Extracted:
    """A source read into memory."""

    name: str
    frame: pl.DataFrame
    blank_rows: int = 0
    encoding: str | None = None  # the encoding used (``detected`` says whether it was guessed)
    detected: bool = False

    @property
    def columns(self) -> list[str]:
        return [c for c in self.frame.columns if c != ROW]


Reader = Callable[[str, Any], Extracted]
READERS: dict[str, Reader] = {}


def reader(*kinds: str) -> Callable[[Reader], Reader]:
    def deco(fn: Reader) -> Reader:
        for k in kinds:
            READERS[k] = fn
        return fn

    return deco


def extract(name: str, source: Any) -> Extracted:
    return READERS[source.kind](name, source)


# --- delimited text -------------------------------------------------------------------


def _decode(path: Path, data: bytes, encoding: str | None) -> tuple[str, str, bool]:
    """Text of the file, the encoding used, and whether it was detected."""
    if encoding is not None:
        try:
            return data.decode(encoding), encoding, False
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            guess = _guess(data)
            hint = f": try `encoding: {guess}`" if guess and guess != encoding else ""
            raise SourceError(
                f"{path}: is not {encoding} (byte 0x{data[exc.start]:02x} at line {line}){hint}"
            ) from None
    try:
        return data.decode("utf-8-sig"), "utf-8", False
    except UnicodeDecodeError as exc:
        guess = _guess(data)
        if guess is None:
            line = data[: exc.start].count(b"\n") + 1
            raise SourceError(
                f"{path}: not UTF-8 (byte 0x{data[exc.start]:02x} at line {line}) and its encoding "
                f"could not be detected: set `encoding:` (e.g. gb18030)"
            ) from None
        return data.decode(guess), guess, True


def _guess(data: bytes) -> str | None:
    """The encoding of legacy bytes: GB18030 when it decodes them, else charset-normalizer's best."""
    for candidate in ("gb18030",):
        try:
            text = data.decode(candidate)
        except UnicodeDecodeError:
            continue
        if any("\u4e00" <= ch <= "\u9fff" for ch in text[:20000]):
            return candidate
    from charset_normalizer import from_bytes

    best = from_bytes(data[:200_000]).best()
    if best is None:
        return None
    name = codecs.lookup(best.encoding).name
    try:
        data.decode(name)
    except UnicodeDecodeError:
        return None
    return name


@reader("csv", "tsv")
def read_csv(name: str, src: CsvSource) -> Extracted:
    path = src.path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"source {name}: {path}: no such file") from None
    except OSError as exc:
        raise SourceError(f"source {name}: {path}: {exc.strerror}") from None
    utf8 = src.encoding is None or codecs.lookup(src.encoding).name in ("utf-8", "utf-8-sig")
    frame, problem = _parse_csv(data, src) if utf8 else (None, None)
    if frame is not None:  # polars validated the bytes as UTF-8 while parsing: no decode in Python
        encoding, detected = "utf-8", False
    else:
        text, encoding, detected = _decode(path, data, src.encoding)
        if problem is None or encoding != "utf-8":
            frame, problem = _parse_csv(text.encode("utf-8") if encoding != "utf-8" else data, src)
        if frame is None:
            assert problem is not None
            raise SourceError(f"{path}: {_csv_problem(text, src, problem)}")
    frame = frame.rename(lambda c: c.strip().lstrip("\ufeff"))
    frame = frame.with_row_index(ROW, offset=src.header_row + 1).with_columns(pl.col(ROW).cast(pl.Int64))
    frame, blanks = _drop_blank(frame)
    return Extracted(name, frame, blank_rows=blanks, encoding=encoding, detected=detected)


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


def _drop_blank(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Rows with no value in any column are counted and dropped (a blank line, an empty sheet row)."""
    cols = [c for c in frame.columns if c != ROW]
    if not cols:
        return frame, 0
    # column by column, each looked at only on the rows still blank so far (usually: none after the first)
    rows = pl.int_range(frame.height, dtype=pl.UInt32, eager=True)
    for c in cols:
        if rows.len() == 0:
            return frame, 0
        values = frame[c].gather(rows).cast(pl.String)
        rows = rows.filter((values.is_null() | (values.str.strip_chars() == "")).fill_null(True))
    if rows.len() == 0:
        return frame, 0
    keep = pl.repeat(True, frame.height, eager=True).scatter(rows, False)
    return frame.filter(keep), rows.len()


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
    return f"cannot be read as CSV: {str(exc).splitlines()[0]}"


# --- spreadsheets -----------------------------------------------------------------


@reader("xlsx")
def read_xlsx(name: str, src: XlsxSource) -> Extracted:
    import fastexcel

    path = src.path
    if not path.exists():
        raise SourceError(f"source {name}: {path}: no such file")
    try:
        book = fastexcel.read_excel(path)
    except Exception as exc:  # fastexcel raises its own error types for a corrupt workbook
        raise SourceError(f"{path}: not a readable Excel workbook ({_first_line(exc)})") from None
    if isinstance(src.sheet, str) and src.sheet not in book.sheet_names:
        raise SourceError(f"{path}: no sheet named {src.sheet!r} (sheets: {', '.join(book.sheet_names)})")
    if isinstance(src.sheet, int) and not 0 <= src.sheet < len(book.sheet_names):
        raise SourceError(f"{path}: no sheet number {src.sheet} (it has {len(book.sheet_names)}, counted from 0)")
    try:
        sheet = book.load_sheet(src.sheet, header_row=src.header_row - 1, dtypes="string")
        frame = pl.from_arrow(sheet.to_arrow())
    except Exception as exc:
        raise SourceError(f"{path}: sheet {src.sheet!r}: {_first_line(exc)}") from None
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.all().cast(pl.String)).rename(lambda c: c.strip())
    frame = frame.with_row_index(ROW, offset=src.header_row + 1).with_columns(pl.col(ROW).cast(pl.Int64))
    frame, blanks = _drop_blank(frame)
    return Extracted(name, frame, blank_rows=blanks)


# --- databases --------------------------------------------------------------------


@reader("sql")
def read_sql(name: str, src: SqlSource) -> Extracted:
    from sqlalchemy import create_engine, text
    from sqlalchemy import exc as sa_exc

    url = expand_env(src.url, f"source {name}: url")
    shown = mask_url(url)
    try:
        engine = create_engine(url)
    except Exception as exc:
        raise SourceError(f"source {name}: bad database URL {shown}: {_first_line(exc)}") from None
    try:
        with engine.connect() as conn:
            if src.table is not None:
                quoted = ".".join(engine.dialect.identifier_preparer.quote(p) for p in src.table.split("."))
                query = f"SELECT * FROM {quoted}"
            else:
                query = src.query or ""
            frame = pl.read_database(text(query), conn, infer_schema_length=None)
    except sa_exc.OperationalError as exc:
        raise SourceError(f"source {name}: cannot connect to {shown}: {_driver_message(exc)}") from None
    except (sa_exc.ProgrammingError, sa_exc.DatabaseError) as exc:
        raise SourceError(f"source {name} ({shown}): {_driver_message(exc)}") from None
    except ModuleNotFoundError as exc:
        raise SourceError(f"source {name}: no driver for {shown} ({exc.name} is not installed)") from None
    finally:
        engine.dispose()
    frame = frame.with_columns(_as_text(frame))
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    return Extracted(name, frame)


def _as_text(frame: pl.DataFrame) -> list[pl.Expr]:
    out = []
    for col, dtype in frame.schema.items():
        if dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
            out.append(pl.col(col).dt.strftime("%Y-%m-%d %H:%M:%S"))
        elif dtype == pl.Date:
            out.append(pl.col(col).dt.strftime("%Y-%m-%d"))
        else:
            out.append(pl.col(col).cast(pl.String))
    return out


def _driver_message(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    msg = str(orig.args[-1] if getattr(orig, "args", None) else orig)
    return _first_line(msg)


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
