"""The API's database: one SQLAlchemy engine per process, tuned for many short requests.

SQLite targets run in WAL mode with a busy timeout, and a write request takes the write
lock up front (``BEGIN IMMEDIATE``), so that reading the before-image and writing the
change happen in one transaction without deadlocking against another writer.
PostgreSQL connections get a statement timeout, so no request can hang a worker, and reads
run in autocommit mode (one round trip per statement); writes run in a READ COMMITTED
transaction and lock the row they change (``SELECT ... FOR UPDATE``).

The request handlers talk to the database through a :class:`Session` (:func:`session`):
statements are built with SQLAlchemy Core once; on PostgreSQL each is compiled to SQL once
and executed on the pooled psycopg connection directly (no SQLAlchemy execution machinery
per request, which costs more CPU than the round trip itself), and a write transaction runs
in psycopg's pipeline mode, so that ``BEGIN`` travels with the first statement and the
audit row with ``COMMIT``.  On SQLite a session is a SQLAlchemy connection.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql import ClauseElement

from crmkit.db.url import mask_url
from crmkit.errors import TargetError

#: longest a single SQL statement may run on PostgreSQL (ms); the API answers 503 beyond it
STATEMENT_TIMEOUT_MS = 10_000
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: every statement is bounded; plans are made for the actual values (a generic plan of a prepared
#: ``name ILIKE $1 ... ORDER BY id LIMIT n`` walks the whole table instead of using the index);
#: no JIT compilation (short OLTP statements: compiling costs 10-100x the query once a plan's
#: estimated cost passes jit_above_cost, as the pipeline report's nearly does)
PG_OPTIONS = f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c plan_cache_mode=force_custom_plan -c jit=off"
#: database connections per API process; the API runs at most this many requests at once
#: (see api.app), so that no connection is ever opened and closed per request
POOL_SIZE = int(os.environ.get("CRMKIT_API_POOL", "12"))


def make_engine(url: str, pool_size: int = POOL_SIZE) -> Engine:
    """An engine for ``url`` that has been shown to connect (else one TargetError line)."""
    try:
        engine = _create(url, pool_size)
    except TargetError:
        raise
    except Exception as exc:
        raise TargetError(f"target {mask_url(url)}: not a usable database URL ({str(exc).splitlines()[0]})") from None
    try:
        with engine.connect():
            pass
    except sa_exc.DBAPIError as exc:
        engine.dispose()
        orig = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise TargetError(f"cannot connect to target {mask_url(url)}: {orig}") from None
    return engine


def _create(url: str, pool_size: int) -> Engine:
    from sqlalchemy.engine import make_url

    dialect = make_url(url).get_backend_name()
    if dialect == "postgresql":
        # reads run in autocommit: one round trip per statement, no BEGIN/ROLLBACK around it
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=10,
            isolation_level="AUTOCOMMIT",
            connect_args={"options": PG_OPTIONS},
        )
    if dialect == "sqlite":
        engine = create_engine(
            url, pool_size=pool_size, max_overflow=0, pool_timeout=10, connect_args={"check_same_thread": False}
        )
        _tune_sqlite(engine)
        return engine
    raise TargetError(f"target {mask_url(url)}: only sqlite and postgresql targets are supported")


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event below emits BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Reads run one statement each in autocommit (a consistent snapshot per statement);
        # writes take the write lock before their first read.
        if conn.get_execution_options().get("crmkit_write", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for a read-only request."""
    with engine.connect() as conn:
        yield conn


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction: committed at the end, rolled back on any error."""
    options: dict[str, Any] = {"crmkit_write": True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "READ COMMITTED"
    with engine.connect().execution_options(**options) as conn:
        with conn.begin():
            yield conn


# --- sessions: what the request handlers use ---------------------------------------------


class Session:
    """One request's statements on one connection (and, for a write, in one transaction)."""

    def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    def run(self, stmt: Any, params: dict[str, Any]) -> None:
        """A statement whose result nobody reads (PostgreSQL: sent with the next round trip)."""
        raise NotImplementedError


class _SaSession(Session):
    """A session over a SQLAlchemy connection (SQLite, and statements the fast path cannot run)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(stmt, params).mappings()]

    def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        row = self.conn.execute(stmt, params).mappings().first()
        return None if row is None else dict(row)

    def run(self, stmt: Any, params: dict[str, Any]) -> None:
        self.conn.execute(stmt, params)


class _Compiled:
    """A statement compiled for PostgreSQL once, with the conversions SQLAlchemy would apply."""

    __slots__ = ("stmt", "sql", "fixed", "bind_procs", "types", "result_procs")

    def __init__(self, stmt: Any, sql: str, fixed: dict[str, Any], bind_procs: dict[str, Any], types: list[Any]):
        self.stmt, self.sql, self.fixed, self.bind_procs, self.types = stmt, sql, fixed, bind_procs, types
        self.result_procs: list[tuple[str, Any]] | None = None  # known after the first execution

    def values(self, params: dict[str, Any]) -> dict[str, Any]:
        values = {**self.fixed, **params} if self.fixed else params
        if self.bind_procs:
            values = {
                k: (self.bind_procs[k](v) if k in self.bind_procs and v is not None else v) for k, v in values.items()
            }
        return values

    def convert(self, dialect: Any, description: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.result_procs is None:
            procs = []
            if description and len(description) == len(self.types):
                for d, typ in zip(description, self.types):
                    proc = typ._cached_result_processor(dialect, d.type_code)
                    if proc is not None:
                        procs.append((d.name, proc))
            self.result_procs = procs
        if self.result_procs:
            for row in rows:
                for name, proc in self.result_procs:
                    row[name] = proc(row[name])
        return rows


#: (id of statement, column keys) -> compiled; the entry keeps its statement alive, so that
#: the id is not reused while the entry lives
_COMPILED: dict[tuple[int, frozenset[str] | None], _Compiled] = {}
_COMPILED_MAX = 4096


def _pg_compiled(dialect: Any, stmt: ClauseElement, params: dict[str, Any]) -> _Compiled:
    """``stmt`` as PostgreSQL SQL with %(name)s placeholders, compiled once per shape."""
    is_dml = getattr(stmt, "is_dml", False)
    keys = frozenset(params) if is_dml else None  # INSERT/UPDATE compile for the columns given
    key = (id(stmt), keys)
    hit = _COMPILED.get(key)
    if hit is None or hit.stmt is not stmt:
        compiled: Any = stmt.compile(dialect=dialect, column_keys=sorted(keys) if keys is not None else None)
        if compiled.insert_prefetch or compiled.update_prefetch:  # Python-side column defaults
            raise _NeedsSqlAlchemy
        fixed = {k: v for k, v in compiled.params.items() if v is not None and k not in params}
        bind_procs = {k: v for k, v in (compiled._bind_processors or {}).items() if v is not None}
        types = [col[3] for col in compiled._result_columns]
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        hit = _COMPILED[key] = _Compiled(stmt, compiled.string, fixed, bind_procs, types)
    return hit


class _NeedsSqlAlchemy(Exception):
    """A statement with Python-side defaults or type conversions: run it through SQLAlchemy."""


class _PgSession(Session):
    """A session over the pooled psycopg connection itself (autocommit; writes BEGIN and COMMIT)."""

    def __init__(self, engine: Engine, fairy: Any) -> None:
        from psycopg.rows import dict_row

        self.engine, self.fairy = engine, fairy
        self.conn = fairy.driver_connection
        self.cur = self.conn.cursor(row_factory=dict_row)
        self._sa: Connection | None = None
        self.pipeline: Any = None

    def _execute(self, stmt: Any, params: dict[str, Any]) -> _Compiled | None:
        try:
            c = _pg_compiled(self.engine.dialect, stmt, params)
        except _NeedsSqlAlchemy:
            return None
        self.cur.execute(c.sql, c.values(params))
        return c

    def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        c = self._execute(stmt, params)
        if c is None:
            return self._slow().rows(stmt, params)
        return c.convert(self.engine.dialect, self.cur.description, self.cur.fetchall())

    def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        c = self._execute(stmt, params)
        if c is None:
            return self._slow().first(stmt, params)
        row = self.cur.fetchone()
        return None if row is None else c.convert(self.engine.dialect, self.cur.description, [row])[0]

    def run(self, stmt: Any, params: dict[str, Any]) -> None:
        if self._execute(stmt, params) is None:
            self._slow().run(stmt, params)

    def _slow(self) -> _SaSession:
        """SQLAlchemy on the same psycopg connection (same transaction), for the rare statement that needs it."""
        if self.pipeline is not None:
            self.pipeline.sync()  # SQLAlchemy reads the result description right after executing
        if self._sa is None:
            # a Connection over the checked-out connection: not closed here (that would return it
            # to the pool); the session's context manager does that
            self._sa = Connection(self.engine, self.fairy)
        return _SaSession(self._sa)


def _pg_error(engine: Engine, fairy: Any, exc: BaseException) -> None:
    """Drop a connection that a failure left unusable (and make the pool re-check the others)."""
    conn = fairy.driver_connection
    if conn is None or conn.closed or getattr(conn, "broken", False):
        try:
            engine.pool._invalidate(fairy, exc)  # type: ignore[attr-defined]  # what SQLAlchemy does on a disconnect
        except Exception:
            fairy.invalidate(exc)  # type: ignore[arg-type]


@contextmanager
def session(engine: Engine, write: bool = False) -> Iterator[Session]:
    """A session for one request: autocommit reads, or one write transaction committed at the end."""
    if engine.dialect.name != "postgresql":
        with writing(engine) if write else reading(engine) as conn:
            yield _SaSession(conn)
        return
    fairy = engine.raw_connection()
    try:
        s = _PgSession(engine, fairy)
        if not write:
            yield s
            return
        conn = s.conn
        try:
            with conn.pipeline() as s.pipeline:
                conn.execute(b"BEGIN ISOLATION LEVEL READ COMMITTED")
                yield s
                conn.execute(b"COMMIT")
        except BaseException:
            if not conn.closed and conn.info.transaction_status != 0:  # not IDLE: roll back what is left
                try:
                    conn.execute(b"ROLLBACK")
                except Exception:
                    pass
            raise
    except BaseException as exc:
        import psycopg

        if isinstance(exc, psycopg.Error):
            _pg_error(engine, fairy, exc)
        raise
    finally:
        fairy.close()


# --- the app's database: sessions on the event loop (PostgreSQL) or in a thread (SQLite) -----
#
# On PostgreSQL a request's statements run on the event loop itself, over psycopg's async
# connections (a pool of POOL_SIZE per process): no hand-off to a worker thread and back,
# which on a busy machine costs as much CPU as the statement.  The request code is written
# once, as coroutines over an async session; on SQLite that session is synchronous inside
# (sqlite3 has no async interface), and the whole coroutine runs in a worker thread
# (:func:`run_to_end`), where it never suspends.


class AsyncSession:
    """A :class:`Session` with coroutine methods."""

    async def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    async def run(self, stmt: Any, params: dict[str, Any]) -> None:
        raise NotImplementedError


class Database:
    """The database of one app (one per process): ``session()`` is an async context manager."""

    #: True if sessions do real asynchronous I/O (run them on the event loop); False if they
    #: block (run the request's coroutine in a worker thread with :func:`run_to_end`)
    on_loop = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def session(self, write: bool = False) -> Any:
        return _sync_session(self.engine, write)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass


class _SyncAsyncSession(AsyncSession):
    """An async face on a synchronous session (never suspends)."""

    def __init__(self, inner: Session) -> None:
        self.inner = inner

    async def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.inner.rows(stmt, params)

    async def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        return self.inner.first(stmt, params)

    async def run(self, stmt: Any, params: dict[str, Any]) -> None:
        self.inner.run(stmt, params)


@asynccontextmanager
async def _sync_session(engine: Engine, write: bool) -> AsyncIterator[AsyncSession]:
    with session(engine, write) as s:
        yield _SyncAsyncSession(s)


def run_to_end(func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run a coroutine that never suspends (a synchronous :class:`Database`'s) to its end."""
    coro = func(*args)
    try:
        coro.send(None)  # type: ignore[attr-defined]
    except StopIteration as done:
        return done.value
    coro.close()  # type: ignore[attr-defined]
    raise RuntimeError(f"{func.__name__} waited for something: it cannot run outside an event loop")


class PoolTimeout(Exception):
    """No database connection became free in time (the API answers 503)."""


class _AsyncPgSession(AsyncSession):
    def __init__(self, dialect: Any, conn: Any) -> None:
        from psycopg.rows import dict_row

        self.dialect, self.conn = dialect, conn
        self.cur = conn.cursor(row_factory=dict_row)

    async def _execute(self, stmt: Any, params: dict[str, Any]) -> _Compiled:
        c = _pg_compiled(self.dialect, stmt, params)  # _NeedsSqlAlchemy: none of the API's statements
        await self.cur.execute(c.sql, c.values(params))
        return c

    async def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        c = await self._execute(stmt, params)
        return c.convert(self.dialect, self.cur.description, await self.cur.fetchall())

    async def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        c = await self._execute(stmt, params)
        row = await self.cur.fetchone()
        return None if row is None else c.convert(self.dialect, self.cur.description, [row])[0]

    async def run(self, stmt: Any, params: dict[str, Any]) -> None:
        await self._execute(stmt, params)


class PgDatabase(Database):
    """PostgreSQL over a pool of psycopg async connections (autocommit; created on demand)."""

    on_loop = True

    def __init__(self, engine: Engine, size: int = POOL_SIZE, timeout: float = 10.0) -> None:
        super().__init__(engine)
        args, kwargs = engine.dialect.create_connect_args(engine.url)  # what SQLAlchemy passes psycopg
        self._connect_args = (args, {**kwargs, "options": PG_OPTIONS, "autocommit": True})
        self.size, self.timeout = size, timeout
        self._idle: list[Any] = []
        self._sem: Any = None

    async def open(self) -> None:
        import asyncio

        self._sem = asyncio.Semaphore(self.size)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                await conn.close()
            except Exception:
                pass

    async def _acquire(self) -> Any:
        import asyncio

        import psycopg

        if self._sem.locked():
            try:
                await asyncio.wait_for(self._sem.acquire(), self.timeout)
            except TimeoutError:
                raise PoolTimeout(
                    f"no database connection free within {self.timeout:.0f} s ({self.size} per API process)"
                ) from None
        else:
            await self._sem.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and not conn.broken:
                    return conn
            args, kwargs = self._connect_args
            return await psycopg.AsyncConnection.connect(*args, **kwargs)
        except BaseException:
            self._sem.release()
            raise

    def _release(self, conn: Any) -> None:
        from psycopg.pq import TransactionStatus

        try:
            if not conn.closed and not conn.broken and conn.info.transaction_status == TransactionStatus.IDLE:
                self._idle.append(conn)
            else:
                conn.pgconn.finish()  # broken, or in a state nobody should inherit: drop it
        finally:
            self._sem.release()

    @asynccontextmanager
    async def session(self, write: bool = False) -> AsyncIterator[AsyncSession]:  # type: ignore[override]
        from psycopg.pq import TransactionStatus

        conn = await self._acquire()
        try:
            s = _AsyncPgSession(self.engine.dialect, conn)
            if not write:
                yield s
                return
            try:
                async with conn.pipeline():
                    await conn.execute(b"BEGIN ISOLATION LEVEL READ COMMITTED")
                    yield s
                    await conn.execute(b"COMMIT")
            except BaseException:
                if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                    try:
                        await conn.execute(b"ROLLBACK")
                    except Exception:
                        pass
                raise
        finally:
            self._release(conn)


def database(engine: Engine) -> Database:
    """The app's database over ``engine``: async psycopg on PostgreSQL, the engine itself elsewhere."""
    if engine.dialect.name == "postgresql" and os.environ.get("CRMKIT_API_PG_ASYNC", "1") != "0":
        return PgDatabase(engine)
    return Database(engine)
