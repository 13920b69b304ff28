"""Content hashes of CRM tables: equal hashes mean equal rows, whatever their order.

Values are first written in one canonical text form per column kind (dates ``YYYY-MM-DD``,
date-times to the microsecond, booleans ``0``/``1``, decimals with two places), so the hash
does not depend on how a driver hands them back.  Each row is hashed (SHA-256 over its
columns in name order, NULL distinct from empty), the row digests are sorted, and the table
hash is the SHA-256 of the sorted list.
"""

from __future__ import annotations

import hashlib

import polars as pl
import polars_hash as plh

from crmkit.schema.models import ENTITY_MODELS, table_of
from crmkit.schema.target import _kind

_NULL = "\x00"


def _canonical(col: pl.Expr, kind: str, dtype: pl.DataType) -> pl.Expr:
    if kind == "boolean":
        return col.cast(pl.Int64).cast(pl.String)
    if kind == "decimal":
        return (col.cast(pl.Float64) * 100).round(0).cast(pl.Int64).cast(pl.String)
    if kind == "integer":
        return col.cast(pl.Int64).cast(pl.String)
    if kind == "date":
        return col.dt.strftime("%Y-%m-%d") if dtype == pl.Date else col.cast(pl.String).str.slice(0, 10)
    if kind == "datetime":
        if not isinstance(dtype, pl.Datetime):
            s = col.cast(pl.String)
            col = pl.coalesce(
                s.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False),
                s.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False),
            )
        return col.dt.strftime("%Y-%m-%d %H:%M:%S%.6f")
    return col.cast(pl.String)


def frame_hash(frame: pl.DataFrame, kinds: dict[str, str]) -> str:
    """Order-independent hash of a frame's rows (columns canonicalised by ``kinds``)."""
    cols = sorted(c for c in frame.columns if c in kinds)
    if frame.height == 0:
        return hashlib.sha256(b"").hexdigest()
    text = pl.concat_str(
        [_canonical(pl.col(c), kinds[c], frame.schema[c]).fill_null(_NULL) for c in cols], separator="\x1f"
    )
    digests = frame.select(text.alias("__t")).select(plh.col("__t").chash.sha2_256().alias("d")).sort("d")["d"]
    return hashlib.sha256("\n".join(digests.to_list()).encode()).hexdigest()


def table_kinds(table: str) -> dict[str, str]:
    model = ENTITY_MODELS[table]
    return {c.name: _kind(c) for c in table_of(model).columns}


def table_hashes(url: str, tables: list[str] | None = None) -> dict[str, str]:
    """A content hash per CRM table of the database at ``url`` (row order does not matter)."""
    from crmkit.db.loader import open_loader
    from crmkit.db.sql import q

    loader = open_loader(url)
    try:
        out = {}
        for table in tables or list(ENTITY_MODELS):
            kinds = table_kinds(table)
            frame = loader.query(f"SELECT {', '.join(q(c) for c in kinds)} FROM {q(table)}")
            out[table] = frame_hash(frame, kinds)
        return out
    finally:
        loader.close()
