"""Undo a merge in the target: the merged records become their own rows again.

:func:`unmerge` reverses what :func:`crmkit.dedupe.store.merge_in_target` (or a migration
run's merge) did, in one transaction: each merged record is restored from the values kept
in ``crmkit_merges`` (under its own id when still free), its legacy keys and the child rows
it had are pointed back at it, the golden row gets back the values the removed records gave
it, and "not a match" is recorded so no later run merges the records again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from crmkit.audit import now, operator_name
from crmkit.db.loader import Loader, open_loader
from crmkit.db.sql import q
from crmkit.dedupe.engine import DECISION_SCHEMA
from crmkit.dedupe.store import active_merges, child_columns, from_json, save_decisions, value_fields
from crmkit.errors import TargetError
from crmkit.schema.target import TargetField


@dataclass
class UnmergeReport:
    entity: str
    golden_id: int
    restored: list[dict[str, object]] = field(default_factory=list)  # source, key, id
    relinked: int = 0
    golden_restored: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "entity": self.entity,
            "golden_id": self.golden_id,
            "restored": self.restored,
            "relinked": self.relinked,
            "golden_restored": self.golden_restored,
        }


def unmerge(
    url: str, entity: str, golden_id: int | None = None, key: tuple[str, str] | None = None, who: str | None = None
) -> UnmergeReport:
    """Undo a merge: every merged record of golden row ``golden_id`` (or just the one record ``key``,
    as (source, legacy key)) becomes its own row again, with its legacy keys and child rows."""
    from crmkit.schema.versions import ensure_schema

    fields = value_fields(entity)
    ensure_schema(url)
    loader = open_loader(url)
    try:
        targets, golden_id = _unmerge_targets(loader, entity, golden_id, key)
        loader.begin()
        try:
            report = _undo(loader, entity, golden_id, targets, fields, whole=key is None, who=operator_name(who))
            loader.commit()
        except BaseException:
            loader.rollback()
            raise
        return report
    finally:
        loader.close()


def _unmerge_targets(
    loader: Loader, entity: str, golden_id: int | None, key: tuple[str, str] | None
) -> tuple[pl.DataFrame, int]:
    if key is not None:
        found = active_merges(loader, entity, "source_name = ? AND legacy_key = ? AND role = 'merged'", key)
        if found.height == 0:
            raise TargetError(
                f"{entity}: {key[0]}:{key[1]} is not merged into another row "
                f"(see crmkit_merges; give --golden ID to undo a whole merge)"
            )
        return found, int(found["survivor_id"][0])
    assert golden_id is not None
    found = active_merges(loader, entity, "survivor_id = ? AND role = 'merged'", (golden_id,))
    if found.height == 0:
        raise TargetError(
            f"{entity}: row {golden_id} is not a golden row of an active merge (nothing to unmerge; see crmkit_merges)"
        )
    return found, golden_id


def _undo(
    loader: Loader, entity: str, golden_id: int, targets: pl.DataFrame, fields: list[TargetField], whole: bool, who: str
) -> UnmergeReport:
    report = UnmergeReport(entity, golden_id)
    stamp = now()
    taken = (
        set(loader.query(f"SELECT id FROM {q(entity)}")["id"].cast(pl.Int64).to_list())
        if targets["original_id"].is_not_null().any()
        else set()
    )
    fresh = iter(loader.next_ids(entity, targets.height).to_list())
    new_ids = [int(o) if o is not None and o not in taken else next(fresh) for o in targets["original_id"].to_list()]
    values = from_json(targets["values_json"], fields).with_columns(
        pl.col(f.name).fill_null(pl.lit(f.default, dtype=f.dtype)) for f in fields if f.default is not None
    )
    restored = values.with_columns(
        pl.Series("id", new_ids, dtype=pl.Int64), targets["source_name"], targets["legacy_key"]
    )
    loader.append(entity, restored.select("id", "source_name", "legacy_key", *(f.name for f in fields)))
    for row, new_id in zip(targets.iter_rows(named=True), new_ids):
        loader.execute(
            "UPDATE crmkit_id_map SET target_id = ? WHERE entity = ? AND source_name = ? AND legacy_key = ?",
            (new_id, entity, row["source_name"], row["legacy_key"]),
        )
        report.relinked += _relink_back(loader, entity, int(row["id"]), golden_id, new_id)
        loader.execute("UPDATE crmkit_merges SET undone_at = ? WHERE id = ?", (stamp, row["id"]))
        report.restored.append({"source": row["source_name"], "key": row["legacy_key"], "id": new_id})
    _restore_golden(loader, entity, golden_id, targets, fields, whole, stamp)
    report.golden_restored = whole
    _never_again(loader, entity, golden_id, targets, who)
    return report


def _relink_back(loader: Loader, entity: str, merge_id: int, golden_id: int, new_id: int) -> int:
    moved = 0
    for table, column in child_columns(entity):
        sub = "SELECT row_id FROM crmkit_merge_relinks WHERE merge_id = ? AND table_name = ? AND column_name = ?"
        n = loader.scalar(
            f"SELECT count(*) FROM {q(table)} WHERE {q(column)} = ? AND id IN ({sub})",
            (golden_id, merge_id, table, column),
        )
        if n:
            loader.execute(
                f"UPDATE {q(table)} SET {q(column)} = ? WHERE {q(column)} = ? AND id IN ({sub})",
                (new_id, golden_id, merge_id, table, column),
            )
            moved += int(n)
    return moved


def _restore_golden(
    loader: Loader,
    entity: str,
    golden_id: int,
    targets: pl.DataFrame,
    fields: list[TargetField],
    whole: bool,
    stamp: dt.datetime,
) -> None:
    """The golden row gets back its own record's values: all of them, or those the removed records gave it."""
    own = active_merges(loader, entity, "survivor_id = ? AND role = 'survivor'", (golden_id,))
    if own.height == 0:
        return
    values = from_json(own["values_json"].head(1), fields).with_columns(pl.lit(golden_id, dtype=pl.Int64).alias("id"))
    if whole:
        loader.update(entity, values.select("id", *(f.name for f in fields)))
        loader.execute("DELETE FROM crmkit_field_lineage WHERE entity = ? AND target_id = ?", (entity, golden_id))
        loader.execute("UPDATE crmkit_merges SET undone_at = ? WHERE id = ?", (stamp, int(own["id"][0])))
        return
    lineage = loader.query(
        "SELECT field, source_name, legacy_key FROM crmkit_field_lineage WHERE entity = ? AND target_id = ?",
        (entity, golden_id),
    )
    gone = {(r["source_name"], r["legacy_key"]) for r in targets.iter_rows(named=True)}
    back = [r["field"] for r in lineage.iter_rows(named=True) if (r["source_name"], r["legacy_key"]) in gone]
    if back:
        loader.update(entity, values.select("id", *back))
        marks = ", ".join("?" for _ in back)
        loader.execute(
            f"UPDATE crmkit_field_lineage SET source_name = ?, legacy_key = ? WHERE entity = ? "
            f"AND target_id = ? AND field IN ({marks})",
            (own["source_name"][0], own["legacy_key"][0], entity, golden_id, *back),
        )


def _never_again(loader: Loader, entity: str, golden_id: int, targets: pl.DataFrame, who: str) -> None:
    """'not a match' between each restored record and the records it was merged with."""
    group = loader.query(
        "SELECT source_name, legacy_key FROM crmkit_merges WHERE entity = ? AND survivor_id = ?", (entity, golden_id)
    )
    pairs = []
    for t in targets.iter_rows(named=True):
        for g in group.iter_rows(named=True):
            if (g["source_name"], g["legacy_key"]) != (t["source_name"], t["legacy_key"]):
                pairs.append((t["source_name"], t["legacy_key"], g["source_name"], g["legacy_key"], "not_a_match"))
    if pairs:
        save_decisions(loader, entity, pl.DataFrame(pairs, schema=list(DECISION_SCHEMA), orient="row"), who, "unmerge")
