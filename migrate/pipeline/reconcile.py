"""Reconciliation: a run's outcomes must add up to the rows extracted, and the id map agree."""

from __future__ import annotations

from crmkit.db.loader import Loader
from crmkit.errors import ReconcileError
from crmkit.migrate.pipeline.check import KeyMap
from crmkit.migrate.pipeline.result import FeedCounts


def reconcile(loader: Loader, counts: list[FeedCounts], keymaps: dict[tuple[str, str], KeyMap]) -> None:
    """Raise ReconcileError where a feed's outcomes or an id map do not add up (a bug, never ignored)."""
    for c in counts:
        if c.accounted != c.extracted:
            raise ReconcileError(
                f"{c.entity} from {c.source}: {c.extracted} rows extracted but {c.accounted} accounted for "
                f"({c.filtered} filtered, {c.inserted} inserted, {c.updated} updated, {c.unchanged} unchanged, "
                f"{c.merged} merged, {c.rejected} rejected)"
            )
    for (entity, source), km in keymaps.items():
        in_map = loader.scalar(
            "SELECT count(*) FROM crmkit_id_map WHERE entity = ? AND source_name = ?", (entity, source)
        )
        if int(in_map or 0) != km.ids.height:
            raise ReconcileError(
                f"{entity} from {source}: the id map holds {in_map} keys, the run expected {km.ids.height}"
            )
