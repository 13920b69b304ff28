"""The bulk-load path: inserts of at least ``Options.bulk_rows`` rows.

The secondary indexes of the table and the id map are dropped before and built after.  A
real bulk insert into PostgreSQL writes its id map on a second connection, a batch behind
the rows, and every other batch of rows on a third, so that the server works on both cores.
Until the id map is complete a marker checkpoint says so; a crash in between leaves the
marker, and the next run that writes the entity (it holds the entity's lock: no live run is
writing it), or ``crmkit db repair``, maps the committed rows' keys from their provenance
columns (:func:`restore`; it also builds any index the crash kept from rebuilding).
"""

from __future__ import annotations

import polars as pl

from crmkit.db.background import Background
from crmkit.db.loader import Loader
from crmkit.db.sql import q
from crmkit.migrate.fields import Shaped
from crmkit.migrate.pipeline.result import FeedCounts
from crmkit.migrate.pipeline.write import Writer
from crmkit.migrate.safety import lock
from crmkit.migrate.safety.store import RunStore

#: the lock a run holds while the id map's indexes are dropped for its bulk load (they are every run's)
ID_MAP_INDEXES = "indexes:crmkit_id_map"


def insert(w: Writer, shaped: Shaped, rows: pl.DataFrame, fields: list[str], counts: FeedCounts) -> pl.DataFrame:
    """:meth:`Writer.insert` with the indexes dropped and, where the target has companion
    connections, the id map and every other batch written on them.  The id map's indexes are
    every run's: they are dropped only by the run that holds their lock (another run's bulk
    load keeps them)."""
    own_id_map = w.dry or lock.take(w.store, [ID_MAP_INDEXES]) is None
    side = stream = None
    try:
        if not w.dry:
            side = _background(w)
            if side is not None:
                try:
                    stream = _background(w)
                except BaseException:
                    _close_quietly(side)
                    raise
        return _insert(w, shaped, rows, fields, counts, side, stream, own_id_map)
    finally:
        if own_id_map and not w.dry:
            lock.drop(w.store, [ID_MAP_INDEXES])


def _insert(
    w: Writer,
    shaped: Shaped,
    rows: pl.DataFrame,
    fields: list[str],
    counts: FeedCounts,
    side: Background | None,
    stream: Background | None,
    own_id_map: bool,
) -> pl.DataFrame:
    table = shaped.entity
    tables = [table, "crmkit_id_map"] if own_id_map else [table]
    w.begin()
    if side is not None:
        w.store.id_map_pending(w.run_id, table, shaped.source)
    for t in tables:
        w.loader.drop_indexes(t)
    w.commit("indexes.drop")
    if not w.dry:  # bulk mode is for batches committed one by one
        w.loader.bulk_mode(True)
    try:
        out = w.insert(shaped, rows, fields, counts, side, stream)
    except BaseException:
        for b in (stream, side):
            _close_quietly(b)  # the main connection's error is the one to report; the marker stays
        raise
    finally:
        w.loader.bulk_mode(False)
    w.begin()
    if side is not None:
        if own_id_map:
            side.submit(lambda loader: loader.create_indexes("crmkit_id_map"))
        w.loader.create_indexes(table)  # meanwhile, on this connection
        side.close()
        w.store.id_map_done(w.run_id, table, shaped.source)
    else:
        for t in tables:
            w.loader.create_indexes(t)
    w.commit("indexes.create")
    return out


def repair(w: Writer, tables: list[str]) -> None:
    """Build any secondary index of ``tables`` (and the id map, unless another run's bulk load
    holds its indexes) that a bulk load dropped and a crash kept from rebuilding, and the id
    map of any bulk insert into ``tables`` that a crash cut short.  The run holds the locks of
    ``tables``: no live run is writing them."""
    own_id_map = w.dry or lock.take(w.store, [ID_MAP_INDEXES]) is None
    try:
        w.begin()
        restore(w.loader, w.store, [*tables, "crmkit_id_map"] if own_id_map else tables)
        w.commit("indexes.repair")
    finally:
        if own_id_map and not w.dry:
            lock.drop(w.store, [ID_MAP_INDEXES])


def restore(loader: Loader, store: RunStore, tables: list[str]) -> None:
    """Inside the caller's transaction: the indexes and constraints of ``tables``, and the id
    map of the bulk inserts into them that a crash cut short (from the committed rows'
    provenance; of two rows with one legacy key, the first: verify reports the other)."""
    for table in tables:
        loader.create_indexes(table)
    for run_id, entity, source in store.pending_id_maps().iter_rows():
        if entity not in tables:
            continue
        loader.execute(
            f"INSERT INTO crmkit_id_map (entity, source_name, legacy_key, target_id, run_id) "
            f"SELECT ?, e.source_name, e.legacy_key, min(e.id), ? FROM {q(entity)} e "
            f"WHERE e.run_id = ? AND e.source_name = ? AND NOT EXISTS (SELECT 1 FROM crmkit_id_map m "
            f"WHERE m.entity = ? AND m.source_name = e.source_name AND m.legacy_key = e.legacy_key) "
            f"GROUP BY e.source_name, e.legacy_key",
            (entity, run_id, run_id, source, entity),
        )
        store.id_map_done(run_id, entity, source)


def _background(w: Writer) -> Background | None:
    """A :class:`Background` on a companion connection in bulk mode; None where the target
    has no companion (SQLite)."""
    companion = w.loader.companion()
    if companion is None:
        return None
    try:
        companion.bulk_mode(True)
    except BaseException:
        companion.close()
        raise
    return Background(companion)


def _close_quietly(background: Background | None) -> None:
    """Wait for ``background``'s jobs and close it, keeping quiet about its error: the caller
    is already reporting another one."""
    if background is not None:
        try:
            background.close()
        except Exception:
            pass
