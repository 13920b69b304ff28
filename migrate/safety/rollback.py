"""Undo a run: remove the rows it inserted, give the rows it updated their before-images back.

A run can be rolled back only while no later run has touched its rows (written them, or
inserted rows that refer to them).  Otherwise the rollback refuses and names the rows and
runs, unless ``cascade`` rolls those later runs back first, newest first.  Everything happens
in one transaction.
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
from crmkit.migrate.safety.store import RunStore
from crmkit.schema.models import ENTITY_MODELS
from crmkit.schema.versions import ensure_schema


class RollbackRefused(CrmkitError):
    """A later run depends on the rows of the run to roll back."""


@dataclass
class RollbackResult:
    rolled_back: list[int]
    removed: dict[str, int] = field(default_factory=dict)  # entity -> rows deleted
    restored: dict[str, int] = field(default_factory=dict)  # entity -> rows given their before-image back


def rollback(target: str, run_id: int, *, cascade: bool = False, operator: str | None = None) -> RollbackResult:
    ensure_schema(target)
    loader = open_loader(target)
    shown = mask_url(target)
    who = operator_name(operator)
    try:
        order = _plan(loader, run_id, cascade)
        result = RollbackResult(rolled_back=order)
        loader.begin()
        try:
            for rid in order:
                _undo(loader, rid, result)
            loader.commit()
        except BaseException:
            loader.rollback()
            raise
        for rid in order:
            RunStore(loader).audit(
                action="rollback",
                operator=who,
                target=shown,
                outcome="rolled_back",
                run_id=rid,
                detail=f"removed {result.removed}, restored {result.restored}",
            )
        return result
    finally:
        loader.close()


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
    for entity in reversed(list(ENTITY_MODELS)):  # children first
        n = loader.scalar("SELECT count(*) FROM crmkit_id_map WHERE entity = ? AND run_id = ?", (entity, run_id))
        if n:
            loader.execute(
                f"DELETE FROM {q(entity)} WHERE id IN "
                f"(SELECT target_id FROM crmkit_id_map WHERE entity = ? AND run_id = ?)",
                (entity, run_id),
            )
            result.removed[entity] = result.removed.get(entity, 0) + int(n)
    loader.execute("DELETE FROM crmkit_id_map WHERE run_id = ?", (run_id,))
    for entity in ENTITY_MODELS:
        before = q("crmkit_before_" + entity)
        n = loader.scalar(f"SELECT count(*) FROM {before} WHERE before_run_id = ?", (run_id,))
        if not n:
            continue
        cols = [c.name for c in delta.entity_columns(entity) if c.name != "id"]
        _undelete(loader, entity, run_id, cols)
        sets = ", ".join(f"{q(c)} = b.{q(c)}" for c in cols)
        loader.execute(
            f"UPDATE {q(entity)} SET {sets} FROM {before} AS b "
            f"WHERE b.before_run_id = ? AND {q(entity)}.id = b.target_id",
            (run_id,),
        )
        loader.execute(f"DELETE FROM {before} WHERE before_run_id = ?", (run_id,))
        result.restored[entity] = result.restored.get(entity, 0) + int(n)
    RunStore(loader).set_status(run_id, "rolled_back")


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
