"""A target at head whose bulk load died after dropping an entity's indexes."""

import sqlite3
from pathlib import Path


def make(project: Path, outside: Path) -> None:
    from crmkit.schema.versions import ensure_schema

    ensure_schema(f"sqlite:///{project / 'crm.db'}")
    with sqlite3.connect(project / "crm.db") as con:
        con.execute("DROP INDEX ix_contacts_account_id")
        con.execute("DROP INDEX ix_contacts_owner_id")
    con.close()
