"""Load: bulk writes into the target, one transaction per batch.

A :class:`Loader` is the one connection a run writes through.  Two are built in:

* SQLite through ADBC (``adbc-driver-sqlite``): Arrow batches are bound in C, with no
  Python per row — measured at about 1.9x faster than ``sqlite3.executemany``.  It is
  driven through ``adbc_driver_manager``'s own statements (see :class:`Adbc`), which
  take polars frames through the Arrow PyCapsule interface: no pyarrow, and no pandas.
* PostgreSQL through psycopg 3 ``COPY ... FROM STDIN``, the server's own bulk path; a bulk
  insert's batches through ADBC's PostgreSQL driver, which writes that ``COPY`` from Arrow in C.

Updates go set-based through a staging table.  SQL is written with ``?`` placeholders
and identifiers are always quoted.
"""

from __future__ import annotations

import importlib
import io
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import polars as pl
from sqlalchemy.engine import URL, make_url

from crmkit.db.sql import q
from crmkit.db.url import mask_url
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


class SqliteLoader(Loader):
    dialect = "sqlite"
    begin_sql = "BEGIN IMMEDIATE"  # take the write lock now, not at the first write

    def __init__(self, path: str):
        self.path = path
        self._checkpointer: _Checkpointer | None = None
        self.conn = Adbc.sqlite(path)
        self.execute("PRAGMA busy_timeout = 10000")
        self.execute("PRAGMA journal_mode = WAL")
        self.execute("PRAGMA synchronous = NORMAL")
        # helper threads for the sorts that build indexes after a bulk load
        self.execute(f"PRAGMA threads = {min(4, os.cpu_count() or 1)}")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, params)

    def bulk_mode(self, on: bool) -> None:
        """A bulk insert's commits leave the WAL checkpoints to a thread of its own.

        In WAL mode every page is written twice: into the WAL at commit, then into the
        database file by a checkpoint, which the committing connection runs itself once the
        WAL passes 1,000 pages (a quarter of a bulk load's time here).  While on, this
        connection does not checkpoint; a second connection copies committed pages after each
        commit (PASSIVE: it never blocks the writer), on the other core.
        """
        if on and self._checkpointer is None and self.path not in ("", ":memory:"):
            self.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = _Checkpointer(self.path)
        elif not on and self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
            self.execute("PRAGMA wal_autocheckpoint = 1000")

    def commit(self) -> None:
        super().commit()
        if self._checkpointer is not None:
            self._checkpointer.poke()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        super().close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        return self.conn.query(sql, params)

    def append(self, table: str, frame: pl.DataFrame, temporary: bool = False) -> None:
        if frame.height == 0:
            return
        self.conn.ingest(table, _sqlite_ready(frame), temporary=temporary)

    def next_ids(self, table: str, n: int) -> pl.Series:
        start = (self.scalar(f"SELECT max(id) FROM {q(table)}") or 0) + 1
        return pl.int_range(start, start + n, dtype=pl.Int64, eager=True).alias("id")


class _Checkpointer:
    """A thread with its own connection that runs ``wal_checkpoint(PASSIVE)`` when poked.

    A failed checkpoint loses nothing (the pages stay in the WAL for the next one), so its
    errors are kept, not raised: the writer's own transactions are what a run depends on.
    """

    def __init__(self, path: str):
        import queue

        self._todo: queue.Queue[bool] = queue.Queue()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._work, args=(path,), name="crmkit-wal-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        if self._todo.empty():  # one pending checkpoint covers every commit before it
            self._todo.put(True)

    def close(self) -> None:
        self._todo.put(False)
        self._thread.join()

    def _work(self, path: str) -> None:
        conn = Adbc.sqlite(path)
        try:
            while self._todo.get():
                try:
                    conn.query("PRAGMA wal_checkpoint(PASSIVE)")
                except Exception as exc:  # e.g. busy: the next checkpoint takes these pages too
                    self.errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        finally:
            conn.close()


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


def _sqlite_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """SQLite stores dates as ISO text, in the shape SQLAlchemy reads back."""
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Date:
            exprs.append(pl.col(name).dt.strftime("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(name).dt.strftime("%Y-%m-%d %H:%M:%S.%6f"))
        elif dtype == pl.Boolean:
            exprs.append(pl.col(name).cast(pl.Int64))
        elif dtype == pl.UInt64 or dtype == pl.UInt32:
            exprs.append(pl.col(name).cast(pl.Int64))
    return frame.with_columns(exprs) if exprs else frame


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
        CPU of :func:`_pg_binary` for a contacts table, and on two cores the CPU is what the
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
            self._bulk.execute(*_numbered(sql, params))
            return
        with self.conn.cursor() as cur:
            cur.execute(_pg(sql), tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        if self._bulk is not None:
            return self._bulk.query(*_numbered(sql, params))
        with self.conn.cursor() as cur:
            cur.execute(_pg(sql), tuple(params))
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    def append(self, table: str, frame: pl.DataFrame, temporary: bool = False) -> None:
        """``COPY`` in PostgreSQL's binary format where every column's type has a binary encoding
        here (see :func:`_pg_binary_ready`), else as CSV.  Binary spares the server the parsing of
        text: about 30% of its time for a contacts table.  In bulk mode, ADBC's ingestion."""
        if frame.height == 0:
            return
        if self._bulk is not None:
            if table not in self._bulk_types:
                self._bulk_types[table] = self.column_types(table)
            ready = _adbc_ready(frame, self._bulk_types[table])
            if ready is not None:
                self._bulk.ingest(table, ready, temporary=temporary)
            else:
                self._bulk_text(table, frame)
            return
        cols = ", ".join(q(c) for c in frame.columns)
        binary = _pg_binary_ready(frame, self.column_types(table))
        with self.conn.cursor() as cur:
            if binary is not None:
                with cur.copy(f"COPY {q(table)} ({cols}) FROM STDIN (FORMAT binary)") as copy:
                    copy.write(PG_COPY_SIGNATURE)
                    for chunk in _chunks(binary, _pg_binary):
                        copy.write(chunk)
                    copy.write(PG_COPY_TRAILER)
                return
            with cur.copy(f"COPY {q(table)} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                for chunk in _chunks(frame, _csv):
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


class Background:
    """Jobs run in order on a companion connection, on a thread of their own, each job in a
    transaction of its own: the server then works on a second core beside the main connection.

    A job is ``fn(loader)``.  The first job that fails stops the queue (the jobs after it are
    dropped, nothing more is written) and :meth:`close` raises its error, so a caller treats it
    like an error on the main connection.  What a job writes is committed independently of the
    main connection's transactions: callers submit only work that a crash may leave undone and
    that the next run can redo (see ``migrate.run``: the id map of a bulk insert).
    """

    def __init__(self, loader: Loader):
        import queue

        self.loader = loader
        self._todo: queue.Queue[tuple[Callable[[Loader], None], Callable[[], None] | None, Future[None]] | None] = (
            queue.Queue()
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="crmkit-background", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[Loader], None], then: Callable[[], None] | None = None) -> Future[None]:
        """Queue ``job``; ``then()`` runs on this thread once the job's transaction has committed.
        The future is done after that, or holds the error that stopped the queue."""
        done: Future[None] = Future()
        if self._error is not None:
            done.set_exception(self._error)
        else:
            self._todo.put((job, then, done))
        return done

    def raise_error(self) -> None:
        """Raise the error that stopped the queue, if one has (the caller stops feeding it)."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Wait for every job; raise the first job's error.  The connection is closed either way."""
        self._todo.put(None)
        self._thread.join()
        try:
            self.loader.close()
        except Exception:
            pass
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while (item := self._todo.get()) is not None:
            job, then, done = item
            if self._error is not None:
                done.set_exception(self._error)
                continue
            try:
                self.loader.begin()
                job(self.loader)
                self.loader.commit()
                if then is not None:
                    then()
                done.set_result(None)
            except BaseException as exc:
                self._error = exc
                done.set_exception(exc)
                try:
                    self.loader.rollback()
                except Exception:
                    pass


def _csv(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_csv(buf, include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.f")
    return buf.getvalue()


def _chunks(frame: pl.DataFrame, encode: Callable[[pl.DataFrame], bytes], rows: int = 10_000) -> Iterator[bytes]:
    """The frame encoded a chunk at a time, the next chunk encoded on a thread while the server
    parses the one before (polars, numpy and pyarrow encode without the GIL; psycopg sends without it)."""
    if frame.height <= rows:
        yield encode(frame)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmkit-encode") as pool:
        ahead = pool.submit(encode, frame.slice(0, rows))
        for start in range(rows, frame.height + rows, rows):
            chunk = ahead.result()
            if start < frame.height:
                ahead = pool.submit(encode, frame.slice(start, rows))
            yield chunk


# PostgreSQL's binary COPY format: a signature, then per row a 16-bit field count and per field
# a 32-bit length (-1: NULL) and the value in the type's binary form, then a trailer.
PG_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # + 32-bit flags and header-extension length
PG_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH_DAYS = 10_957  # 2000-01-01, PostgreSQL's epoch, in days after 1970-01-01
# fixed-width types and the polars dtype whose numpy form, big-endian, is their binary form
_PG_FIXED: dict[str, Any] = {
    "int2": pl.Int16,
    "int4": pl.Int32,
    "int8": pl.Int64,
    "float4": pl.Float32,
    "float8": pl.Float64,
    "bool": pl.UInt8,
    "date": pl.Int32,
    "timestamp": pl.Int64,
}
_PG_TEXT = {"text", "varchar", "bpchar"}


def _pg_binary_ready(frame: pl.DataFrame, types: dict[str, str]) -> pl.DataFrame | None:
    """The frame with every column as the integers, floats or strings of its binary form, or
    None when a column has no binary encoding here (numeric, json, ...) or its values do not
    fit its type (an out-of-range integer: CSV then lets the server say what is wrong)."""
    out = []
    for name, dtype in frame.schema.items():
        typ = types.get(name, "")
        col = pl.col(name)
        if dtype == pl.Null and (typ in _PG_FIXED or typ in _PG_TEXT):
            out.append(col.cast(_PG_FIXED.get(typ, pl.String)))
        elif typ in _PG_TEXT and dtype == pl.String:
            out.append(col)
        elif typ in ("int2", "int4", "int8") and dtype.is_integer():
            out.append(col.cast(_PG_FIXED[typ], strict=True))
        elif typ in ("float4", "float8") and dtype.is_numeric():
            out.append(col.cast(_PG_FIXED[typ]))
        elif typ == "bool" and dtype == pl.Boolean:
            out.append(col.cast(pl.UInt8))
        elif typ == "date" and dtype == pl.Date:
            out.append(col.cast(pl.Int32) - _PG_EPOCH_DAYS)
        elif typ == "timestamp" and isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            out.append(col.dt.cast_time_unit("us").cast(pl.Int64) - _PG_EPOCH_DAYS * 86_400_000_000)
        else:
            return None
    try:
        return frame.select(out)
    except pl.exceptions.InvalidOperationError:  # e.g. an integer too large for int4
        return None


def _pg_binary(frame: pl.DataFrame) -> bytes:
    """Rows of a frame from :func:`_pg_binary_ready` in the binary COPY format, column-wise:
    each column becomes an array of encoded fields, then the fields are joined row by row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    binary, n = pa.large_binary(), frame.height

    def cells(prefix: bytes, values: Any, width: int) -> Any:
        """n fixed-size cells ``prefix + value`` (numpy), as a binary array."""
        out = np.empty((n, len(prefix) + width), dtype=np.uint8)
        out[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        out[:, len(prefix) :] = values.view(np.uint8).reshape(n, width)
        size = len(prefix) + width
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(size), n, [None, pa.py_buffer(out)]).cast(binary)

    null = pa.scalar(b"\xff\xff\xff\xff", binary)
    fields = [pa.scalar(len(frame.columns).to_bytes(2, "big"), binary)]
    for s in frame.iter_columns():
        if s.dtype == pl.String:
            text = s.to_arrow().cast(binary)
            lengths = s.str.len_bytes().fill_null(0).to_numpy().astype(">i4")
            field = pc.binary_join_element_wise(cells(b"", lengths, 4), text, pa.scalar(b"", binary))
        else:
            values = s.fill_null(0).to_numpy()
            width = values.dtype.itemsize
            field = cells(width.to_bytes(4, "big"), values.astype(values.dtype.newbyteorder(">")), width)
            if s.null_count():
                field = pc.if_else(s.is_null().to_arrow(), null, field)
        fields.append(pc.coalesce(field, null) if s.null_count() else field)  # text: a NULL joins to NULL
    rows = pc.binary_join_element_wise(*fields, pa.scalar(b"", binary))
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)
    return rows.buffers()[2].to_pybytes()[offsets[0] : offsets[n]]


# the Arrow (polars) types ADBC writes in each PostgreSQL type's binary form; a column of only
# NULLs (polars' Null type), or an integer or float of another width, is cast to the first
_ADBC_TYPES: dict[str, tuple[Any, ...]] = {
    "int2": (pl.Int16,),
    "int4": (pl.Int32,),
    "int8": (pl.Int64,),
    "float4": (pl.Float32,),
    "float8": (pl.Float64,),
    "bool": (pl.Boolean,),
    "date": (pl.Date,),
    "timestamp": (pl.Datetime("us"), pl.Datetime("ns"), pl.Datetime("ms")),
    "numeric": (pl.Decimal(38, 10), pl.Decimal),
    "text": (pl.String,),
    "varchar": (pl.String,),
    "bpchar": (pl.String,),
    "json": (pl.String,),
}


def _adbc_ready(frame: pl.DataFrame, types: dict[str, str]) -> pl.DataFrame | None:
    """The frame with each column in the Arrow type whose binary ``COPY`` form is its column's
    (ADBC writes an Arrow int64 as int8, which an int4 column refuses), or None where a column
    has none here (a string for a date column, ...: :meth:`PostgresLoader.append` then lets
    the server parse it as text)."""
    exprs = []
    for name, dtype in frame.schema.items():
        typ = types.get(name, "")
        ok = _ADBC_TYPES.get(typ, ())
        if typ == "timestamptz" and isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            continue
        if any(dtype == t if isinstance(t, pl.DataType) else isinstance(dtype, t) for t in ok):
            continue
        if typ == "timestamptz" and dtype == pl.Null:
            exprs.append(pl.col(name).cast(pl.Datetime("us", "UTC")))
            continue
        numeric = typ in ("int2", "int4", "int8", "float4", "float8", "numeric")
        if ok and (
            dtype == pl.Null or (numeric and dtype.is_numeric() and not (typ.startswith("int") and dtype.is_float()))
        ):
            exprs.append(pl.col(name).cast(ok[0], strict=True))
        else:
            return None
    if not exprs:
        return frame
    try:
        return frame.with_columns(exprs)
    except pl.exceptions.InvalidOperationError:  # an integer too large for its column
        return None


def _numbered(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...``; a None parameter is written as NULL
    (bound, it would be a NULL of type text, which an integer column refuses)."""
    parts = sql.split("?")
    if len(parts) - 1 != len(params):
        raise ValueError(f"{len(parts) - 1} placeholders for {len(params)} parameters in {sql!r}")
    out, bound = [parts[0]], []
    for value, part in zip(params, parts[1:]):
        if value is None:
            out.append("NULL")
        else:
            bound.append(value)
            out.append(f"${len(bound)}")
        out.append(part)
    return "".join(out), bound


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
    return tables[table].primary_key


def _foreign_keys(table: str) -> list[Any]:
    from crmkit.schema.models import Base

    return sorted(Base.metadata.tables[table].foreign_key_constraints, key=lambda c: str(c.name))


def is_db_error(exc: BaseException) -> bool:
    """An error raised by a database driver (as opposed to a bug or a user error)."""
    return type(exc).__module__.split(".")[0] in ("psycopg", "adbc_driver_manager", "sqlite3", "pymysql")


def _pg(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


_DRIVERS = {"sqlite": "adbc_driver_manager", "postgresql": "psycopg"}


def preload_driver(url: str) -> threading.Thread:
    """Start importing the target's driver on a thread; join it before :func:`open_loader`.

    psycopg takes a tenth of a second or more to import, which a run spends reading and shaping
    its sources anyway, mostly in polars, without the GIL.  A failed import is left for
    :func:`open_loader` to report."""
    try:
        module = _DRIVERS.get(make_url(url).get_backend_name())
    except Exception:
        module = None

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
    try:
        if backend == "sqlite":
            return SqliteLoader(parsed.database or ":memory:")
        if backend == "postgresql":
            return PostgresLoader.from_url(parsed)
    except Exception as exc:
        raise TargetError(f"cannot connect to target {mask_url(url)}: {_first(exc)}") from None
    raise TargetError(f"target {mask_url(url)}: only sqlite and postgresql targets are supported")


def _first(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
