"""The PostgreSQL target: psycopg 3 for statements and ``COPY``; during a bulk insert, ADBC's
PostgreSQL driver, with companion connections of one shared ADBC database."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import polars as pl
from sqlalchemy.engine import URL

from crmkit.db.adbc import Adbc
from crmkit.db.copy import PG_COPY_SIGNATURE, PG_COPY_TRAILER, adbc_ready, chunks, csv_bytes, pg_binary, pg_binary_ready
from crmkit.db.loader import Loader
from crmkit.db.sql import numbered, pyformat, q


class PostgresLoader(Loader):
    """psycopg 3 for every statement; during a bulk insert (:meth:`bulk_mode`) the batches go
    through ADBC's PostgreSQL driver instead."""

    dialect = "postgresql"

    def __init__(self, params: dict[str, Any], bulk_database: _PostgresDatabase | None = None):
        import psycopg

        self._params = dict(params)
        self.conn = psycopg.connect(**self._params, autocommit=True)
        self._owns_database = bulk_database is None
        self._database = bulk_database or _PostgresDatabase(self._params)
        self._bulk: Adbc | None = None
        self._bulk_pid = 0
        self._bulk_types: dict[str, dict[str, str]] = {}

    @classmethod
    def from_url(cls, url: URL) -> PostgresLoader:
        params = {
            k: v
            for k, v in {
                "host": url.host,
                "port": url.port,
                "user": url.username,
                "password": url.password,
                "dbname": url.database,
            }.items()
            if v is not None
        }
        return cls({**params, **{k: str(v) for k, v in url.query.items()}})

    def bulk_mode(self, on: bool) -> None:
        """While on, statements and appends go through a connection of ADBC's PostgreSQL
        driver, which writes the binary ``COPY`` stream from Arrow in C: a third of the client
        CPU of :func:`pg_binary` for a contacts table, and on two cores the CPU is what the
        server's ``COPY`` and the id map's connection compete for.  Only for work in batches
        of their own transactions: the psycopg connection's open transaction, if any, is not
        the bulk connection's (so never on during a dry run)."""
        if on and self._bulk is None:
            self._bulk = self._database.connect()
            self._bulk_pid = int(self.scalar("SELECT pg_backend_pid()"))
        elif not on and self._bulk is not None:
            bulk, self._bulk = self._bulk, None
            self._bulk_types.clear()
            try:
                bulk.close()
            except Exception:
                pass  # a connection cut mid-batch: its error is the one the caller reports

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self._bulk is not None:
            self._bulk.execute(*numbered(sql, params))
            return
        with self.conn.cursor() as cur:
            cur.execute(pyformat(sql), tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        if self._bulk is not None:
            return self._bulk.query(*numbered(sql, params))
        with self.conn.cursor() as cur:
            cur.execute(pyformat(sql), tuple(params))
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    def append(self, table: str, frame: pl.DataFrame, temporary: bool = False) -> None:
        """``COPY`` in PostgreSQL's binary format where every column's type has a binary encoding
        here (see :func:`pg_binary_ready`), else as CSV.  Binary spares the server the parsing of
        text: about 30% of its time for a contacts table.  In bulk mode, ADBC's ingestion."""
        if frame.height == 0:
            return
        if self._bulk is not None:
            if table not in self._bulk_types:
                self._bulk_types[table] = self.column_types(table)
            ready = adbc_ready(frame, self._bulk_types[table])
            if ready is not None:
                self._bulk.ingest(table, ready, temporary=temporary)
            else:
                self._bulk_text(table, frame)
            return
        cols = ", ".join(q(c) for c in frame.columns)
        binary = pg_binary_ready(frame, self.column_types(table))
        with self.conn.cursor() as cur:
            if binary is not None:
                with cur.copy(f"COPY {q(table)} ({cols}) FROM STDIN (FORMAT binary)") as copy:
                    copy.write(PG_COPY_SIGNATURE)
                    for chunk in chunks(binary, pg_binary):
                        copy.write(chunk)
                    copy.write(PG_COPY_TRAILER)
                return
            with cur.copy(f"COPY {q(table)} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                for chunk in chunks(frame, csv_bytes):
                    copy.write(chunk)

    def _bulk_text(self, table: str, frame: pl.DataFrame) -> None:
        """In bulk mode, a frame ADBC cannot write as it is: its columns as text into a
        temporary table, then cast by the server into ``table`` (as ``COPY`` of CSV would)."""
        stage = "_crmkit_text_stage"
        sql_types = dict(
            self.query(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = ?::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (q(table),),
            ).iter_rows()
        )
        self.execute(f"DROP TABLE IF EXISTS {q(stage)}")
        self.execute(f"CREATE TEMPORARY TABLE {q(stage)} ({', '.join(f'{q(c)} text' for c in frame.columns)})")
        text = frame.with_columns(
            pl.col(c).dt.strftime("%Y-%m-%d %H:%M:%S%.f") if isinstance(d, pl.Datetime) else pl.col(c).cast(pl.String)
            for c, d in frame.schema.items()
        )
        assert self._bulk is not None
        self._bulk.ingest(stage, text, temporary=True)
        cols = ", ".join(q(c) for c in frame.columns)
        casts = ", ".join(f"{q(c)}::{sql_types[c]}" for c in frame.columns)
        self.execute(f"INSERT INTO {q(table)} ({cols}) SELECT {casts} FROM {q(stage)}")
        self.execute(f"DROP TABLE {q(stage)}")

    def column_types(self, table: str) -> dict[str, str]:
        """The table's columns and their PostgreSQL type names (``int4``, ``varchar``, ...)."""
        return dict(
            self.query(
                "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = ?::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (q(table),),
            ).iter_rows()
        )

    def drop_indexes(self, table: str) -> None:
        """Also drop ``table``'s foreign keys: ``COPY`` would check each row by a trigger (most of
        its time); :meth:`create_indexes` adds them back and validates them in one pass.  And its
        primary key where no foreign key refers to it (the id map): each row's entry in it is a
        WAL record of its own, and two bulk ``COPY`` streams then wait on each other's WAL
        (measured: 0.6 s of a million contacts).  Built once, sorted, it takes a fraction of that."""
        super().drop_indexes(table)
        for fk in _foreign_keys(table):
            self.execute(f"ALTER TABLE {q(table)} DROP CONSTRAINT IF EXISTS {q(str(fk.name))}")
        pk = _unreferenced_primary_key(table)
        if pk is not None:
            self.execute(f"ALTER TABLE {q(table)} DROP CONSTRAINT IF EXISTS {q(str(pk.name))}")

    def create_indexes(self, table: str) -> None:
        """Indexes, primary key and foreign keys of ``table`` where missing (or left unvalidated
        by a crash)."""
        pk = _unreferenced_primary_key(table)
        if pk is not None and not self.scalar(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = ?::regclass AND contype = 'p'", (q(table),)
        ):
            cols = ", ".join(q(c.name) for c in pk.columns)
            self.execute(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(str(pk.name))} PRIMARY KEY ({cols})")
        super().create_indexes(table)
        state = dict(
            self.query(
                "SELECT conname, convalidated FROM pg_constraint WHERE conrelid = ?::regclass AND contype = 'f'",
                (q(table),),
            ).iter_rows()
        )
        for fk in _foreign_keys(table):
            name = str(fk.name)
            if name not in state:
                cols = ", ".join(q(c.parent.name) for c in fk.elements)
                refs = ", ".join(q(c.column.name) for c in fk.elements)
                self.execute(
                    f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} FOREIGN KEY ({cols}) "
                    f"REFERENCES {q(fk.referred_table.name)} ({refs}) NOT VALID"
                )
            if not state.get(name, False):
                self._validate(table, fk)

    def _validate(self, table: str, fk: Any) -> None:
        """``VALIDATE CONSTRAINT``: one join, not a trigger a row.  Just after a bulk load the
        table has no statistics, so the planner scans the whole table even for a reference the
        load left NULL in every row (0.1 s a column for a million contacts); when the sparse
        index of the column (``WHERE col IS NOT NULL``) is empty, the check is told to use it."""
        from crmkit.schema.models import SPARSE_INDEXED

        sql = f"ALTER TABLE {q(table)} VALIDATE CONSTRAINT {q(str(fk.name))}"
        cols = [c.parent.name for c in fk.elements]
        if len(cols) != 1 or (table, cols[0]) not in SPARSE_INDEXED or self._bulk is not None:
            self.execute(sql)
            return
        with self.conn.transaction():  # SET LOCAL needs one (a savepoint in the caller's)
            self.execute("SET LOCAL enable_seqscan = off")
            if self.query(f"SELECT 1 FROM {q(table)} WHERE {q(cols[0])} IS NOT NULL LIMIT 1").height:
                self.execute("SET LOCAL enable_seqscan TO DEFAULT")  # rows to check: the planner's way
            self.execute(sql)
            self.execute("SET LOCAL enable_seqscan TO DEFAULT")  # a released savepoint keeps its settings

    def companion(self) -> PostgresLoader:
        return PostgresLoader(self._params, bulk_database=self._database)

    def close(self) -> None:
        self.bulk_mode(False)
        try:
            self.conn.close()
        finally:
            if self._owns_database:
                try:
                    self._database.close()
                except Exception:
                    pass  # a companion left open by an error path: the process ends it

    def terminate_backend(self) -> None:
        """Cut this connection from the server side (fault injection: a dropped connection)."""
        import psycopg

        pid = self._bulk_pid if self._bulk is not None else self.conn.info.backend_pid
        with psycopg.connect(**self._params, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def next_ids(self, table: str, n: int) -> pl.Series:
        """A block of ``n`` ids from the table's sequence, reserved with one ``setval``.

        The table is locked against other writers for the rest of the batch's transaction
        (SHARE ROW EXCLUSIVE: readers go on), so no other session's insert can draw a value
        inside the block between ``nextval`` and ``setval``.
        """
        seq = f"pg_get_serial_sequence('{table}', 'id')"
        self.execute(f"LOCK TABLE {q(table)} IN SHARE ROW EXCLUSIVE MODE")
        last = int(self.scalar(f"SELECT setval({seq}, nextval({seq}) + ? - 1)", (n,)))
        return pl.int_range(last - n + 1, last + 1, dtype=pl.Int64, eager=True).alias("id")


class _PostgresDatabase:
    """The ADBC database of a PostgreSQL loader and its companions, opened at its first use:
    opening one loads the driver and reads the server's type catalogue (40-90 ms), a
    connection of it takes a few."""

    def __init__(self, params: dict[str, Any]):
        self._params = params
        self._db: Any = None
        self._lock = threading.Lock()

    def connect(self) -> Adbc:
        import adbc_driver_manager as adbc
        import adbc_driver_postgresql

        with self._lock:
            if self._db is None:
                self._db = adbc.AdbcDatabase(driver=adbc_driver_postgresql._driver_path(), uri=_libpq_dsn(self._params))
        return Adbc.of(self._db)

    def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            db.close()


def _libpq_dsn(params: dict[str, Any]) -> str:
    """libpq's ``key='value'`` connection string of psycopg-style keyword parameters."""

    def quoted(value: Any) -> str:
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{key}={quoted(value)}" for key, value in params.items())


def _unreferenced_primary_key(table: str) -> Any:
    """``table``'s primary key, if no foreign key of the schema refers to the table."""
    from crmkit.schema.models import Base

    tables = Base.metadata.tables
    if any(fk.referred_table.name == table for t in tables.values() for fk in t.foreign_key_constraints):
        return None
    pk = tables[table].primary_key
    return pk if pk.columns else None  # a before-image table has none


def _foreign_keys(table: str) -> list[Any]:
    from crmkit.schema.models import Base

    return sorted(Base.metadata.tables[table].foreign_key_constraints, key=lambda c: str(c.name))
