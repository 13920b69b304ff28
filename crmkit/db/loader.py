"""The connection a run writes through (:class:`Loader`), and how one is opened for a target URL."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import Any

import polars as pl
from sqlalchemy.engine import make_url

from crmkit.db.sql import first_line, q
from crmkit.db.url import TARGET_DIALECTS, dialect_of, mask_url, unsupported_target
from crmkit.errors import TargetError


class Loader:
    """The connection a run writes through.  Subclasses implement the bulk paths."""

    dialect = ""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        raise NotImplementedError

    def append(self, table: str, frame: pl.DataFrame, temporary: bool = False) -> None:
        raise NotImplementedError

    def next_ids(self, table: str, n: int) -> pl.Series:
        raise NotImplementedError

    def terminate_backend(self) -> None:
        """Only PostgreSQL has a server side to cut the connection from."""

    def companion(self) -> Loader | None:
        """A second connection to the same target for work that can run beside this one's
        (see :class:`Background`); None where the target takes one writer at a time (SQLite)."""
        return None

    begin_sql = "BEGIN"

    def bulk_mode(self, on: bool) -> None:
        """Around a bulk insert: whatever makes many committed batches cheaper (SQLite: see there)."""

    def begin(self) -> None:
        """Start a transaction (connections run in autocommit mode between transactions)."""
        self.execute(self.begin_sql)

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    conn: Any

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        frame = self.query(sql, params)
        return frame.item(0, 0) if frame.height else None

    def _dialect(self) -> Any:
        from sqlalchemy.dialects import postgresql, sqlite

        return sqlite.dialect() if self.dialect == "sqlite" else postgresql.dialect()

    def secondary_indexes(self, table: str) -> list[Any]:
        from crmkit.schema.models import Base

        return sorted(Base.metadata.tables[table].indexes, key=lambda i: str(i.name))

    def drop_indexes(self, table: str) -> None:
        """Drop ``table``'s secondary indexes: a bulk insert then builds them once, sorted, at the end."""
        for index in self.secondary_indexes(table):
            self.execute(f"DROP INDEX IF EXISTS {q(str(index.name))}")

    def create_indexes(self, table: str) -> None:
        """(Re)create ``table``'s secondary indexes where missing (also after a crash mid-load)."""
        from sqlalchemy.schema import CreateIndex

        for index in self.secondary_indexes(table):
            self.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=self._dialect())))

    def stage(self, table: str, frame: pl.DataFrame) -> str:
        """A temporary table shaped like ``table``'s columns in ``frame``, holding ``frame``."""
        stage = f"_crmkit_stage_{table}"
        self.execute(f"DROP TABLE IF EXISTS {q(stage)}")
        self.execute(
            f"CREATE TEMPORARY TABLE {q(stage)} AS SELECT {', '.join(q(c) for c in frame.columns)} "
            f"FROM {q(table)} WHERE 1 = 0"
        )
        self.append(stage, frame, temporary=True)
        return stage

    def update_from(self, table: str, stage: str, columns: list[str]) -> None:
        """Set ``columns`` of ``table`` from the staged rows with the same ``id``."""
        sets = ", ".join(f"{q(c)} = s.{q(c)}" for c in columns if c != "id")
        self.execute(f"UPDATE {q(table)} SET {sets} FROM {q(stage)} AS s WHERE {q(table)}.id = s.id")

    def update(self, table: str, frame: pl.DataFrame) -> None:
        """Set the frame's columns on the rows with its ``id``s."""
        if frame.height == 0:
            return
        stage = self.stage(table, frame)
        self.update_from(table, stage, frame.columns)
        self.execute(f"DROP TABLE {q(stage)}")


# the module a target dialect's driver is imported from (see :func:`preload_driver`)
DRIVERS = {"sqlite": "adbc_driver_manager", "postgresql": "psycopg"}


def preload_driver(url: str) -> threading.Thread:
    """Start importing the target's driver on a thread; join it before :func:`open_loader`.

    psycopg takes a tenth of a second or more to import, which a run spends reading and shaping
    its sources anyway, mostly in polars, without the GIL.  A failed import is left for
    :func:`open_loader` to report."""
    module = DRIVERS.get(dialect_of(url) or "")

    def load() -> None:
        if module is not None:
            try:
                importlib.import_module(module)
                if module == "psycopg":  # and the bulk driver's library (a bulk load's, 40 ms)
                    import ctypes

                    import adbc_driver_postgresql

                    ctypes.CDLL(adbc_driver_postgresql._driver_path())
            except Exception:
                pass

    thread = threading.Thread(target=load, name="crmkit-preload-driver", daemon=True)
    thread.start()
    return thread


def open_loader(url: str) -> Loader:
    """The loader for a target URL; a connection problem is one TargetError line."""
    try:
        parsed = make_url(url)
    except Exception:
        raise TargetError(f"not a database URL: {mask_url(url)} (e.g. sqlite:///crm.db)") from None
    backend = parsed.get_backend_name()
    if backend not in TARGET_DIALECTS:
        raise TargetError(unsupported_target(url))
    from crmkit.db.postgres import PostgresLoader
    from crmkit.db.sqlite import SqliteLoader

    try:
        if backend == "sqlite":
            return SqliteLoader(parsed.database or ":memory:")
        return PostgresLoader.from_url(parsed)
    except Exception as exc:
        raise TargetError(f"cannot connect to target {mask_url(url)}: {first_line(exc)}") from None
