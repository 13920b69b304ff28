"""What the request handlers use: a session per request, and the app's :class:`Database`.

The request code is written once, as coroutines over an :class:`AsyncSession`.  On
PostgreSQL (:mod:`crmkit.api.db.pg`) the session does asynchronous I/O on the event loop;
here, over a SQLAlchemy engine (SQLite), it is synchronous inside (sqlite3 has no async
interface), and the whole coroutine runs in a worker thread (:func:`run_to_end`), where it
never suspends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

from crmkit.api.db.engine import reading, writing


class Session:
    """One request's statements on one connection (and, for a write, in one transaction)."""

    def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    def run(self, stmt: Any, params: dict[str, Any]) -> None:
        """A statement whose result nobody reads (PostgreSQL: sent with the next round trip)."""
        raise NotImplementedError


class AsyncSession:
    """A :class:`Session` with coroutine methods."""

    async def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    async def run(self, stmt: Any, params: dict[str, Any]) -> None:
        raise NotImplementedError


class SaSession(Session):
    """A session over a SQLAlchemy connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(stmt, params).mappings()]

    def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        row = self.conn.execute(stmt, params).mappings().first()
        return None if row is None else dict(row)

    def run(self, stmt: Any, params: dict[str, Any]) -> None:
        self.conn.execute(stmt, params)


@contextmanager
def sa_session(engine: Engine, write: bool = False) -> Iterator[Session]:
    """A session for one request: autocommit reads, or one write transaction committed at the end."""
    with writing(engine) if write else reading(engine) as conn:
        yield SaSession(conn)


class SyncAsyncSession(AsyncSession):
    """An async face on a synchronous session (never suspends)."""

    def __init__(self, inner: Session) -> None:
        self.inner = inner

    async def rows(self, stmt: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.inner.rows(stmt, params)

    async def first(self, stmt: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        return self.inner.first(stmt, params)

    async def run(self, stmt: Any, params: dict[str, Any]) -> None:
        self.inner.run(stmt, params)


class Database:
    """The database of one app (one per process): ``session()`` is an async context manager.

    This one runs sessions over the SQLAlchemy engine (SQLite; any target outside the API).
    """

    #: True if sessions do real asynchronous I/O (run them on the event loop); False if they
    #: block (run the request's coroutine in a worker thread with :func:`run_to_end`)
    on_loop = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def session(self, write: bool = False) -> Any:
        return self._async_face(self.sync_session(write))

    def sync_session(self, write: bool = False) -> AbstractContextManager[Session]:
        """The synchronous session under :meth:`session` (for sessions that block)."""
        return sa_session(self.engine, write)

    @staticmethod
    @asynccontextmanager
    async def _async_face(inner: AbstractContextManager[Session]) -> AsyncIterator[AsyncSession]:
        with inner as s:
            yield SyncAsyncSession(s)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass


def run_to_end(func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run a coroutine that never suspends (a synchronous :class:`Database`'s) to its end."""
    coro = func(*args)
    try:
        coro.send(None)  # type: ignore[attr-defined]
    except StopIteration as done:
        return done.value
    coro.close()  # type: ignore[attr-defined]
    raise RuntimeError(f"{func.__name__} waited for something: it cannot run outside an event loop")
