"""ADBC connections through the driver manager itself: SQLite's driver, and PostgreSQL's for bulk writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl


class Adbc:
    """One connection through ADBC's driver manager, in autocommit mode (a transaction is an
    explicit ``BEGIN``): SQLite's driver, or PostgreSQL's for bulk writes (see
    :meth:`PostgresLoader.bulk_mode`).

    ``adbc_driver_manager.dbapi`` would do, but it imports ``pyarrow.dataset``, and that
    imports pandas: 0.6-0.9 s of every ``crmkit migrate run`` into SQLite, for nothing this
    uses.  Statements here bind and return Arrow data through the PyCapsule interface,
    which polars speaks on its own.  Errors are the driver manager's (``adbc_driver_manager.Error``).
    SQL takes the driver's own placeholders (SQLite ``?``, PostgreSQL ``$1``).
    """

    def __init__(self, driver: str, uri: str, database: Any = None):
        """A connection of a new database (driver and URI), or of ``database``, a shared
        ``AdbcDatabase`` that the caller closes."""
        import adbc_driver_manager as adbc

        self._adbc = adbc
        self._db = adbc.AdbcDatabase(driver=driver, uri=uri) if database is None else None
        try:
            self._conn = adbc.AdbcConnection(database if self._db is None else self._db)
        except BaseException:
            if self._db is not None:
                self._db.close()
            raise

    @classmethod
    def of(cls, database: Any) -> Adbc:
        """A new connection of a shared ``AdbcDatabase``."""
        return cls("", "", database=database)

    @classmethod
    def sqlite(cls, path: str) -> Adbc:
        import adbc_driver_sqlite

        return cls(adbc_driver_sqlite._driver_path(), path)

    def _statement(self, sql: str | None, params: Sequence[Any]) -> Any:
        stmt = self._adbc.AdbcStatement(self._conn)
        if sql is not None:
            stmt.set_sql_query(sql)
        if params:
            stmt.bind_stream(_params_frame(params).__arrow_c_stream__())
        return stmt

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        stmt = self._statement(sql, params)
        try:
            stmt.execute_update()
        finally:
            stmt.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        stmt = self._statement(sql, params)
        try:
            stream, _ = stmt.execute_query()
            return pl.DataFrame(stream)
        finally:
            stmt.close()

    def ingest(self, table: str, frame: pl.DataFrame, temporary: bool = False) -> None:
        """Append ``frame``'s rows to the existing ``table`` (ADBC bulk ingestion)."""
        adbc = self._adbc
        stmt = adbc.AdbcStatement(self._conn)
        try:
            options = {adbc.INGEST_OPTION_TARGET_TABLE: table, adbc.INGEST_OPTION_MODE: adbc.INGEST_OPTION_MODE_APPEND}
            if temporary:
                options["adbc.ingest.temporary"] = "true"
            stmt.set_options(**options)
            stmt.bind_stream(frame.__arrow_c_stream__())
            stmt.execute_update()
        finally:
            stmt.close()

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            if self._db is not None:
                self._db.close()


def _params_frame(params: Sequence[Any]) -> pl.DataFrame:
    """One row of bind parameters; a None binds as a NULL string (Arrow's null type does not bind).

    Subclasses of str and int (SQLAlchemy's ``quoted_name``, enums) are passed as the plain
    type: polars would read a str subclass as a sequence."""
    columns = [pl.Series(f"p{i}", [_plain(v)]) for i, v in enumerate(params)]
    return pl.DataFrame([c.cast(pl.String) if c.dtype == pl.Null else c for c in columns])


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return str.__str__(value)  # the characters themselves, not a subclass's __str__ (an Enum's "E.a")
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value
