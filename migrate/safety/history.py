"""What happened to a target: the audit trail of runs, resumes, verifies and rollbacks."""

from __future__ import annotations

import polars as pl

from crmkit.db.loader import open_loader
from crmkit.migrate.safety.store import AUDIT_COLUMNS, RunStore
from crmkit.schema import versions

COLUMNS = AUDIT_COLUMNS


def history(target: str, limit: int = 50) -> pl.DataFrame:
    """The newest ``limit`` audit entries, newest first; empty for a target crmkit never wrote."""
    engine = versions.connect(target)
    fresh = versions.current(engine) is None
    engine.dispose()
    if fresh:
        return pl.DataFrame(schema={c: pl.String for c in COLUMNS})
    versions.ensure_schema(target)
    loader = open_loader(target)
    try:
        frame = RunStore(loader).audit_entries(limit)
    finally:
        loader.close()
    if frame.height == 0:
        return pl.DataFrame(schema={c: pl.String for c in COLUMNS})
    return frame.with_columns(pl.all().cast(pl.String))
