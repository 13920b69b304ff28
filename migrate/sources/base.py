"""What every source kind shares: the registry, the frame a reader returns, the file-source keys.

A source kind is one :class:`SourceKind` in :data:`SOURCES`: the pydantic model of its
mapping keys, the reader that turns a source into an :class:`Extracted`, and the file
suffixes that mean it.  It registers once, with :func:`register_kind`; mappings, ``crmkit
validate`` and ``crmkit dedupe`` find it there and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import polars as pl
from pydantic import ValidationInfo, field_validator

from crmkit.config import Strict
from crmkit.paths import confine
from crmkit.registry import Registry

ROW = "__row"


@dataclass
class Extracted:
    """A source read into memory."""

    name: str
    frame: pl.DataFrame
    blank_rows: int = 0
    encoding: str | None = None  # the encoding used (``detected`` says whether it was guessed)
    detected: bool = False
    #: values that cannot be loaded as they are (a NUL, a byte that did not decode): ``__row``,
    #: ``column``, ``reason``; their rows are rejected by the feeds that read that column
    bad: pl.DataFrame | None = None

    @property
    def columns(self) -> list[str]:
        return [c for c in self.frame.columns if c != ROW]


class SourceModel(Strict):
    """Base of every source model: ``kind`` picks the model (a ``Literal`` of its kinds)."""

    kind: str


class FileSource(SourceModel):
    """A source read from a file: ``path`` is relative to the mapping (or absolute)."""

    path: Path

    @field_validator("path")
    @classmethod
    def _relative_to_mapping(cls, v: Path, info: ValidationInfo) -> Path:
        """Resolved, and inside the mapping's project or a folder passed with --allow-path."""
        return confine(v, (info.context or {}).get("base"))


#: ``read(name, source)``: the source (an instance of the kind's model) as text columns plus ``__row``
Reader = Callable[[str, Any], Extracted]


@dataclass(frozen=True)
class SourceKind:
    """One ``kind:`` of source: the model of its keys, its reader, the file suffixes that mean it."""

    model: type[SourceModel]
    read: Reader
    suffixes: tuple[str, ...] = ()


SOURCES: Registry[SourceKind] = Registry("source kind")


def register_kind(
    name: str, model: type[SourceModel], read: Reader, *, suffixes: tuple[str, ...] = (), summary: str
) -> SourceKind:
    """Register the source kind ``name``: the one place a kind is declared."""
    if name not in _kinds_of(model):
        raise ValueError(f"source kind {name!r}: {model.__name__}.kind must accept it (kind: Literal[{name!r}])")
    suffixes = tuple(s.lower() for s in suffixes)
    for s in suffixes:
        other = kind_for(Path(f"x{s}"))
        if other is not None:
            raise ValueError(f"source kind {name!r}: suffix {s} is {other}'s already; give it another suffix")
    kind = SourceKind(model, read, suffixes)
    SOURCES.add(name, kind, summary=summary)
    return kind


def _kinds_of(model: type[SourceModel]) -> tuple[Any, ...]:
    annotation = model.model_fields["kind"].annotation
    return get_args(annotation) if get_origin(annotation) is Literal else ()


def kind_for(path: Path) -> str | None:
    """The source kind a file's suffix means (``.csv`` -> ``csv``), or None: the one suffix table."""
    suffix = path.suffix.lower()
    return next((n for n in SOURCES.names() if suffix in SOURCES.get(n).suffixes), None)


def drop_blank(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
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


def as_text(frame: pl.DataFrame) -> list[pl.Expr]:
    """Every column as text: dates as ``YYYY-MM-DD``, timestamps as ``YYYY-MM-DD HH:MM:SS``."""
    out = []
    for col, dtype in frame.schema.items():
        if dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
            out.append(pl.col(col).dt.strftime("%Y-%m-%d %H:%M:%S"))
        elif dtype == pl.Date:
            out.append(pl.col(col).dt.strftime("%Y-%m-%d"))
        else:
            out.append(pl.col(col).cast(pl.String))
    return out


def columns_hint(columns: list[str], wanted: list[str]) -> str:
    """``its columns: a, b`` when the source shares a column with ``wanted``; else nothing of its content.

    A file none of whose columns the mapping reads is likely not the source meant (a system
    file, a binary): its first line is not printed.
    """
    if set(columns) & set(wanted):
        return f"its columns: {', '.join(columns)}"
    return (
        f"it has {len(columns)} column(s), none of them one the mapping reads: check the path, delimiter and header_row"
    )


def first_line(exc: object) -> str:
    """The first line of an error's text, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
