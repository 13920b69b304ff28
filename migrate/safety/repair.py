"""``crmkit db repair``: give a target back what a killed bulk load or a dropped table took.

What a run start does for the entities it writes (migrate/pipeline/bulk.py: ``restore``), for
every table: the missing tables recreated, the indexes, primary keys and foreign keys rebuilt
(and validated), the id map of a bulk insert a crash cut short written from the committed
rows' provenance.  It holds the locks of every entity meanwhile, so it refuses while a run is
writing one.
"""

from __future__ import annotations

from dataclasses import dataclass

from crmkit.db.loader import open_loader
from crmkit.db.url import mask_url
from crmkit.errors import TargetError
from crmkit.migrate.pipeline.bulk import ID_MAP_INDEXES, restore
from crmkit.migrate.safety import lock
from crmkit.migrate.safety.store import RunStore
from crmkit.schema import health, versions


@dataclass
class Repaired:
    revision: str
    restored: list[str]
    still_missing: list[str]


def repair(url: str) -> Repaired:
    """Restore what the target lacks of the models' schema; what was missing, and what still is."""
    engine = versions.connect(url)
    try:
        rev = versions.current(engine)
        if rev != versions.head():
            raise TargetError(
                f"target {mask_url(url)} is at schema {rev or 'none'}, not {versions.head()}: "
                f"run `crmkit db upgrade --target {mask_url(url)}` first"
            )
        before = health.missing(engine)
        from crmkit.schema.models import Base

        Base.metadata.create_all(engine, checkfirst=True)  # the dropped tables, with their indexes
        _restore(url)
        after = health.missing(engine)
    finally:
        engine.dispose()
    return Repaired(rev, [m for m in before if m not in after], after)


def _restore(url: str) -> None:
    from crmkit.schema.models import Base

    loader = open_loader(url)
    store = RunStore(loader)
    keys = [lock.ENTITY + t for t in sorted(Base.metadata.tables)] + [ID_MAP_INDEXES]
    try:
        busy = lock.take(store, keys, mask_url(url))
        if busy is not None:
            raise lock.LockedError(f"{busy}: repair once it has finished")
        try:
            loader.begin()
            restore(loader, store, sorted(Base.metadata.tables))
            loader.commit()
        finally:
            lock.drop(store, keys)
    finally:
        loader.close()
