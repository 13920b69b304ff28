"""Delta: which checked rows are new, changed or unchanged against the target.

A row's ``row_hash`` is a stable 64-bit xxhash (polars-hash, stable across versions,
unlike ``Series.hash``) of its mapped field values.  Rows whose legacy key is not in the
id map are inserts; rows whose hash differs are updates; the rest are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl
import polars_hash as plh

from crmkit.db.loader import Loader
from crmkit.db.sql import q
from crmkit.migrate.fields import KEY
from crmkit.schema.models import ENTITY_MODELS

HASH = "row_hash"
_NULL = "\x00"


def with_row_hash(frame: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """Add ``row_hash``: a stable hash of the given columns' values (null distinct from empty)."""
    parts = [pl.col(f).cast(pl.String).fill_null(_NULL) for f in sorted(fields)]
    text = pl.concat_str(parts, separator="\x1f") if parts else pl.lit("")
    hashed = plh.col("__hash_text").nchash.xxhash64().reinterpret(signed=True).alias(HASH)
    return frame.with_columns(text.alias("__hash_text")).with_columns(hashed).drop("__hash_text")


def entity_columns(entity: str) -> list[Any]:
    """The SQLAlchemy columns of a CRM entity table."""
    return list(ENTITY_MODELS[entity].__table__.columns)  # type: ignore[attr-defined]


def existing(loader: Loader, entity: str, source: str) -> pl.DataFrame:
    """What the target already holds for this source: key, id, hash, which run created and last wrote it."""
    has_active = any(c.name == "active" for c in entity_columns(entity))
    frame = loader.query(
        f"SELECT m.legacy_key, m.target_id, e.row_hash, m.run_id AS created_by, e.run_id AS written_by, "
        f"{'e.active' if has_active else 'NULL'} AS active FROM crmkit_id_map m "
        f"JOIN {q(entity)} e ON e.id = m.target_id WHERE m.entity = ? AND m.source_name = ?",
        (entity, source),
    )
    schema = {
        "legacy_key": pl.String,
        "target_id": pl.Int64,
        "row_hash": pl.Int64,
        "created_by": pl.Int64,
        "written_by": pl.Int64,
        "active": pl.Boolean,
    }
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    return frame.with_columns(
        pl.col("active").cast(pl.Int64).cast(pl.Boolean) if frame.schema["active"] != pl.Boolean else pl.col("active"),
        *(pl.col(c).cast(t) for c, t in schema.items() if c != "active"),
    )


@dataclass
class Delta:
    inserts: pl.DataFrame
    updates: pl.DataFrame  # with target_id
    unchanged: pl.DataFrame  # with target_id
    done_inserts: int = 0  # inserted by this same run before it was interrupted (a resume)
    done_updates: int = 0  # updated by this same run before it was interrupted


def classify(ok: pl.DataFrame, before: pl.DataFrame, run_id: int) -> Delta:
    """Split checked rows into inserts, updates and unchanged; rows this run already wrote count as done."""
    joined = ok.join(
        before.select(
            "legacy_key", "target_id", pl.col("row_hash").alias("__old_hash"), "created_by", "written_by"
        ).rename({"legacy_key": KEY}),
        on=KEY,
        how="left",
        maintain_order="left",
    )
    new = pl.col("target_id").is_null()
    mine_ins = pl.col("created_by") == run_id
    mine_upd = (pl.col("written_by") == run_id) & ~mine_ins
    same = (pl.col("__old_hash") == pl.col(HASH)).fill_null(False)
    todo = ~new & ~mine_ins.fill_null(False) & ~mine_upd.fill_null(False)
    drop = ["__old_hash", "created_by", "written_by"]
    return Delta(
        inserts=joined.filter(new).drop("target_id", *drop),
        updates=joined.filter(todo & ~same).drop(drop),
        unchanged=joined.filter(todo & same).drop(drop),
        done_inserts=joined.filter(mine_ins.fill_null(False)).height,
        done_updates=joined.filter(mine_upd.fill_null(False)).height,
    )
