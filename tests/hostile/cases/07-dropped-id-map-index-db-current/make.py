"""A target at head whose bulk load died after dropping the id map's index."""

import sqlite3
from pathlib import Path


def make(project: Path, outside: Path) -> None:
    from crmkit.schema.versions import ensure_schema

    ensure_schema(f"sqlite:///{project / 'crm.db'}")
    with sqlite3.connect(project / "crm.db") as con:
        con.execute("DROP INDEX ix_crmkit_id_map_target")
    con.close()
