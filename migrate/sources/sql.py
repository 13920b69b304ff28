"""``kind: sql``: a table or query of any database SQLAlchemy reaches."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import PrivateAttr, ValidationInfo, field_validator, model_validator
from sqlalchemy.engine import URL, make_url

from crmkit.config import expand_url
from crmkit.db.readonly import read_only_engine, single_select
from crmkit.db.url import mask_url
from crmkit.errors import SourceError
from crmkit.migrate.sources.base import ROW, Extracted, SourceModel, as_text, first_line, register_kind
from crmkit.migrate.sources.decode import bad_values, decode_marked
from crmkit.paths import PathNotAllowed, confine


class SqlSource(SourceModel):
    """A table or query of a database reached through a SQLAlchemy URL."""

    kind: Literal["sql"]
    url: str
    table: str | None = None
    query: str | None = None
    _base: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        return self

    @field_validator("query")
    @classmethod
    def _one_select(cls, v: str | None) -> str | None:
        problem = single_select(v) if v is not None else None
        if problem:
            raise ValueError(f"the query {problem}")
        return v

    @field_validator("url")
    @classmethod
    def _no_literal_password(cls, v: str, info: ValidationInfo) -> str:
        if "${" not in v:
            try:
                url = make_url(v)
            except Exception:
                raise ValueError("not a database URL (e.g. mysql+pymysql://user:${PW}@host/db)") from None
            if url.password:
                raise ValueError("the URL holds a password: put it in the environment and write ${VAR}")
            confined = confine_url(url, (info.context or {}).get("base"))
            return v if confined is url else confined.render_as_string(hide_password=False)
        return v

    @model_validator(mode="after")
    def _remember_base(self, info: ValidationInfo) -> SqlSource:
        self._base = (info.context or {}).get("base")  # a ${VAR} URL is confined once expanded
        return self


#: URL query keys whose value is a file the driver reads (MySQL option files, TLS keys, passfiles)
FILE_KEYS = frozenset(
    {"read_default_file", "ssl_ca", "ssl_cert", "ssl_key", "sslrootcert", "sslcert", "sslkey", "sslcrl", "passfile"}
)


def confine_url(url: URL, base: Path | None) -> URL:
    """``url`` with a SQLite file (and any file a query key names) resolved inside the project.

    Raises :class:`crmkit.paths.PathNotAllowed` for a file outside it; returns ``url`` itself
    when nothing names a file.
    """
    out = url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        out = out.set(database=str(confine(url.database, base)))
    for key, value in url.query.items():
        if key.lower() in FILE_KEYS:
            for item in (value,) if isinstance(value, str) else value:
                confine(item, base)
    return out


def read_sql(name: str, src: SqlSource) -> Extracted:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    url = expand_url(src.url, f"source {name}: url")
    shown = mask_url(url)
    if url != src.url:  # a ${VAR} URL: the file it names now is confined too
        try:
            confine_url(make_url(url), src._base)
        except PathNotAllowed as exc:
            raise SourceError(f"source {name}: url: {exc}") from None
        except Exception:
            pass  # not a URL: the engine below says so
    try:
        engine = read_only_engine(url)
    except Exception as exc:
        raise SourceError(f"source {name}: bad database URL {shown}: {first_line(exc)}") from None
    try:
        with engine.connect() as conn:
            _lenient_sqlite_text(conn)
            if src.table is not None:
                quoted = ".".join(engine.dialect.identifier_preparer.quote(p) for p in src.table.split("."))
                query = f"SELECT * FROM {quoted}"
            else:
                query = src.query or ""
            frame = pl.read_database(text(query), conn, infer_schema_length=None)
    except sa_exc.OperationalError as exc:
        raise SourceError(f"source {name}: cannot connect to {shown}: {_driver_message(exc)}") from None
    except (sa_exc.ProgrammingError, sa_exc.DatabaseError) as exc:
        raise SourceError(f"source {name} ({shown}): {_driver_message(exc)}") from None
    except ModuleNotFoundError as exc:
        raise SourceError(f"source {name}: no driver for {shown} ({exc.name} is not installed)") from None
    finally:
        engine.dispose()
    frame = frame.with_columns(as_text(frame))
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    frame, bad = bad_values(frame, ROW, "utf-8", marked=True)
    return Extracted(name, frame, bad=bad)


def _lenient_sqlite_text(conn: Any) -> None:
    """SQLite stores any bytes as TEXT: a value that is not UTF-8 is marked (a per-row reject,
    ``sources.decode``) instead of failing the whole read."""
    import sqlite3

    raw = conn.connection.dbapi_connection
    if isinstance(raw, sqlite3.Connection):
        raw.text_factory = decode_marked


def _driver_message(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    msg = str(orig.args[-1] if getattr(orig, "args", None) else orig)
    return first_line(msg)


register_kind(
    "sql",
    SqlSource,
    read_sql,
    summary="a table or query of a database reached through a SQLAlchemy URL; values become text",
)
