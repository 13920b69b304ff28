"""Content hashes of a target's CRM tables, independent of surrogate ids and row order.

Foreign keys are replaced by the provenance (``source:legacy_key``) of the row they point
at, ids are dropped, values are normalised to text through the target field types, and the
sorted rows are hashed.  Two targets with the same customers give the same hashes, even
when their ids differ (PostgreSQL sequences skip values a rolled-back batch took).
"""

from __future__ import annotations

import hashlib

import polars as pl

from crmkit.db.loader import open_loader
from crmkit.db.sql import q
from crmkit.migrate.pipeline import delta
from crmkit.schema.models import ENTITY_MODELS

#: ids, and the seal over a row's values (image_hash, which covers the ids its references hold)
_SKIP = {"id", "image_hash"}


def table_hashes(url: str, include_id_map: bool = True, content_only: bool = False) -> dict[str, str]:
    """Hash per CRM table (and the id map).  ``content_only`` leaves out which run wrote a row
    (``run_id``): a migration done in waves then equals the same migration done at once."""
    skip = _SKIP | ({"run_id"} if content_only else set())
    loader = open_loader(url)
    try:
        idmap = loader.query("SELECT entity, source_name, legacy_key, target_id, run_id FROM crmkit_id_map").cast(
            {
                "entity": pl.String,
                "source_name": pl.String,
                "legacy_key": pl.String,
                "target_id": pl.Int64,
                "run_id": pl.Int64,
            }
        )
        refs = _provenance(loader)
        out = {e: _hash(_normalised(loader, e, refs).drop(skip, strict=False)) for e in ENTITY_MODELS}
        if include_id_map:
            out["crmkit_id_map"] = _hash(
                idmap.join(refs, left_on=["entity", "target_id"], right_on=["entity", "id"], how="left").drop(
                    ["target_id", *skip], strict=False
                )
            )
        return out
    finally:
        loader.close()


def _provenance(loader) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    parts = []
    for entity in ENTITY_MODELS:
        f = loader.query(f"SELECT id, source_name, legacy_key FROM {q(entity)}")
        parts.append(
            f.select(
                pl.lit(entity, dtype=pl.String).alias("entity"),
                pl.col("id").cast(pl.Int64),
                pl.concat_str(
                    [
                        pl.col("source_name").cast(pl.String).fill_null("-"),
                        pl.col("legacy_key").cast(pl.String).fill_null(pl.col("id").cast(pl.String)),
                    ],
                    separator=":",
                ).alias("ref"),
            )
        )
    return pl.concat(parts)


def _normalised(loader, entity: str, refs: pl.DataFrame) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    frame = loader.query(f"SELECT * FROM {q(entity)}")
    for col in delta.entity_columns(entity):
        fk = next(iter(col.foreign_keys), None)
        if fk is None or frame.height == 0:
            continue
        parent = refs.filter(pl.col("entity") == fk.column.table.name).select(
            pl.col("id").alias(col.name), pl.col("ref").alias(f"{col.name}__ref")
        )
        frame = frame.with_columns(pl.col(col.name).cast(pl.Int64)).join(parent, on=col.name, how="left").drop(col.name)
    return frame.drop([c for c in frame.columns if c in _SKIP])


def _hash(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return hashlib.sha256(b"empty").hexdigest()
    cols = sorted(frame.columns)
    text = (
        frame.select([_text(frame, c) for c in cols])
        .select(pl.concat_str(pl.all(), separator="\x1f").alias("r"))
        .sort("r")
    )
    return hashlib.sha256("\n".join(text["r"].to_list()).encode()).hexdigest()


def _text(frame: pl.DataFrame, col: str) -> pl.Expr:
    dtype = frame.schema[col]
    e = pl.col(col)
    if dtype == pl.Boolean:
        e = e.cast(pl.Int8)
    elif isinstance(dtype, pl.Decimal):
        e = e.cast(pl.Float64)
    return e.cast(pl.String).fill_null("\x00").alias(col)
