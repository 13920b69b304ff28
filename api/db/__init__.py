"""The API's database: one SQLAlchemy engine per process, and the sessions request handlers use.

* :mod:`.engine`: the engine (SQLite tuning, PostgreSQL session options), ``reading``/``writing``;
* :mod:`.sessions`: the session interfaces and the SQLAlchemy :class:`Database` (SQLite);
* :mod:`.pg`: PostgreSQL over psycopg_pool pools, statements run on psycopg directly;
* :mod:`.compiled`: those statements compiled once (SQLAlchemy's public interface only).
"""

from crmkit.api.db.engine import (
    DEFAULT_POOL_SIZE,
    PG_OPTIONS,
    POOL_TIMEOUT_S,
    STATEMENT_TIMEOUT_MS,
    make_engine,
    reading,
    writing,
)
from crmkit.api.db.pg import PgDatabase, PoolTimeout, SyncPgDatabase, database
from crmkit.api.db.sessions import AsyncSession, Database, Session, run_to_end

__all__ = [
    "DEFAULT_POOL_SIZE",
    "PG_OPTIONS",
    "POOL_TIMEOUT_S",
    "STATEMENT_TIMEOUT_MS",
    "AsyncSession",
    "Database",
    "PgDatabase",
    "PoolTimeout",
    "Session",
    "SyncPgDatabase",
    "database",
    "make_engine",
    "reading",
    "run_to_end",
    "writing",
]
