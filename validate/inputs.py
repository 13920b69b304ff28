"""What ``crmkit validate`` reads: a file, a table of any database, or the CRM target itself.

Files are read by the migration's own readers (:mod:`crmkit.migrate.sources`), so encodings,
header rows and row numbers behave exactly as in a migration.  A file or legacy table is
validated *as* an entity when its columns are named like the entity's fields; other
columns are listed as not checked.  Text is typed with the migration's casts; a value that
does not cast keeps its text in ``__t_<field>`` and fails the rule ``<field>_type``.

The target is read table by table through the migration's loader, with ``source_name``,
``legacy_key`` and ``id`` as the provenance of each row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from pydantic import ValidationError

from crmkit.config import expand_url
from crmkit.db.url import mask_url
from crmkit.errors import SourceError, TargetError
from crmkit.migrate.sources import ROW, SOURCES, Extracted, extract, file_suffixes, kind_for, make_source
from crmkit.migrate.transforms import blank_to_null, cast_step
from crmkit.schema.target import TargetField, entities
from crmkit.validate.schema import KEY, KEY_FIELD, SOURCE, raw_col


@dataclass
class Input:
    """A frame ready for :func:`validate.engine.evaluate`, and what was left out of it."""

    label: str  # what was read, safe to print
    kind: str  # file | table | target
    frame: pl.DataFrame
    unchecked_columns: list[str] = field(default_factory=list)  # columns that are no field of the entity
    missing_fields: list[str] = field(default_factory=list)  # fields of the entity the input lacks
    note: str = ""


def is_url(text: str) -> bool:
    return "://" in text


def read_file(
    path: Path, entity: str, sheet: str | None = None, encoding: str | None = None, key: list[str] | None = None
) -> Input:
    """A file of any registered source kind (CSV, TSV, XLSX, ...), typed as ``entity``."""
    kind = kind_for(path)
    if kind is None:
        raise SourceError(
            f"{path}: cannot tell the format from the extension '{path.suffix}': "
            f"validate a {file_suffixes()} file, or a database URL with --table"
        )
    if sheet is not None and "sheet" not in SOURCES.get(kind).model.model_fields:
        raise SourceError(f"{path}: --sheet applies to {file_suffixes('sheet')} files only")
    try:
        src = make_source(kind, path=path, sheet=_sheet(sheet), encoding=encoding)
    except ValidationError as exc:
        raise SourceError(f"{path}: {_first_error(exc)}") from None
    return _typed_input(extract(path.name, src), entity, str(path), "file", key)


def _first_error(exc: ValidationError) -> str:
    return str(exc.errors()[0]["msg"]).removeprefix("Value error, ")


def _sheet(sheet: str | None) -> str | int:
    if sheet is None:
        return 0
    return int(sheet) if sheet.isdigit() else sheet


def read_table(url: str, table: str, entity: str, key: list[str] | None = None) -> Input:
    """A table of any database SQLAlchemy reaches (read as text, like a migration source)."""
    shown = mask_url(expand_url(url, "PATH_OR_URL"))
    try:
        src = make_source("sql", url=url, table=table)
    except ValidationError as exc:
        raise SourceError(f"{shown}: {_first_error(exc)}") from None
    return _typed_input(extract(table, src), entity, f"{shown} table {table}", "table", key)


def _typed_input(ex: Extracted, entity: str, label: str, kind: str, key: list[str] | None) -> Input:
    fields = entities()[entity].fields
    cols = ex.columns
    key = key if key is not None else ([KEY_FIELD] if KEY_FIELD in cols else [])
    for k in key:
        if k not in cols:
            raise SourceError(f"{label}: no key column '{k}' (its columns: {_some(cols)})")
    usable = [c for c in cols if c in fields]
    if not usable:
        raise SourceError(
            f"{label}: no column is named like a field of {entity} (fields: {', '.join(fields)}); "
            f"rename the header to the target field names, or validate through a mapping"
        )
    frame = ex.frame.select(
        ROW, *[_key(key)] if key else [], pl.lit(Path(label).name if kind == "file" else label).alias(SOURCE), *usable
    )
    frame = typed(frame, [fields[c] for c in usable])
    unchecked = [c for c in cols if c not in fields and c not in key]
    missing = [f for f in fields if f not in cols]
    note = "the input has a header but no rows" if frame.height == 0 else ""
    return Input(label, kind, frame, unchecked, missing, note)


def _key(key: list[str]) -> pl.Expr:
    parts = [pl.col(k).cast(pl.String).str.strip_chars() for k in key]
    joined = pl.concat_str(parts, separator="|")
    return pl.when(pl.any_horizontal([p.is_null() | (p == "") for p in parts])).then(None).otherwise(joined).alias(KEY)


def _some(cols: list[str], n: int = 12) -> str:
    return ", ".join(cols[:n]) + (f" and {len(cols) - n} more" if len(cols) > n else "")


def typed(frame: pl.DataFrame, fields: list[TargetField]) -> pl.DataFrame:
    """Text columns to the fields' dtypes with the migration's casts; failures keep their text."""
    exprs: list[pl.Expr] = []
    for tf in fields:
        col = pl.col(tf.name)
        if frame.schema[tf.name] != pl.String:
            exprs.append(col.cast(tf.dtype, strict=False))
            continue
        text = blank_to_null().apply(col)  # type: ignore[misc]
        if tf.kind == "string":
            exprs.append(text.alias(tf.name))
            continue
        step = cast_step(tf.kind, None)
        assert step.apply is not None
        value = step.apply(text)
        exprs += [
            value.cast(tf.dtype).alias(tf.name),
            pl.when(value.is_null() & text.is_not_null()).then(text).alias(raw_col(tf.name)),
        ]
    return frame.with_columns(exprs)


def read_target(url: str, entity: str) -> Input:
    """The entity's table in the CRM target, with each row's provenance (post-load validation)."""
    from crmkit.db.loader import open_loader
    from crmkit.db.sql import first_line, q

    url = expand_url(url, "--target")  # shown below with its password masked
    loader = open_loader(url)
    fields = entities()[entity].fields
    try:
        raw = loader.query(f"SELECT * FROM {q(entity)} ORDER BY id")
    except Exception as exc:
        raise TargetError(
            f"target {mask_url(url)}: cannot read table {entity} ({first_line(exc)}); "
            f"is this a crmkit target? (crmkit db upgrade --target ...)"
        ) from None
    finally:
        loader.close()
    if "id" not in raw.columns:
        raise TargetError(f"target {mask_url(url)}: table {entity} has no id column: not a crmkit target")
    raw = _as_target_types(raw, entity)

    def text(col: str) -> pl.Expr:
        return pl.col(col).cast(pl.String) if col in raw.columns else pl.lit(None, pl.String)

    frame = raw.select(
        pl.col("id").cast(pl.Int64).alias(ROW),
        text("legacy_key").alias(KEY),
        text("source_name").alias(SOURCE),
        *[c for c in raw.columns if c in fields],
    )
    frame = typed(frame, [fields[c] for c in frame.columns if c in fields])
    missing = [f for f in fields if f not in frame.columns]
    note = f"table {entity} is empty" if frame.height == 0 else ""
    return Input(f"{mask_url(url)} table {entity}", "target", frame, [], missing, note)


def _as_target_types(raw: pl.DataFrame, entity: str) -> pl.DataFrame:
    """Driver types to polars types the casts understand (SQLite hands dates over as text)."""
    exprs = []
    for name, dtype in raw.schema.items():
        if isinstance(dtype, pl.Decimal):
            exprs.append(pl.col(name).cast(pl.Float64))
        elif dtype == pl.Null:
            tf = entities()[entity].fields.get(name)
            exprs.append(pl.col(name).cast(tf.dtype if tf else pl.String))
    return raw.with_columns(exprs) if exprs else raw
