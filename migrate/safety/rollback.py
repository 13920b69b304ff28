"""Undo a run: remove the rows it inserted, give the rows it updated their before-images back.

A run can be rolled back only while no later run has touched its rows (written them, or
inserted rows that refer to them).  Otherwise the rollback refuses and names the rows and
runs, unless ``cascade`` rolls those later runs back first, newest first.

Nor does a rollback discard work done since outside any run: a row whose values differ from
the image the run left (its ``image_hash``: an edit through the API or by hand) makes it
refuse, naming the rows, unless ``force`` (then the edits are undone with the run, and the
result lists them).  A row created since that refers to a row the rollback would delete (a
case opened in the CRM under a migrated account) always makes it refuse, naming both: crmkit
never deletes work it did not write.  Everything happens in one transaction; ``dry_run``
does it all and rolls the transaction back, to show what a rollback would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from crmkit.audit import operator_name
from crmkit.db.loader import Loader, open_loader
from crmkit.db.sql import q
from crmkit.db.url import mask_url
from crmkit.errors import CrmkitError
from crmkit.migrate.pipeline import delta
from crmkit.migrate.safety import image
from crmkit.migrate.safety.store import RunStore
from crmkit.schema.models import ENTITY_MODELS, Base
from crmkit.schema.versions import ensure_schema


class RollbackRefused(CrmkitError):
    """A later run, a later edit or a row created since depends on the rows of the run to roll back."""


#: rows named in a message (the rest are counted)
SHOWN = 5


@dataclass
class RollbackResult:
    rolled_back: list[int]
    removed: dict[str, int] = field(default_factory=dict)  # entity -> rows deleted
    restored: dict[str, int] = field(default_factory=dict)  # entity -> rows given their before-image back
    changed: list[str] = field(default_factory=list)  # rows edited since the run wrote them (undone: --force)
    dry_run: bool = False
    blockers: list[str] = field(default_factory=list)  # rows created since that refer to rows to delete


def rollback(
    target: str,
    run_id: int,
    *,
    cascade: bool = False,
    force: bool = False,
    dry_run: bool = False,
    operator: str | None = None,
) -> RollbackResult:
    ensure_schema(target)
    loader = open_loader(target)
    shown = mask_url(target)
    who = operator_name(operator)
    try:
        order = _plan(loader, run_id, cascade)
        names = dict(RunStore(loader).migration_runs().select("id", "mapping_name").iter_rows())
        result = RollbackResult(rolled_back=order, dry_run=dry_run)
        loader.begin()
        try:
            for rid in order:
                _undo(loader, rid, result)
            _refuse(run_id, result, force)
            if dry_run:
                loader.rollback()
            else:
                loader.commit()
        except BaseException:
            loader.rollback()
            raise
        if dry_run:
            return result
        for rid in order:
            RunStore(loader).audit(
                action="rollback",
                operator=who,
                target=shown,
                outcome="rolled_back",
                run_id=rid,
                mapping_name=names.get(rid),
                detail=f"removed {result.removed}, restored {result.restored}"
                + (f", discarded later edits of {len(result.changed)} rows (--force)" if result.changed else ""),
            )
        return result
    finally:
        loader.close()


def _listed(rows: list[str]) -> str:
    return ", ".join(rows[:SHOWN]) + (f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else "")


def _refuse(run_id: int, result: RollbackResult, force: bool) -> None:
    """Raise RollbackRefused for rows created since that refer to rows to delete, or (without
    ``force``) rows edited since the run wrote them."""
    if result.blockers:
        raise RollbackRefused(
            f"rollback of run {run_id} refused: {len(result.blockers)} rows created since refer to rows it would "
            f"delete ({_listed(result.blockers)}); delete them or point them elsewhere first"
        )
    if result.changed and not force:
        raise RollbackRefused(
            f"rollback of run {run_id} refused: {len(result.changed)} rows were changed since the run wrote them "
            f"({_listed(result.changed)}); rolling back would discard those changes. Check them, then use --force "
            f"to roll back anyway"
        )


def _plan(loader: Loader, run_id: int, cascade: bool) -> list[int]:
    """The runs to undo, newest first; refuses when later runs depend on ``run_id`` and not cascading."""
    runs = RunStore(loader).migration_runs()
    row = runs.filter(pl.col("id") == run_id)
    if row.height == 0:
        raise RollbackRefused(f"no migration run {run_id} in this target (see crmkit migrate history)")
    if row["status"][0] == "rolled_back":
        raise RollbackRefused(f"run {run_id} was already rolled back")
    if row["status"][0] == "running":
        raise RollbackRefused(f"run {run_id} is still running (or was interrupted: resume it first)")
    dependants = _dependants(loader, run_id)
    if not dependants:
        return [run_id]
    if not cascade:
        detail = "; ".join(
            f"run {rid}: {', '.join(keys[:5])}{' …' if len(keys) > 5 else ''}"
            for rid, keys in sorted(dependants.items())
        )
        raise RollbackRefused(
            f"later runs touched rows of run {run_id} ({detail}); roll them back first, or use --cascade"
        )
    order: list[int] = []
    for later in sorted(dependants, reverse=True):
        for rid in _plan(loader, later, cascade=True):
            if rid not in order:
                order.append(rid)
    order.append(run_id)
    return order


def _touched_ids(entity: str) -> str:
    """SQL (two parameters: entity, run id, run id) for the ids of rows a run inserted or updated."""
    return (
        "SELECT target_id FROM crmkit_id_map WHERE entity = ? AND run_id = ? "
        f"UNION SELECT target_id FROM {q('crmkit_before_' + entity)} WHERE before_run_id = ?"
    )


def _dependants(loader: Loader, run_id: int) -> dict[int, list[str]]:
    """Later runs that wrote rows of ``run_id``, or point at rows it inserted: run -> entity:key."""
    out: dict[int, list[str]] = {}
    for entity in ENTITY_MODELS:
        written = loader.query(
            f"SELECT run_id, source_name, legacy_key FROM {q(entity)} WHERE run_id <> ? "
            f"AND id IN ({_touched_ids(entity)})",
            (run_id, entity, run_id, run_id),
        )
        for rid, src, key in written.iter_rows():
            out.setdefault(int(rid), []).append(f"{entity} {src}:{key}")
    for child in ENTITY_MODELS:
        for col in delta.entity_columns(child):
            fk = next(iter(col.foreign_keys), None)
            if fk is None:
                continue
            parent = fk.column.table.name
            refs = loader.query(
                f"SELECT run_id, source_name, legacy_key FROM {q(child)} WHERE run_id <> ? AND {q(col.name)} IN "
                f"(SELECT target_id FROM crmkit_id_map WHERE entity = ? AND run_id = ?)",
                (run_id, parent, run_id),
            )
            for rid, src, key in refs.iter_rows():
                if rid is not None:
                    out.setdefault(int(rid), []).append(f"{child} {src}:{key}")
    return out


def _undo(loader: Loader, run_id: int, result: RollbackResult) -> None:
    """Undo one run inside the open transaction: note the rows changed since, give the updated
    rows their before-images back, then delete the inserted rows, children first (noting any
    row created since that refers to one of them, instead of deleting it)."""
    for entity in ENTITY_MODELS:
        rows = image.current(loader, entity, f"e.id IN ({_touched_ids(entity)})", (entity, run_id, run_id))
        edited = rows.filter(pl.col(image.IMAGE).is_not_null() & (pl.col(image.IMAGE) != pl.col("now")))
        result.changed += [
            f"{entity} id {i} ({s}:{k})" for i, s, k in edited.select("id", "source_name", "legacy_key").iter_rows()
        ]
    for entity in ENTITY_MODELS:
        _restore(loader, entity, run_id, result)
    for entity in reversed(list(ENTITY_MODELS)):  # children first
        n = loader.scalar("SELECT count(*) FROM crmkit_id_map WHERE entity = ? AND run_id = ?", (entity, run_id))
        if not n:
            continue
        inserted = "SELECT target_id FROM crmkit_id_map WHERE entity = ? AND run_id = ?"
        blockers = _referring(loader, entity, inserted, (entity, run_id))
        result.blockers += blockers
        if blockers:  # the rollback refuses (after looking at every entity): nothing deleted here
            continue
        loader.execute(f"DELETE FROM {q(entity)} WHERE id IN ({inserted})", (entity, run_id))
        result.removed[entity] = result.removed.get(entity, 0) + int(n)
    loader.execute("DELETE FROM crmkit_id_map WHERE run_id = ?", (run_id,))
    RunStore(loader).set_status(run_id, "rolled_back")


def _restore(loader: Loader, entity: str, run_id: int, result: RollbackResult) -> None:
    """Give the rows ``run_id`` updated their before-images back."""
    before = q("crmkit_before_" + entity)
    n = loader.scalar(f"SELECT count(*) FROM {before} WHERE before_run_id = ?", (run_id,))
    if not n:
        return
    cols = [c.name for c in delta.entity_columns(entity) if c.name != "id"]
    _undelete(loader, entity, run_id, cols)
    sets = ", ".join(f"{q(c)} = b.{q(c)}" for c in cols)
    loader.execute(
        f"UPDATE {q(entity)} SET {sets} FROM {before} AS b WHERE b.before_run_id = ? AND {q(entity)}.id = b.target_id",
        (run_id,),
    )
    loader.execute(f"DELETE FROM {before} WHERE before_run_id = ?", (run_id,))
    result.restored[entity] = result.restored.get(entity, 0) + int(n)


def _undelete(loader: Loader, entity: str, run_id: int, cols: list[str]) -> None:
    """Rows the run deleted (``on_vanished: delete``) back from their before-images, with their id-map entries."""
    before = q("crmkit_before_" + entity)
    gone = f"b.before_run_id = ? AND NOT EXISTS (SELECT 1 FROM {q(entity)} t WHERE t.id = b.target_id)"
    loader.execute(
        "INSERT INTO crmkit_id_map (entity, source_name, legacy_key, target_id, run_id) "
        f"SELECT ?, b.source_name, b.legacy_key, b.target_id, b.run_id FROM {before} b WHERE {gone}",
        (entity, run_id),
    )
    listed = ", ".join(q(c) for c in cols)
    loader.execute(
        f"INSERT INTO {q(entity)} (id, {listed}) SELECT b.target_id, {', '.join('b.' + q(c) for c in cols)} "
        f"FROM {before} b WHERE {gone}",
        (run_id,),
    )


def _referring(loader: Loader, entity: str, ids: str, params: tuple[object, ...]) -> list[str]:
    """Rows of any table that refer to the rows of ``entity`` whose ids the SQL ``ids`` selects."""
    out = []
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name != entity:
                continue
            key = next(iter(table.primary_key.columns)).name
            prov = "run_id" in table.columns
            refs = loader.query(
                f"SELECT t.{q(key)}, t.{q(fk.parent.name)}{', t.run_id' if prov else ''} FROM {q(table.name)} t "
                f"WHERE t.{q(fk.parent.name)} IN ({ids})",
                params,
            )
            for row in refs.iter_rows():
                made = f"run {row[2]}" if prov and row[2] is not None else "outside any run"
                out.append(f"{table.name} {key} {row[0]} ({made}) → {entity} id {row[1]}")
    return out
