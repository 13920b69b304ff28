"""The runs recorded in a target (``crmkit migrate history``)."""

from __future__ import annotations

import polars as pl

from crmkit.schema import versions
from migrate.load import open_loader


def history(target: str, limit: int = 50) -> pl.DataFrame:
    """The newest ``limit`` runs, newest first; empty for a target crmkit never wrote."""
    engine = versions.connect(target)
    fresh = versions.current(engine) is None
    engine.dispose()
    cols = ["id", "kind", "mapping_name", "status", "operator", "started_at", "finished_at", "target",
            "counts_json", "message"]
    if fresh:
        return pl.DataFrame(schema={c: pl.String for c in cols})
    loader = open_loader(target)
    try:
        frame = loader.query(
            f"SELECT {', '.join(cols)} FROM crmkit_runs ORDER BY id DESC LIMIT ?", (limit,))
    finally:
        loader.close()
    return frame.with_columns(pl.all().cast(pl.String))
