"""SQL text helpers shared by every dialect crmkit writes: quoting, placeholders, driver errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: the top-level modules of the database drivers crmkit uses (targets and legacy sources)
DRIVER_MODULES = ("psycopg", "adbc_driver_manager", "sqlite3", "pymysql")


def q(name: str) -> str:
    """A quoted SQL identifier (the same rule in SQLite and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def numbered(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
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


def pyformat(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def is_db_error(exc: BaseException) -> bool:
    """An error raised by a database driver (as opposed to a bug or a user error)."""
    return type(exc).__module__.split(".")[0] in DRIVER_MODULES


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (drivers add detail lines), else the error's type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def write_refusal(exc: BaseException) -> str | None:
    """Why a target refused a write, when the reason is the target's and not the statement's: it
    is read-only, or this user may not write, or a crmkit table is missing; else None."""
    text = str(exc).lower()
    if "readonly database" in text or "read-only" in text or "read only" in text:
        return f"is read-only: crmkit cannot write to it ({first_line(exc)}); point --target at a database it can write"
    if "permission denied" in text or "insufficient privilege" in text:
        return f"refuses writes to this user ({first_line(exc)}); grant it write access or use another user"
    missing = missing_table(exc)
    if missing is not None:
        return f"has no table {missing}: run `crmkit db repair --target ...` to restore crmkit's schema"
    return None


def missing_table(exc: BaseException) -> str | None:
    """The table a statement found missing (SQLite's and PostgreSQL's messages), else None."""
    import re

    found = re.search(r'no such table: ([\w."]+)|relation "([^"]+)" does not exist', str(exc))
    return (found.group(1) or found.group(2)) if found else None
