"""The API's SQLAlchemy engine: one per process, tuned for many short requests.

SQLite targets run in WAL mode with a busy timeout, and a write request takes the write
lock up front (``BEGIN IMMEDIATE``), so that reading the before-image and writing the
change happen in one transaction without deadlocking against another writer.
PostgreSQL connections get a statement timeout, so no request can hang a worker, and reads
run in autocommit mode (one round trip per statement); writes run in a READ COMMITTED
transaction and lock the row they change (``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc

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
#: database connections per API process by default (``CRMKIT_API_POOL``); the API runs at most
#: this many requests at once (see api.app), so that no connection is opened and closed per request
DEFAULT_POOL_SIZE = 12
#: longest a request waits for a free connection (s); the API answers 503 beyond it
POOL_TIMEOUT_S = 10.0


def make_engine(url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Engine:
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
            pool_timeout=POOL_TIMEOUT_S,
            isolation_level="AUTOCOMMIT",
            connect_args={"options": PG_OPTIONS},
        )
    if dialect == "sqlite":
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=POOL_TIMEOUT_S,
            connect_args={"check_same_thread": False},
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


def pg_connect_kwargs(engine: Engine) -> dict[str, Any]:
    """What SQLAlchemy would pass psycopg for ``engine``, plus the API's session options and autocommit."""
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    if args:  # a conninfo string (psycopg's dialect passes keywords only)
        kwargs = {"conninfo": args[0], **kwargs}
    return {**kwargs, "options": PG_OPTIONS, "autocommit": True}


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
