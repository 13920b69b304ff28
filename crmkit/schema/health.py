"""What a target lacks of the models' schema: tables, primary keys, foreign keys, indexes.

A bulk load drops a table's secondary indexes (on PostgreSQL also its foreign keys, and the
id map's primary key) and builds them at its end; a run killed or cut off in between leaves
them missing, while the schema's revision still says head.  :func:`missing` compares the
live schema with the models, so that ``crmkit db current`` says so and ``crmkit db repair``
knows what to restore.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection, Engine


def missing_tables(conn: Connection) -> list[str]:
    """The models' tables the target does not have."""
    from sqlalchemy import inspect

    from crmkit.schema.models import Base

    present = set(inspect(conn).get_table_names())
    return sorted(set(Base.metadata.tables) - present)


def missing(engine: Engine) -> list[str]:
    """Each table, primary key, foreign key (or, on PostgreSQL, unvalidated one) and index of
    the models that the target lacks, as ``table: what name``."""
    from sqlalchemy import inspect

    from crmkit.schema.models import Base

    with engine.connect() as conn:
        absent = missing_tables(conn)
        out = [f"{name}: table" for name in absent]
        names = sorted(set(Base.metadata.tables) - set(absent))
        insp = inspect(conn)
        pks = _by_table(insp.get_multi_pk_constraint(filter_names=names))
        fks = _by_table(insp.get_multi_foreign_keys(filter_names=names))
        idx = _by_table(insp.get_multi_indexes(filter_names=names))
        invalid = _unvalidated(conn) if engine.dialect.name == "postgresql" else set()
    for name in names:
        table = Base.metadata.tables[name]
        if table.primary_key.columns and not (pks.get(name) or {}).get("constrained_columns"):
            out.append(f"{name}: primary key {table.primary_key.name}")
        have = {(tuple(fk["constrained_columns"]), fk["referred_table"]) for fk in fks.get(name) or []}
        for fk in sorted(table.foreign_key_constraints, key=lambda c: str(c.name)):
            if (tuple(c.parent.name for c in fk.elements), fk.referred_table.name) not in have:
                out.append(f"{name}: foreign key {fk.name}")
            elif (name, str(fk.name)) in invalid:
                out.append(f"{name}: foreign key {fk.name} (not validated)")
        indexes = {i["name"] for i in idx.get(name) or []}
        out += [
            f"{name}: index {i.name}" for i in sorted(table.indexes, key=lambda i: str(i.name)) if i.name not in indexes
        ]
    return out


def _by_table(found: dict[tuple[str | None, str], Any]) -> dict[str, Any]:
    return {table: value for (_schema, table), value in found.items()}


def _unvalidated(conn: Connection) -> set[tuple[str, str]]:
    from sqlalchemy import text

    rows = conn.execute(
        text(
            "SELECT c.relname, k.conname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
            "WHERE k.contype = 'f' AND NOT k.convalidated AND c.relnamespace = current_schema()::regnamespace"
        )
    )
    return {(str(r[0]), str(r[1])) for r in rows}
