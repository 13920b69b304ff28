"""The SQLite target: ADBC statements (no Python per row), WAL checkpoints on a thread of their own."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import polars as pl

from crmkit.db.adbc import Adbc
from crmkit.db.loader import Loader
from crmkit.db.sql import first_line, q


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
                    self.errors.append(first_line(exc))
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
