"""The target side: merge rows already in the CRM, undo a merge, keep decisions and lineage.

A merge in the target (:func:`merge_in_target`), in one transaction: the golden row (the
survivor's row) takes the surviving values; every child row pointing at a merged row
(``opportunities.account_id``...) is re-pointed to it and the re-pointing recorded; every
legacy key of a merged row is re-pointed in ``crmkit_id_map``, so relations from any source
resolve to the survivor; the merged rows' values are kept in ``crmkit_merges`` and the
rows deleted; field lineage is written.  :func:`crmkit.dedupe.unmerge.unmerge` reverses
exactly that, and records "not a match" so no later run merges the records again.

:func:`record_merges` is the part a migration run calls when it merged before loading.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from crmkit.db.loader import Loader, open_loader
from crmkit.db.sql import q
from crmkit.dedupe.engine import DECISION_SCHEMA
from crmkit.dedupe.merge import MergePlan, merge_plan
from crmkit.dedupe.rules import DedupeError, Rules
from crmkit.dedupe.survive import KEY, SOURCE
from crmkit.schema.models import ENTITY_MODELS, table_of
from crmkit.schema.target import TargetField, entities

ID = "__id"
MAP = "_crmkit_merge_map"  # work tables, created and dropped inside one transaction
STAGE = "_crmkit_decisions_stage"


from crmkit.audit import now, operator_name  # noqa: E402  (one definition of who and when)


def value_fields(entity: str) -> list[TargetField]:
    if entity not in entities():
        raise DedupeError(f"unknown entity '{entity}' (entities: {', '.join(entities())})")
    return list(entities()[entity].fields.values())


def child_columns(entity: str) -> list[tuple[str, str]]:
    """(table, column) of every foreign key that points at ``entity``."""
    out = []
    for name, model in ENTITY_MODELS.items():
        for col in table_of(model).columns:
            if any(fk.column.table.name == entity for fk in col.foreign_keys):
                out.append((name, col.name))
    return out


def typed(frame: pl.DataFrame, fields: list[TargetField]) -> pl.DataFrame:
    """Values as the target types, whatever the driver returned (SQLite gives text dates, 0/1 booleans)."""
    exprs = []
    for f in fields:
        col, dtype = pl.col(f.name), frame.schema.get(f.name)
        if dtype is None:
            exprs.append(pl.lit(None, dtype=f.dtype).alias(f.name))
        elif dtype == pl.String and f.kind == "date":
            exprs.append(col.str.slice(0, 10).str.to_date(strict=False))
        elif dtype == pl.String and f.kind == "datetime":
            exprs.append(col.str.to_datetime(strict=False, time_unit="us"))
        elif f.kind == "boolean" and dtype != pl.Boolean:
            truth = col.cast(pl.String).str.to_lowercase().is_in(["1", "true", "t"])
            exprs.append(pl.when(col.is_null()).then(None).otherwise(truth).alias(f.name))
        else:
            exprs.append(col.cast(f.dtype, strict=False))
    return frame.with_columns(exprs)


def as_json(frame: pl.DataFrame, names: list[str]) -> pl.Series:
    """Each row's values as one JSON object of text (dates ISO): what an unmerge restores."""
    return frame.select(pl.struct([pl.col(n).cast(pl.String) for n in names]).struct.json_encode().alias("j"))["j"]


def from_json(values: pl.Series, fields: list[TargetField]) -> pl.DataFrame:
    dtype = pl.Struct({f.name: pl.String for f in fields})
    frame = pl.DataFrame({"j": values}).select(pl.col("j").str.json_decode(dtype)).unnest("j")
    return typed(frame, fields)


def load_entity(loader: Loader, entity: str) -> pl.DataFrame:
    """Every row of ``entity``: ``__id``, ``__source``, ``__key`` and its fields, typed."""
    fields = value_fields(entity)
    cols = ", ".join(q(f.name) for f in fields)
    frame = loader.query(f"SELECT id, source_name, legacy_key, {cols} FROM {q(entity)} ORDER BY id")
    if frame.height == 0:
        frame = pl.DataFrame(
            schema={
                "id": pl.Int64,
                "source_name": pl.String,
                "legacy_key": pl.String,
                **{f.name: f.dtype for f in fields},
            }
        )
    frame = typed(frame, fields)
    return frame.select(
        pl.col("id").cast(pl.Int64).alias(ID),
        pl.col("source_name").cast(pl.String).fill_null("crm").alias(SOURCE),
        pl.coalesce(
            pl.col("legacy_key").cast(pl.String), pl.concat_str([pl.lit("id:"), pl.col("id").cast(pl.String)])
        ).alias(KEY),
        *(pl.col(f.name) for f in fields),
    )


def target_decisions(loader: Loader, entity: str) -> pl.DataFrame:
    frame = loader.query(
        "SELECT left_source, left_key, right_source, right_key, decision FROM crmkit_dedupe_decisions WHERE entity = ?",
        (entity,),
    )
    return frame.cast(DECISION_SCHEMA) if frame.height else pl.DataFrame(schema=DECISION_SCHEMA)  # type: ignore[arg-type]


def _ordered_pairs(decisions: pl.DataFrame) -> pl.DataFrame:
    """Left sorts before right, so a pair has one spelling."""
    swap = pl.concat_str(["left_source", "left_key"], separator="\x1f") > pl.concat_str(
        ["right_source", "right_key"], separator="\x1f"
    )
    return decisions.select(
        *(
            pl.when(swap).then(pl.col(f"right_{x}")).otherwise(pl.col(f"left_{x}")).alias(f"left_{x}")
            for x in ("source", "key")
        ),
        *(
            pl.when(swap).then(pl.col(f"left_{x}")).otherwise(pl.col(f"right_{x}")).alias(f"right_{x}")
            for x in ("source", "key")
        ),
        "decision",
    ).unique(["left_source", "left_key", "right_source", "right_key"], keep="last", maintain_order=True)


def save_decisions(loader: Loader, entity: str, decisions: pl.DataFrame, who: str, origin: str) -> int:
    """Store decisions (replacing earlier ones on the same pairs); inside the caller's transaction."""
    d = _ordered_pairs(decisions)
    if d.height == 0:
        return 0
    loader.execute(f"DROP TABLE IF EXISTS {q(STAGE)}")
    loader.execute(
        f"CREATE TABLE {q(STAGE)} AS SELECT left_source, left_key, right_source, "
        f"right_key FROM crmkit_dedupe_decisions WHERE 1 = 0"
    )
    loader.append(STAGE, d.drop("decision"))
    loader.execute(
        f"DELETE FROM crmkit_dedupe_decisions WHERE entity = ? AND EXISTS (SELECT 1 FROM {q(STAGE)} s WHERE "
        "s.left_source = crmkit_dedupe_decisions.left_source AND s.left_key = crmkit_dedupe_decisions.left_key AND "
        "s.right_source = crmkit_dedupe_decisions.right_source AND s.right_key = crmkit_dedupe_decisions.right_key)",
        (entity,),
    )
    loader.execute(f"DROP TABLE {q(STAGE)}")
    loader.append(
        "crmkit_dedupe_decisions",
        d.with_columns(
            pl.lit(entity).alias("entity"),
            pl.lit(who).alias("decided_by"),
            pl.lit(now()).alias("decided_at"),
            pl.lit(origin[:500]).alias("origin"),
        ),
    )
    return d.height


def import_decisions(url: str, entity: str, decisions: pl.DataFrame, who: str | None, origin: str) -> int:
    """``crmkit dedupe decide``: decisions from review files into the target, honoured by later runs."""
    from crmkit.schema.versions import ensure_schema

    value_fields(entity)
    ensure_schema(url)
    loader = open_loader(url)
    try:
        loader.begin()
        n = save_decisions(loader, entity, decisions, operator_name(who), origin)
        loader.commit()
        return n
    except BaseException:
        loader.rollback()
        raise
    finally:
        loader.close()


# --- merging in the target ---------------------------------------------------------------


@dataclass
class MergeReport:
    entity: str
    rules: str
    rows: int = 0
    clusters: int = 0
    merged: int = 0
    review: int = 0
    relinked: dict[str, int] = field(default_factory=dict)  # "table.column" -> rows re-pointed
    dry_run: bool = False
    plan: MergePlan | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "entity": self.entity,
            "rules": self.rules,
            "rows": self.rows,
            "clusters": self.clusters,
            "merged": self.merged,
            "review": self.review,
            "relinked": self.relinked,
            "dry_run": self.dry_run,
        }


def merge_in_target(
    url: str,
    entity: str,
    rules: Rules,
    decisions: pl.DataFrame | None = None,
    who: str | None = None,
    dry_run: bool = False,
) -> MergeReport:
    """Deduplicate the rows of ``entity`` already in the target (see the module docstring)."""
    from crmkit.schema.versions import ensure_schema

    fields = value_fields(entity)
    ensure_schema(url)
    loader = open_loader(url)
    try:
        rows = load_entity(loader, entity)
        known = [d for d in (decisions, target_decisions(loader, entity)) if d is not None and d.height]
        plan = merge_plan(rows, rules, pl.concat(known) if known else None, [f.name for f in fields])
        report = MergeReport(
            entity,
            rules.name,
            rows.height,
            plan.result.stats.clusters,
            plan.merged_count,
            plan.result.stats.review,
            dry_run=dry_run,
            plan=plan,
        )
        if dry_run or plan.merged_count == 0:
            return report
        loader.begin()
        try:
            report.relinked = _apply(loader, entity, rows, plan, fields, rules.name, operator_name(who))
            loader.commit()
        except BaseException:
            loader.rollback()
            raise
        return report
    finally:
        loader.close()


def _ids(rows: pl.DataFrame, frame: pl.DataFrame, src: str, key: str, alias: str) -> pl.DataFrame:
    return frame.join(
        rows.select(pl.col(SOURCE).alias(src), pl.col(KEY).alias(key), pl.col(ID).alias(alias)),
        on=[src, key],
        how="left",
    )


def _apply(
    loader: Loader,
    entity: str,
    rows: pl.DataFrame,
    plan: MergePlan,
    fields: list[TargetField],
    rules_name: str,
    who: str,
) -> dict[str, int]:
    names = [f.name for f in fields]
    members = _ids(rows, plan.members, SOURCE, KEY, "own_id")
    members = _ids(rows, members, "survivor_source", "survivor_key", "survivor_id")
    members = members.join(rows.select(ID, *names), left_on="own_id", right_on=ID, how="left")
    merged_keys = plan.merged.select(SOURCE, KEY, "probability")
    members = members.join(merged_keys, on=[SOURCE, KEY], how="left")
    is_survivor = pl.col("own_id") == pl.col("survivor_id")
    merge_ids = loader.next_ids("crmkit_merges", members.height)
    stamp = now()
    merge_rows = members.with_columns(merge_ids.alias("id")).select(
        "id",
        pl.lit(entity).alias("entity"),
        pl.when(is_survivor).then(pl.lit("survivor")).otherwise(pl.lit("merged")).alias("role"),
        pl.col(SOURCE).alias("source_name"),
        pl.col(KEY).alias("legacy_key"),
        "survivor_id",
        pl.col("own_id").alias("original_id"),
        pl.col("probability").cast(pl.Float64),
        as_json(members, names).alias("values_json"),
        pl.lit(rules_name).alias("rules_name"),
        pl.lit(None, dtype=pl.Int64).alias("run_id"),
        pl.lit(who).alias("operator"),
        pl.lit(stamp).alias("merged_at"),
    )
    loader.append("crmkit_merges", merge_rows)
    mapping = merge_rows.filter(pl.col("role") == "merged").select(
        pl.col("original_id").alias("merged_id"), "survivor_id", pl.col("id").alias("merge_id")
    )
    loader.execute(f"DROP TABLE IF EXISTS {q(MAP)}")
    loader.execute(f"CREATE TABLE {q(MAP)} (merged_id INTEGER, survivor_id INTEGER, merge_id INTEGER)")
    loader.append(MAP, mapping)
    relinked = _relink(loader, entity)
    loader.execute(
        f"UPDATE crmkit_id_map SET target_id = m.survivor_id FROM {q(MAP)} AS m "
        f"WHERE crmkit_id_map.entity = ? AND crmkit_id_map.target_id = m.merged_id",
        (entity,),
    )
    golden = _ids(rows, plan.golden, SOURCE, KEY, "id").select(pl.col("id"), *names)
    loader.update(entity, typed(golden, fields))
    write_lineage(loader, entity, _ids(rows, plan.lineage, "survivor_source", "survivor_key", "target_id"), None)
    loader.execute(f"DELETE FROM {q(entity)} WHERE id IN (SELECT merged_id FROM {q(MAP)})")
    loader.execute(f"DROP TABLE {q(MAP)}")
    return relinked


def _relink(loader: Loader, entity: str) -> dict[str, int]:
    """Point every child row of a merged row at the golden row, recording which rows moved."""
    out = {}
    for table, column in child_columns(entity):
        before = loader.scalar("SELECT count(*) FROM crmkit_merge_relinks")
        loader.execute(
            f"INSERT INTO crmkit_merge_relinks (merge_id, table_name, column_name, row_id) "
            f"SELECT m.merge_id, ?, ?, t.id FROM {q(table)} t JOIN {q(MAP)} m ON t.{q(column)} = m.merged_id",
            (table, column),
        )
        moved = int(loader.scalar("SELECT count(*) FROM crmkit_merge_relinks") or 0) - int(before or 0)
        if moved:
            loader.execute(
                f"UPDATE {q(table)} SET {q(column)} = m.survivor_id FROM {q(MAP)} AS m "
                f"WHERE {q(table)}.{q(column)} = m.merged_id"
            )
            out[f"{table}.{column}"] = moved
    return out


def write_lineage(loader: Loader, entity: str, lineage: pl.DataFrame, run_id: int | None) -> None:
    """Replace the field lineage of the golden rows in ``lineage`` (target_id, field, source_name, legacy_key)."""
    if lineage.height == 0:
        return
    ids = lineage["target_id"].unique().cast(pl.Int64).to_list()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        loader.execute(
            f"DELETE FROM crmkit_field_lineage WHERE entity = ? AND target_id IN ({marks})", (entity, *chunk)
        )
    loader.append(
        "crmkit_field_lineage",
        lineage.select(
            pl.lit(entity).alias("entity"),
            pl.col("target_id").cast(pl.Int64),
            "field",
            "source_name",
            "legacy_key",
            pl.lit(run_id, dtype=pl.Int64).alias("run_id"),
        ),
    )


def active_merges(loader: Loader, entity: str, where: str, params: tuple[object, ...]) -> pl.DataFrame:
    """The merges of ``entity`` not undone that match ``where``, one row per merged or surviving record."""
    frame = loader.query(
        f"SELECT id, role, source_name, legacy_key, survivor_id, original_id, values_json FROM crmkit_merges "
        f"WHERE entity = ? AND undone_at IS NULL AND {where} ORDER BY id",
        (entity, *params),
    )
    if frame.height == 0:
        return pl.DataFrame(
            schema={
                "id": pl.Int64,
                "role": pl.String,
                "source_name": pl.String,
                "legacy_key": pl.String,
                "survivor_id": pl.Int64,
                "original_id": pl.Int64,
                "values_json": pl.String,
            }
        )
    return frame.with_columns(pl.col("id", "survivor_id", "original_id").cast(pl.Int64))


def record_merges(
    loader: Loader, entity: str, plan: MergePlan, survivor_ids: pl.DataFrame, run_id: int, rules_name: str, who: str
) -> None:
    """For a migration that merged before loading: merge lineage and field lineage, in its transaction.

    Idempotent across runs: members already recorded with the same golden row are skipped.
    ``survivor_ids`` has ``__source``, ``__key`` (of each golden row) and ``target_id`` (the row
    it was loaded as).  The merged records' own values are kept (``original_id`` NULL: they
    never had a row), so ``crmkit dedupe unmerge`` can create their rows.
    """
    ids = survivor_ids.select(
        pl.col(SOURCE).alias("survivor_source"),
        pl.col(KEY).alias("survivor_key"),
        pl.col("target_id").alias("survivor_id"),
    )
    rec = plan.result.records
    names = [c for c in plan.golden.columns if not c.startswith("__")]
    members = plan.members.join(ids, on=["survivor_source", "survivor_key"], how="inner")
    members = members.join(rec.select(SOURCE, KEY, *names), on=[SOURCE, KEY], how="left").join(
        plan.merged.select(SOURCE, KEY, "probability"), on=[SOURCE, KEY], how="left"
    )
    is_survivor = (pl.col(SOURCE) == pl.col("survivor_source")) & (pl.col(KEY) == pl.col("survivor_key"))
    known = active_merges(loader, entity, "1 = 1", ()).select(
        pl.col("source_name").alias(SOURCE), pl.col("legacy_key").alias(KEY), "survivor_id"
    )
    members = members.join(known, on=[SOURCE, KEY, "survivor_id"], how="anti")  # a later run: only what is new
    if members.height == 0:
        return
    rows = members.with_columns(loader.next_ids("crmkit_merges", members.height).alias("id")).select(
        "id",
        pl.lit(entity).alias("entity"),
        pl.when(is_survivor).then(pl.lit("survivor")).otherwise(pl.lit("merged")).alias("role"),
        pl.col(SOURCE).alias("source_name"),
        pl.col(KEY).alias("legacy_key"),
        "survivor_id",
        pl.when(is_survivor).then(pl.col("survivor_id")).otherwise(None).alias("original_id"),
        pl.col("probability").cast(pl.Float64),
        as_json(members, names).alias("values_json"),
        pl.lit(rules_name).alias("rules_name"),
        pl.lit(run_id).alias("run_id"),
        pl.lit(who).alias("operator"),
        pl.lit(now()).alias("merged_at"),
    )
    loader.append("crmkit_merges", rows)
    lineage = plan.lineage.join(ids, on=["survivor_source", "survivor_key"], how="inner")
    write_lineage(loader, entity, lineage.rename({"survivor_id": "target_id"}), run_id)
