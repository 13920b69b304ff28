"""API statements compiled for PostgreSQL once, to run on a psycopg connection directly.

Building, compiling and executing a statement through SQLAlchemy on every request costs
more CPU than the round trip itself.  So each statement is compiled once per shape (the
columns an INSERT or UPDATE is given), and :class:`Compiled` holds its SQL with
``%(name)s`` placeholders and the conversions SQLAlchemy would apply to its parameters and
result columns: all taken from SQLAlchemy's public interface (``Compiled.string``,
``params``, ``bind_names``, ``TypeEngine.dialect_impl`` and its bind and result
processors), so that the results equal SQLAlchemy's own (``tests/integration/test_api_db.py`` runs every
API statement both ways).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement


class NeedsSqlAlchemy(Exception):
    """A statement with Python-side column defaults, which only SQLAlchemy's execution fills in."""


class Compiled:
    """A statement compiled for PostgreSQL once, with the conversions SQLAlchemy would apply."""

    __slots__ = ("stmt", "sql", "fixed", "bind_procs", "types", "result_procs")

    def __init__(self, stmt: Any, sql: str, fixed: dict[str, Any], bind_procs: dict[str, Any], types: list[Any]):
        self.stmt, self.sql, self.fixed, self.bind_procs, self.types = stmt, sql, fixed, bind_procs, types
        self.result_procs: list[tuple[str, Any]] | None = None  # known after the first execution

    def values(self, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters as psycopg takes them: with the statement's own values, converted."""
        values = {**self.fixed, **params} if self.fixed else params
        if self.bind_procs:
            values = {
                k: (self.bind_procs[k](v) if k in self.bind_procs and v is not None else v) for k, v in values.items()
            }
        return values

    def convert(self, dialect: Dialect, description: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` (psycopg dict rows) with each column converted as SQLAlchemy would; in place."""
        if self.result_procs is None:
            procs = []
            if description and len(description) == len(self.types):
                for d, typ in zip(description, self.types):
                    proc = typ.dialect_impl(dialect).result_processor(dialect, d.type_code)
                    if proc is not None:
                        procs.append((d.name, proc))
            self.result_procs = procs
        if self.result_procs:
            for row in rows:
                for name, proc in self.result_procs:
                    row[name] = proc(row[name])
        return rows


#: (id of statement, column keys) -> compiled; the entry keeps its statement alive, so that
#: the id is not reused while the entry lives
_COMPILED: dict[tuple[int, frozenset[str] | None], Compiled] = {}
_COMPILED_MAX = 4096


def compiled(dialect: Dialect, stmt: ClauseElement, params: dict[str, Any]) -> Compiled:
    """``stmt`` as PostgreSQL SQL with %(name)s placeholders, compiled once per shape.

    NeedsSqlAlchemy if it has Python-side column defaults (none of the API's statements has).
    """
    is_dml = getattr(stmt, "is_dml", False)
    keys = frozenset(params) if is_dml else None  # INSERT/UPDATE compile for the columns given
    key = (id(stmt), keys)
    hit = _COMPILED.get(key)
    if hit is None or hit.stmt is not stmt:
        hit = _compile(dialect, stmt, params, keys)
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        _COMPILED[key] = hit
    return hit


def _compile(dialect: Dialect, stmt: ClauseElement, params: dict[str, Any], keys: frozenset[str] | None) -> Compiled:
    comp: Any = stmt.compile(dialect=dialect, column_keys=sorted(keys) if keys is not None else None)
    if comp.insert_prefetch or comp.update_prefetch:
        raise NeedsSqlAlchemy(
            f"{type(stmt).__name__} on {getattr(stmt, 'table', '?')}: a column has a Python-side default; "
            "give every column a value"
        )
    fixed = {k: v for k, v in comp.params.items() if v is not None and k not in params}
    bind_procs = {}
    for bind, name in comp.bind_names.items():
        proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if proc is not None:
            bind_procs[name] = proc
    types = [col.type for col in getattr(stmt, "exported_columns", ())]
    return Compiled(stmt, comp.string, fixed, bind_procs, types)
