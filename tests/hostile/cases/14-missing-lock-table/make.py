"""A target at head whose lock table was dropped."""

import sqlite3
from pathlib import Path


def make(project: Path, outside: Path) -> None:
    from crmkit.schema.versions import ensure_schema

    ensure_schema(f"sqlite:///{project / 'crm.db'}")
    with sqlite3.connect(project / "crm.db") as con:
        con.execute("DROP TABLE crmkit_locks")
    con.close()
