"""SQL text helpers shared by every dialect crmkit writes."""

from __future__ import annotations


def q(name: str) -> str:
    """A quoted SQL identifier (the same rule in SQLite and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'
