"""A row's image hash: how rollback knows whether a row changed since a run wrote it.

Every row a run inserts or updates carries ``image_hash``, a stable hash of all its other
columns as the run left them.  Nothing but a run maintains it: an edit through the API, a
SQL ``UPDATE`` or a merge changes the row's values and leaves the hash behind, so a rollback
that reads the row back and hashes it again sees the difference and refuses to discard the
edit (unless forced).  Each column is hashed as text of the type the pipeline gives it
(decimals rounded to the column's scale, dates as ISO text, booleans as true/false), whether
it comes from the frame a run writes or is read back from SQLite or PostgreSQL; the columns'
hashes (xxhash64, seeded by the column's name) are summed, so the cost is one pass per column.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import cache
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the nchash namespace)
from sqlalchemy import Numeric

from crmkit.db.loader import Loader
from crmkit.db.sql import q
from crmkit.schema.models import ENTITY_MODELS, table_of
from crmkit.schema.target import TargetField, entities

IMAGE = "image_hash"
_NULL = "\x00"
_PROVENANCE = {"source_name": "string", "legacy_key": "string", "row_hash": "integer", "run_id": "integer"}


@cache
def _columns(entity: str) -> tuple[tuple[str, str, int | None], ...]:
    """(column, kind, decimal scale) of every column the image covers: all but id and the hash."""
    fields = entities()[entity].fields
    out = []
    for col in table_of(ENTITY_MODELS[entity]).columns:
        if col.name in ("id", IMAGE):
            continue
        kind = fields[col.name].kind if col.name in fields else _PROVENANCE[col.name]
        scale = col.type.scale if isinstance(col.type, Numeric) else None
        out.append((col.name, kind, scale))
    return tuple(out)


def _text(e: pl.Expr, kind: str, scale: int | None) -> pl.Expr:
    """A column as the text its hash is taken of (one spelling per value, whatever the driver gave)."""
    if kind == "decimal":
        e = e.cast(pl.Float64).round(scale or 0)
    elif kind == "datetime":
        e = e.cast(pl.Datetime("us"))
    elif kind != "string":
        e = e.cast(TargetField("x", kind, False).dtype)
    return e.cast(pl.String).fill_null(_NULL)


def image_expr(entity: str, present: Sequence[str]) -> pl.Expr:
    """``image_hash`` of rows holding the ``present`` columns of ``entity`` (the others are NULL)."""
    parts = []
    for name, kind, scale in _columns(entity):
        text: Any = _text(pl.col(name) if name in present else pl.lit(None, dtype=pl.String), kind, scale)
        parts.append(text.nchash.xxhash64(seed=zlib.crc32(name.encode())))  # polars-hash's namespace
    return pl.sum_horizontal(parts).reinterpret(signed=True).alias(IMAGE)


def read_back(frame: pl.DataFrame, f: TargetField) -> pl.Expr:
    """A target column read back (SQLite text dates, integer booleans, decimals) as the pipeline types it."""
    e, dtype = pl.col(f.name), frame.schema[f.name]
    if f.kind == "date" and dtype == pl.String:
        return e.str.slice(0, 10).str.to_date("%Y-%m-%d")
    if f.kind == "datetime" and dtype == pl.String:
        return e.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us")
    if f.kind == "boolean" and dtype != pl.Boolean:
        return e.cast(pl.Int64).cast(pl.Boolean)
    if f.kind == "datetime":
        return e.cast(pl.Datetime("us"))
    return e.cast(f.dtype)


def current(loader: Loader, entity: str, where: str, params: Sequence[Any]) -> pl.DataFrame:
    """id, source_name, legacy_key, the stored ``image_hash`` and ``now`` (the hash of the row as it
    is) of the rows of ``entity`` that ``where`` (SQL over alias ``e``) selects."""
    names = [name for name, _, _ in _columns(entity)]
    frame = loader.query(
        f"SELECT e.id, e.{q(IMAGE)}, {', '.join('e.' + q(n) for n in names)} FROM {q(entity)} e WHERE {where}",
        tuple(params),
    )
    if frame.height == 0:
        return pl.DataFrame(
            schema={"id": pl.Int64, "source_name": pl.String, "legacy_key": pl.String, IMAGE: pl.Int64, "now": pl.Int64}
        )
    fields = entities()[entity].fields
    typed = frame.with_columns(
        *(read_back(frame, fields[n]) for n in names if n in fields),
        *(pl.col(n).cast(pl.String if kind == "string" else pl.Int64) for n, kind in _PROVENANCE.items()),
    )
    return typed.select(
        pl.col("id").cast(pl.Int64),
        "source_name",
        "legacy_key",
        pl.col(IMAGE).cast(pl.Int64),
        image_expr(entity, names).alias("now"),
    )


def reseal(loader: Loader, entity: str, stage: str) -> None:
    """Set ``image_hash`` of the rows just updated from ``stage`` (dropped here) to the hash of
    their values now, read back whole (an update writes some of the columns)."""
    rows = current(loader, entity, f"e.id IN (SELECT id FROM {q(stage)})", ())
    loader.execute(f"DROP TABLE {q(stage)}")
    if rows.height:
        loader.update(entity, rows.select("id", pl.col("now").alias(IMAGE)))
