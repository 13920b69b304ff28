"""Load: bulk writes into the target, one transaction per batch.

A :class:`Loader` is the one connection a run writes through.  Two are built in:

* SQLite through ADBC (``adbc-driver-sqlite``): Arrow batches are bound in C, with no
  Python per row — measured at about 1.9x faster than ``sqlite3.executemany``.
* PostgreSQL through psycopg 3 ``COPY ... FROM STDIN``, the server's own bulk path.

Updates go set-based through a staging table.  SQL is written with ``?`` placeholders
and identifiers are always quoted.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from typing import Any

import polars as pl
from sqlalchemy.engine import URL, make_url

from crmkit.errors import TargetError
from migrate.extract import mask_url


def q(name: str) -> str:
    """A quoted SQL identifier (the same rule in SQLite and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


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
        self.execute(f"CREATE TEMPORARY TABLE {q(stage)} AS SELECT {', '.join(q(c) for c in frame.columns)} "
                     f"FROM {q(table)} WHERE 1 = 0")
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
        import adbc_driver_sqlite.dbapi as adbc

        self.path = path
        self._checkpointer: _Checkpointer | None = None
        self.conn = adbc.connect(path, autocommit=True)
        self.execute("PRAGMA busy_timeout = 10000")
        self.execute("PRAGMA journal_mode = WAL")
        self.execute("PRAGMA synchronous = NORMAL")
        # helper threads for the sorts that build indexes after a bulk load
        self.execute(f"PRAGMA threads = {min(4, os.cpu_count() or 1)}")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, tuple(params) if params else None)

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
        with self.conn.cursor() as cur:
            cur.execute(sql, tuple(params) if params else None)
            out = pl.from_arrow(cur.fetch_arrow_table())
        assert isinstance(out, pl.DataFrame)
        return out

    def append(self, table: str, frame: pl.DataFrame, temporary: bool = False) -> None:
        if frame.height == 0:
            return
        with self.conn.cursor() as cur:
            cur.adbc_ingest(table, _sqlite_ready(frame).to_arrow(), mode="append", temporary=temporary)

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
        import threading

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
        import adbc_driver_sqlite.dbapi as adbc

        conn = adbc.connect(path, autocommit=True)
        try:
            while self._todo.get():
                try:
                    with conn.cursor() as cur:
                        cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        cur.fetchall()
                except Exception as exc:  # e.g. busy: the next checkpoint takes these pages too
                    self.errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        finally:
            conn.close()


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
    dialect = "postgresql"

    def __init__(self, url: URL):
        import psycopg

        params = {k: v for k, v in {
            "host": url.host, "port": url.port, "user": url.username,
            "password": url.password, "dbname": url.database,
        }.items() if v is not None}
        self._params = {**params, **{k: str(v) for k, v in url.query.items()}}
        self.conn = psycopg.connect(**self._params, autocommit=True)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.conn.cursor() as cur:
            cur.execute(_pg(sql), tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(_pg(sql), tuple(params))
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    def append(self, table: str, frame: pl.DataFrame, temporary: bool = False) -> None:
        if frame.height == 0:
            return
        cols = ", ".join(q(c) for c in frame.columns)
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY {q(table)} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                for chunk in _csv_chunks(frame):
                    copy.write(chunk)

    def drop_indexes(self, table: str) -> None:
        """Also drop ``table``'s foreign keys: ``COPY`` would check each row by a trigger (most of
        its time); :meth:`create_indexes` adds them back and validates them in one pass."""
        super().drop_indexes(table)
        for fk in _foreign_keys(table):
            self.execute(f"ALTER TABLE {q(table)} DROP CONSTRAINT IF EXISTS {q(str(fk.name))}")

    def create_indexes(self, table: str) -> None:
        """Indexes and foreign keys of ``table`` where missing (or left unvalidated by a crash)."""
        super().create_indexes(table)
        state = dict(self.query(
            "SELECT conname, convalidated FROM pg_constraint WHERE conrelid = ?::regclass AND contype = 'f'",
            (q(table),)).iter_rows())
        for fk in _foreign_keys(table):
            name = str(fk.name)
            if name not in state:
                cols = ", ".join(q(c.parent.name) for c in fk.elements)
                refs = ", ".join(q(c.column.name) for c in fk.elements)
                self.execute(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} FOREIGN KEY ({cols}) "
                             f"REFERENCES {q(fk.referred_table.name)} ({refs}) NOT VALID")
            if not state.get(name, False):
                self.execute(f"ALTER TABLE {q(table)} VALIDATE CONSTRAINT {q(name)}")  # one join, not a trigger a row

    def terminate_backend(self) -> None:
        """Cut this connection from the server side (fault injection: a dropped connection)."""
        import psycopg

        pid = self.conn.info.backend_pid
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


def _csv(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_csv(buf, include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.f")
    return buf.getvalue()


def _csv_chunks(frame: pl.DataFrame, rows: int = 10_000) -> Iterator[bytes]:
    """The frame as CSV, a chunk at a time, the next chunk written on a thread while the
    server parses the one before (polars writes without the GIL, psycopg sends without it)."""
    if frame.height <= rows:
        yield _csv(frame)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmkit-csv") as pool:
        ahead = pool.submit(_csv, frame.slice(0, rows))
        for start in range(rows, frame.height + rows, rows):
            chunk = ahead.result()
            if start < frame.height:
                ahead = pool.submit(_csv, frame.slice(start, rows))
            yield chunk


def _foreign_keys(table: str) -> list[Any]:
    from crmkit.schema.models import Base

    return sorted(Base.metadata.tables[table].foreign_key_constraints, key=lambda c: str(c.name))


def is_db_error(exc: BaseException) -> bool:
    """An error raised by a database driver (as opposed to a bug or a user error)."""
    return type(exc).__module__.split(".")[0] in ("psycopg", "adbc_driver_manager", "sqlite3", "pymysql")


def _pg(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


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
            return PostgresLoader(parsed)
    except Exception as exc:
        raise TargetError(f"cannot connect to target {mask_url(url)}: {_first(exc)}") from None
    raise TargetError(f"target {mask_url(url)}: only sqlite and postgresql targets are supported")


def _first(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
