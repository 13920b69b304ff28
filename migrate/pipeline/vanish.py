"""Vanished rows: target rows an earlier run loaded whose legacy row is gone from the source.

What happens to them is the feed's ``on_vanished``: ``keep`` (the default: counted as
``vanished``, listed by verify, left as they are), ``deactivate`` (their ``active`` flag
cleared; refused when the mapping is loaded for an entity without one) or ``delete``.
Deletes wait until every feed of the run has loaded and go children first, so that a legacy
account deleted with its contacts goes in one run.  A row that something else still refers
to (a child row of any table, or another legacy key merged into it) is not deleted: it is
kept and listed as a warning of the run, naming what refers to it.  A deleted row's
before-image is kept (``crmkit_before_<entity>``) so that a rollback brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from crmkit.db.loader import Loader
from crmkit.db.sql import q
from crmkit.migrate.pipeline.result import FeedCounts

#: a vanished row listed as a warning has no source row: its row number
NO_ROW = 0


@dataclass
class Pending:
    """A feed's vanished rows to delete once every feed has loaded."""

    entity: str
    source: str
    gone: pl.DataFrame  # legacy_key, target_id
    counts: FeedCounts
    deleted: pl.Series = field(default_factory=lambda: pl.Series("legacy_key", [], dtype=pl.String))


def referring_columns(entity: str) -> list[tuple[str, str]]:
    """(table, column) of every column of the target schema that refers to ``entity``'s rows."""
    import crmkit.schema  # noqa: F401  (every capability's tables in the metadata)
    from crmkit.schema.models import Base

    out = []
    for table in Base.metadata.sorted_tables:
        for col in table.columns:
            for fk in col.foreign_keys:
                if fk.column.table.name == entity and fk.column.name == "id":
                    out.append((table.name, col.name))
    return out


def blockers(loader: Loader, entity: str, source: str, gone: pl.DataFrame) -> pl.DataFrame:
    """target_id, why: the rows of ``gone`` something else still refers to."""
    ids = gone.select(pl.col("target_id").alias("id"))
    stage = loader.stage(entity, ids)
    whys = []
    for table, col in referring_columns(entity):
        found = loader.query(
            f"SELECT {q(col)} AS target_id, count(*) AS n FROM {q(table)} "
            f"WHERE {q(col)} IN (SELECT id FROM {q(stage)}) GROUP BY {q(col)}"
        )
        if found.height:
            whys.append(found.select("target_id", pl.format(f"{{}} {table} row(s) refer to it", "n").alias("why")))
    merged = loader.query(
        f"SELECT target_id, count(*) AS n FROM crmkit_id_map WHERE entity = ? AND target_id IN "
        f"(SELECT id FROM {q(stage)}) GROUP BY target_id",
        (entity,),
    )
    loader.execute(f"DROP TABLE {q(stage)}")
    per_id = gone.group_by("target_id").len("k")
    if merged.height:
        more = merged.join(per_id, on="target_id").filter(pl.col("n") > pl.col("k"))
        whys.append(more.select("target_id", pl.lit("other legacy keys were merged into it").alias("why")))
    if not whys:
        return pl.DataFrame(schema={"target_id": pl.Int64, "why": pl.String})
    return (
        pl.concat([w.with_columns(pl.col("target_id").cast(pl.Int64)) for w in whys])
        .group_by("target_id", maintain_order=True)
        .agg(pl.col("why").str.join("; "))
    )


def delete(loader: Loader, p: Pending, run_id: int, keep_images: bool) -> pl.DataFrame:
    """Delete ``p.gone``'s target rows and id-map entries, except those something refers to;
    returns those kept (legacy_key, target_id, why).  The caller owns the transaction."""
    blocked = blockers(loader, p.entity, p.source, p.gone)
    kept = p.gone.join(blocked, on="target_id", how="inner")
    todo = p.gone.join(blocked, on="target_id", how="anti")
    if todo.height:
        stage = loader.stage("crmkit_id_map", todo.select("legacy_key", "target_id"))
        if keep_images:
            from crmkit.migrate.pipeline.delta import entity_columns

            cols = [c.name for c in entity_columns(p.entity) if c.name != "id"]
            loader.execute(
                f"INSERT INTO {q('crmkit_before_' + p.entity)} (before_run_id, target_id, "
                f"{', '.join(q(c) for c in cols)}) SELECT ?, t.id, {', '.join('t.' + q(c) for c in cols)} "
                f"FROM {q(p.entity)} t WHERE t.id IN (SELECT target_id FROM {q(stage)})",
                (run_id,),
            )
        loader.execute(
            "DELETE FROM crmkit_id_map WHERE entity = ? AND source_name = ? AND legacy_key IN "
            f"(SELECT legacy_key FROM {q(stage)})",
            (p.entity, p.source),
        )
        loader.execute(f"DELETE FROM {q(p.entity)} WHERE id IN (SELECT target_id FROM {q(stage)})")
        loader.execute(f"DROP TABLE {q(stage)}")
    p.counts.deleted = todo.height
    p.deleted = todo.get_column("legacy_key")
    return kept


def kept_rows(p: Pending, kept: pl.DataFrame, run_id: int) -> pl.DataFrame:
    """The vanished rows ``delete`` kept, as warnings (crmkit_rejects rows)."""
    return kept.select(
        pl.lit(run_id).alias("run_id"),
        pl.lit(p.entity).alias("entity"),
        pl.lit(p.source).alias("source_name"),
        pl.lit(NO_ROW, dtype=pl.Int64).alias("row_number"),
        pl.col("legacy_key"),
        pl.format("vanished from the source, not deleted (on_vanished: delete): {}", "why").alias("reasons"),
        pl.lit("{}").alias("raw_json"),
        pl.lit("warning").alias("severity"),
    )


#: what verify says of a vanished row, by the feed's on_vanished: (as it should be, a mismatch)
VERIFY_OUTCOMES = {
    "keep": ("vanished", None),
    "deactivate": ("deactivated", "vanished, still active"),
    "delete": ("vanished, kept: referred to", "vanished, not deleted"),
}


def verify_outcomes(loader: Loader, entity: str, source: str, mode: str, all_keys: pl.Series) -> pl.DataFrame:
    """legacy_key, outcome, mismatch of each target row whose legacy row is gone from the source:
    as ``on_vanished`` leaves it (kept; inactive; deleted unless something refers to it), or a
    mismatch (still active, not deleted) when the last run did not do what the mapping says."""
    from crmkit.migrate.pipeline.delta import existing

    before = existing(loader, entity, source)
    gone = before.filter(~pl.col("legacy_key").is_in(all_keys.implode()))
    fine, wrong = VERIFY_OUTCOMES[mode]
    if mode == "keep" or gone.height == 0:
        ok = pl.lit(True)
    elif mode == "deactivate":
        ok = ~pl.col("active").fill_null(True)
    else:
        referred = blockers(loader, entity, source, gone.select("legacy_key", "target_id"))
        ok = pl.col("target_id").is_in(referred["target_id"].implode())
    return gone.select(
        "legacy_key",
        pl.when(ok).then(pl.lit(fine)).otherwise(pl.lit(wrong)).alias("outcome"),
        (~ok).alias("mismatch"),
    )
