"""Delta: which checked rows are new, changed or unchanged against the target.

A row's ``row_hash`` is a stable 64-bit xxhash (polars-hash, stable across versions,
unlike ``Series.hash``) of its mapped field values.  Rows whose legacy key is not in the
id map are inserts; rows whose hash differs are updates; the rest are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import polars_hash as plh

from migrate.fields import KEY
from migrate.load import Loader, q

HASH = "row_hash"
_NULL = "\x00"


def with_row_hash(frame: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """Add ``row_hash``: a stable hash of the given columns' values (null distinct from empty)."""
    parts = [pl.col(f).cast(pl.String).fill_null(_NULL) for f in sorted(fields)]
    text = pl.concat_str(parts, separator="\x1f") if parts else pl.lit("")
    hashed = plh.col("__hash_text").nchash.xxhash64().reinterpret(signed=True).alias(HASH)
    return frame.with_columns(text.alias("__hash_text")).with_columns(hashed).drop("__hash_text")


def existing(loader: Loader, entity: str, source: str) -> pl.DataFrame:
    """legacy_key, target_id and row_hash of every row this source already has in the target."""
    frame = loader.query(
        f"SELECT m.legacy_key, m.target_id, e.row_hash FROM crmkit_id_map m "
        f"JOIN {q(entity)} e ON e.id = m.target_id WHERE m.entity = ? AND m.source_name = ?",
        (entity, source),
    )
    if frame.height == 0:
        return pl.DataFrame(schema={"legacy_key": pl.String, "target_id": pl.Int64, "row_hash": pl.Int64})
    return frame.with_columns(pl.col("target_id").cast(pl.Int64), pl.col("row_hash").cast(pl.Int64))


@dataclass
class Delta:
    inserts: pl.DataFrame
    updates: pl.DataFrame  # with target_id
    unchanged: pl.DataFrame  # with target_id


def classify(ok: pl.DataFrame, before: pl.DataFrame) -> Delta:
    joined = ok.join(
        before.rename({"legacy_key": KEY, "row_hash": "__old_hash"}), on=KEY, how="left", maintain_order="left"
    )
    new = pl.col("target_id").is_null()
    same = pl.col("__old_hash") == pl.col(HASH)
    return Delta(
        inserts=joined.filter(new).drop("target_id", "__old_hash"),
        updates=joined.filter(~new & ~same.fill_null(False)).drop("__old_hash"),
        unchanged=joined.filter(~new & same.fill_null(False)).drop("__old_hash"),
    )
