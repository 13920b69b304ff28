"""Trigram indexes for the API's substring search on PostgreSQL (``crmkit serve index``).

A search is ``column ILIKE '%term%'``: without an index PostgreSQL reads every row of the
table.  ``pg_trgm`` GIN indexes answer it from the index.  They are optional and created on
request, not by a schema revision, because every index slows bulk loads (a migration of
millions of contacts) and ``CREATE EXTENSION`` needs a privilege not every target grants.
SQLite has no such index: there, search scans (fast enough for a sandbox).
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from crmkit.api.resources import RESOURCES
from crmkit.errors import TargetError


def index_name(table: str, column: str) -> str:
    return f"ix_{table}_{column}_trgm"


def search_columns() -> list[tuple[str, str]]:
    """(table, column) of every column the API's search reads."""
    return [(r.name, c) for r in RESOURCES.values() for c in r.search + r.phones]


def create(engine: Engine) -> list[str]:
    """Create the trigram indexes that are missing; returns the names created (none on SQLite)."""
    if engine.dialect.name != "postgresql":
        return []
    created = []
    with engine.connect() as conn:
        try:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            conn.commit()
        except Exception as exc:
            raise TargetError(
                f"cannot create the pg_trgm extension ({str(exc).strip().splitlines()[0]}): "
                "ask the database owner to run CREATE EXTENSION pg_trgm"
            ) from None
        existing = {
            r[0] for r in conn.execute(text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"))
        }
        for table, column in search_columns():
            name = index_name(table, column)
            if name in existing:
                continue
            conn.exec_driver_sql(f'CREATE INDEX "{name}" ON "{table}" USING gin ("{column}" gin_trgm_ops)')
            conn.commit()
            created.append(name)
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return created


def drop(engine: Engine) -> list[str]:
    """Drop the trigram indexes; returns the names dropped."""
    if engine.dialect.name != "postgresql":
        return []
    dropped = []
    with engine.connect() as conn:
        for table, column in search_columns():
            name = index_name(table, column)
            if conn.execute(text("SELECT 1 FROM pg_indexes WHERE indexname = :n"), {"n": name}).first():
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
                conn.commit()
                dropped.append(name)
    return dropped
