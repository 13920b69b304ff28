"""Legacy sources are read, never written: a read-only connection and one SELECT per query.

Two locks, either of which holds alone:

* the connection is read-only by construction: SQLite through a ``mode=ro`` URI (a missing
  file is an error, not a new empty database), PostgreSQL with ``default_transaction_read_only``
  set at connect and every transaction begun ``READ ONLY``, MySQL/MariaDB with the session's
  transactions ``READ ONLY``;
* a mapping's ``query:`` must be one SELECT (or ``WITH ... SELECT``) statement:
  :func:`single_select` says what is wrong with any other text, so the mapping is refused
  with its file and line before anything connects.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_FIRST_WORD = re.compile(r"\s*\(*\s*([A-Za-z]+)")


def _outside_quotes(sql: str) -> str:
    """``sql`` with the contents of string literals and quoted names blanked (their quotes kept)."""
    out, quote, i = [], "", 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            if ch == quote and sql[i + 1 : i + 2] == quote:  # a doubled quote inside a literal
                i += 2
                continue
            if ch == quote:
                quote = ""
                out.append(ch)
            elif ch == "\\" and quote == "'":
                i += 1  # MySQL's backslash escapes: skip the escaped character
            i += 1
            continue
        if ch in "'\"`":
            quote = ch
        out.append(ch)
        i += 1
    return "".join(out)


def single_select(sql: str) -> str | None:
    """None when ``sql`` is one SELECT (or WITH ... SELECT) statement, else what is wrong with it."""
    bare = _COMMENT.sub(" ", _outside_quotes(sql)).strip()
    bare = bare[:-1].rstrip() if bare.endswith(";") else bare
    if not bare:
        return "the query is empty"
    if ";" in bare:
        return "holds more than one statement: a source query is one SELECT"
    first = _FIRST_WORD.match(bare)
    word = first.group(1).upper() if first else ""
    if word not in {"SELECT", "WITH"}:
        return f"is a {word or 'non-SELECT'} statement: a legacy source is only read, write one SELECT"
    if word == "WITH" and re.search(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", bare, re.I):
        return "writes inside its WITH clause: a legacy source is only read, write one SELECT"
    return None


def read_only_engine(url: str) -> Engine:
    """A SQLAlchemy engine on ``url`` whose connections cannot write."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            raise ValueError("a SQLite source needs a database file")
        uri = Path(u.database).resolve().as_uri() + "?mode=ro"
        return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))
    if backend == "postgresql":
        engine = create_engine(u, connect_args={"options": "-c default_transaction_read_only=on"})

        @event.listens_for(engine, "begin")
        def _pg_read_only(conn: Any) -> None:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")

        return engine
    engine = create_engine(u)
    if backend in {"mysql", "mariadb"}:

        @event.listens_for(engine, "connect")
        def _mysql_read_only(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("SET SESSION TRANSACTION READ ONLY")
            cur.close()

    return engine
