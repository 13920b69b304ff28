"""PostgreSQL sessions on psycopg connections from a psycopg_pool pool.

Statements are built with SQLAlchemy Core once, compiled to SQL once
(:mod:`crmkit.api.db.compiled`) and executed on the pooled psycopg connection directly (no
SQLAlchemy execution machinery per request, which costs more CPU than the round trip
itself).  Reads run in autocommit mode; a write transaction runs in psycopg's pipeline mode,
so that ``BEGIN`` travels with the first statement and the audit row with ``COMMIT``.

:class:`PgDatabase` runs the sessions on the event loop, over an ``AsyncConnectionPool``: no
hand-off to a worker thread and back, which on a busy machine costs as much CPU as the
statement.  :class:`SyncPgDatabase` (``CRMKIT_API_PG_ASYNC=0``) runs them in worker threads,
over a ``ConnectionPool``.  Both pools open their connections on demand, up to ``size``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect

from crmkit.api.db.compiled import compiled
from crmkit.api.db.engine import DEFAULT_POOL_SIZE, POOL_TIMEOUT_S, pg_connect_kwargs
from crmkit.api.db.sessions import AsyncSession, Database, Session

_BEGIN = b"BEGIN ISOLATION LEVEL READ COMMITTED"


class PoolTimeout(Exception):
    """No database connection became free in time (the API answers 503)."""


def _pool_args(engine: Engine, size: int, timeout: float) -> dict[str, Any]:
    kwargs = pg_connect_kwargs(engine)
    conninfo = kwargs.pop("conninfo", "")
    return {
        "conninfo": conninfo,
        "kwargs": kwargs,
        "min_size": 0,  # connections are opened when requests need them
        "max_size": size,
        "timeout": timeout,
        "open": False,
        "name": "crmkit-api",
    }


def _timed_out(size: int, timeout: float) -> PoolTimeout:
    return PoolTimeout(f"no database connection free within {timeout:.0f} s ({size} per API process)")


class PgSession(Session):
    """A session over a psycopg connection (autocommit; a write's BEGIN and COMMIT are the caller's)."""

    def __init__(self, dialect: Dialect, conn: Any) -> None:
        from psycopg.rows import dict_row

        self.dialect, self.conn = dialect, conn
        self.cur = conn.cursor(row_factory=dict_row)

    def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        c = compiled(self.dialect, stmt, params)
        self.cur.execute(c.sql, c.values(params))
        return c.convert(self.dialect, self.cur.description, self.cur.fetchall())

    def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        c = compiled(self.dialect, stmt, params)
        self.cur.execute(c.sql, c.values(params))
        row = self.cur.fetchone()
        return None if row is None else c.convert(self.dialect, self.cur.description, [row])[0]

    def run(self, stmt: Any, params: dict[str, Any]) -> None:
        c = compiled(self.dialect, stmt, params)
        self.cur.execute(c.sql, c.values(params))


@contextmanager
def pg_session(dialect: Dialect, conn: Any, write: bool = False) -> Iterator[Session]:
    """A session on ``conn``: autocommit reads, or one write transaction (pipelined) committed at the end."""
    s = PgSession(dialect, conn)
    if not write:
        yield s
        return
    try:
        with conn.pipeline():
            conn.execute(_BEGIN)
            yield s
            conn.execute(b"COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: Any) -> None:
    from psycopg.pq import TransactionStatus

    if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
        try:
            conn.execute(b"ROLLBACK")
        except Exception:
            pass  # a broken connection: the pool discards it


class SyncPgDatabase(Database):
    """PostgreSQL sessions in worker threads, over a psycopg ``ConnectionPool``."""

    def __init__(self, engine: Engine, size: int = DEFAULT_POOL_SIZE, timeout: float = POOL_TIMEOUT_S) -> None:
        from psycopg_pool import ConnectionPool

        super().__init__(engine)
        self.size, self.timeout = size, timeout
        self.pool: Any = ConnectionPool(**_pool_args(engine, size, timeout))

    async def open(self) -> None:
        self.pool.open()

    async def close(self) -> None:
        self.pool.close()

    def sync_session(self, write: bool = False) -> AbstractContextManager[Session]:
        return self._session(write)

    @contextmanager
    def _session(self, write: bool) -> Iterator[Session]:
        import psycopg_pool

        try:
            conn = self.pool.getconn()
        except psycopg_pool.PoolTimeout:
            raise _timed_out(self.size, self.timeout) from None
        try:
            with pg_session(self.engine.dialect, conn, write) as s:
                yield s
        finally:
            self.pool.putconn(conn)


class AsyncPgSession(AsyncSession):
    """:class:`PgSession` over a psycopg async connection."""

    def __init__(self, dialect: Dialect, conn: Any) -> None:
        from psycopg.rows import dict_row

        self.dialect, self.conn = dialect, conn
        self.cur = conn.cursor(row_factory=dict_row)

    async def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        c = compiled(self.dialect, stmt, params)
        await self.cur.execute(c.sql, c.values(params))
        return c.convert(self.dialect, self.cur.description, await self.cur.fetchall())

    async def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        c = compiled(self.dialect, stmt, params)
        await self.cur.execute(c.sql, c.values(params))
        row = await self.cur.fetchone()
        return None if row is None else c.convert(self.dialect, self.cur.description, [row])[0]

    async def run(self, stmt: Any, params: dict[str, Any]) -> None:
        c = compiled(self.dialect, stmt, params)
        await self.cur.execute(c.sql, c.values(params))


class PgDatabase(Database):
    """PostgreSQL sessions on the event loop, over a psycopg ``AsyncConnectionPool`` (made in :meth:`open`)."""

    on_loop = True

    def __init__(self, engine: Engine, size: int = DEFAULT_POOL_SIZE, timeout: float = POOL_TIMEOUT_S) -> None:
        super().__init__(engine)
        self.size, self.timeout = size, timeout
        self.pool: Any = None

    async def open(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(**_pool_args(self.engine, self.size, self.timeout))
        await self.pool.open()

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    @asynccontextmanager
    async def session(self, write: bool = False) -> AsyncIterator[AsyncSession]:
        import psycopg_pool

        try:
            conn = await self.pool.getconn()
        except psycopg_pool.PoolTimeout:
            raise _timed_out(self.size, self.timeout) from None
        try:
            s = AsyncPgSession(self.engine.dialect, conn)
            if not write:
                yield s
                return
            try:
                async with conn.pipeline():
                    await conn.execute(_BEGIN)
                    yield s
                    await conn.execute(b"COMMIT")
            except BaseException:
                await _rollback_async(conn)
                raise
        finally:
            await self.pool.putconn(conn)


async def _rollback_async(conn: Any) -> None:
    from psycopg.pq import TransactionStatus

    if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
        try:
            await conn.execute(b"ROLLBACK")
        except Exception:
            pass  # a broken connection: the pool discards it


def database(
    engine: Engine, pool_size: int = DEFAULT_POOL_SIZE, pg_async: bool = True, timeout: float = POOL_TIMEOUT_S
) -> Database:
    """The app's database over ``engine``: psycopg pools on PostgreSQL (async unless ``pg_async`` is
    False), the SQLAlchemy engine itself elsewhere."""
    if engine.dialect.name != "postgresql":
        return Database(engine)
    if pg_async:
        return PgDatabase(engine, pool_size, timeout)
    return SyncPgDatabase(engine, pool_size, timeout)
