"""Write one feed's outcome to the target, batch by batch: insert, update, reject, vanish.

Each batch is one transaction with its checkpoint, so a run that dies resumes after its
last committed batch.  A dry run takes the very same path inside one transaction that the
orchestrator rolls back at the end.  The bulk path (pipeline/bulk.py) reuses
:meth:`Writer.insert` with its companion connections.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from functools import partial

import polars as pl

from crmkit.csvout import MAX_STORED, STORED_TRUNCATED, capped_text
from crmkit.db.background import Background
from crmkit.db.loader import Loader
from crmkit.db.sql import q
from crmkit.migrate.fields import ERRORS, KEY, Shaped
from crmkit.migrate.pipeline import delta
from crmkit.migrate.pipeline.result import FeedCounts, Options, RunResult
from crmkit.migrate.safety.hooks import FaultPoint
from crmkit.migrate.safety.store import RunStore
from crmkit.migrate.sources import ROW
from crmkit.schema.models import LEGACY_KEY_LENGTH
from crmkit.schema.target import entities


class Writer:
    """Writes on ``loader`` for the run ``result`` describes (its run id set once opened)."""

    def __init__(self, loader: Loader, options: Options, result: RunResult) -> None:
        self.loader, self.opt, self.result = loader, options, result
        self.store = RunStore(loader)
        self.hooks = options.hooks
        self.dry = options.dry_run
        self.rejects: list[pl.DataFrame] = []

    @property
    def run_id(self) -> int:
        assert self.result.run_id is not None
        return self.result.run_id

    # transactions: one per batch for a real run, one for the whole of a dry run
    def begin(self) -> None:
        if not self.dry:
            self.loader.begin()

    def commit(self, where: FaultPoint) -> None:
        self.hooks.point(where, self.loader)
        if not self.dry:
            self.loader.commit()

    def checkpoint(self, shaped: Shaped, phase: str, batch_no: int, rows: int, loader: Loader | None = None) -> None:
        if self.opt.safety:
            store = self.store if loader is None else RunStore(loader)
            store.checkpoint(self.run_id, shaped.entity, shaped.source, phase, batch_no, rows)

    def next_batch_no(self, shaped: Shaped, phase: str) -> int:
        return self.store.next_batch_no(self.run_id, shaped.entity, shaped.source, phase)

    def batches(self, rows: pl.DataFrame) -> list[pl.DataFrame]:
        return [rows.slice(s, self.opt.batch_size) for s in range(0, rows.height, self.opt.batch_size)]

    def progress(self, shaped: Shaped, done: int, total: int) -> None:
        if self.opt.progress:
            self.opt.progress(f"{shaped.entity} ← {shaped.source}", done, total)

    # --- inserts --------------------------------------------------------------------

    def insert(
        self,
        shaped: Shaped,
        rows: pl.DataFrame,
        fields: list[str],
        counts: FeedCounts,
        side: Background | None = None,
        stream: Background | None = None,
    ) -> pl.DataFrame:
        """Insert ``rows`` in batches, each in its own transaction with its checkpoint; returns
        their legacy_key → target_id.  With ``side``, each committed batch's id-map entries are
        written there; with ``stream``, every other batch is written on that connection (its ids
        are reserved here first, in one block, so that neither connection waits on the other's
        lock of the table)."""
        table = shaped.entity
        defaults = [
            pl.lit(f.default).alias(f.name)
            for f in entities()[table].fields.values()
            if f.default is not None and f.name not in fields
        ]
        out = []
        batch_no = self.next_batch_no(shaped, "insert") if rows.height else 0
        ids = None
        if stream is not None and rows.height:
            self.begin()
            ids = self.loader.next_ids(table, rows.height)
            self.commit("insert.ids")
        for i, batch in enumerate(self.batches(rows)):
            for background in (stream, side):
                if background is not None:
                    background.raise_error()  # a connection lost there: no more batches here
            if ids is None:
                self.begin()
                batch = batch.with_columns(self.loader.next_ids(table, batch.height).alias("id"))
            else:
                batch = batch.with_columns(ids.slice(i * self.opt.batch_size, batch.height).alias("id"))
            frame = batch.select(
                "id",
                pl.lit(shaped.source).alias("source_name"),
                pl.col(KEY).alias("legacy_key"),
                delta.HASH,
                pl.lit(self.run_id).alias("run_id"),
                *fields,
                *defaults,
            )
            keys = batch.select(pl.col(KEY).alias("legacy_key"), pl.col("id").alias("target_id"))
            committed = self._put_batch(shaped, frame, batch_no + i, i, ids is not None, side, stream)
            if side is not None:
                # only committed rows: the id map never names a row that is not there.  Queued in
                # the batches' order (a sorted id map builds its key in half the time)
                entries = keys.select(
                    pl.lit(table).alias("entity"),
                    pl.lit(shaped.source).alias("source_name"),
                    "legacy_key",
                    "target_id",
                    pl.lit(self.run_id).alias("run_id"),
                )
                side.submit(partial(_map_when_committed, committed, entries))
            counts.inserted += batch.height
            out.append(keys)
            self.progress(shaped, counts.inserted, rows.height)
        if stream is not None:
            stream.close()  # its batches committed, or its error raised here
        return pl.concat(out) if out else pl.DataFrame(schema={"legacy_key": pl.String, "target_id": pl.Int64})

    def _put_batch(
        self,
        shaped: Shaped,
        frame: pl.DataFrame,
        batch_no: int,
        i: int,
        reserved: bool,
        side: Background | None,
        stream: Background | None,
    ) -> Future[None] | None:
        """Write the ``i``-th batch: every other one on ``stream`` (its commit a future), the
        rest on this run's connection (committed when this returns)."""
        if stream is not None and i % 2:
            return stream.submit(
                self._write_batch(shaped, frame, batch_no, own=False),
                then=partial(self.hooks.point, "insert.after_commit", stream.loader),
            )
        if reserved:
            self.begin()
        self._write_batch(shaped, frame, batch_no, own=True, in_db_id_map=side is None)(self.loader)
        return None

    def _write_batch(
        self, shaped: Shaped, frame: pl.DataFrame, batch_no: int, own: bool, in_db_id_map: bool = False
    ) -> Callable[[Loader], None]:
        """One batch's rows and checkpoint on ``loader``; committed here when ``own`` (on this
        run's connection), else by the :class:`Background` that runs it."""

        def write(loader: Loader) -> None:
            table = shaped.entity
            self.hooks.point("insert.before_batch", loader)
            loader.append(table, frame)
            self.hooks.point("insert.after_rows", loader)
            if in_db_id_map:
                # the batch's id-map entries copied inside the database from the rows just written
                # (their ids are one block): no second bulk transfer of the batch
                loader.execute(
                    f"INSERT INTO crmkit_id_map (entity, source_name, legacy_key, target_id, run_id) "
                    f"SELECT ?, source_name, legacy_key, id, run_id FROM {q(table)} WHERE id BETWEEN ? AND ?",
                    (table, frame["id"][0], frame["id"][-1]),
                )
            self.hooks.point("insert.after_idmap", loader)
            self.checkpoint(shaped, "insert", batch_no, frame.height, loader)
            self.hooks.point("insert.before_commit", loader)
            if own and not self.dry:
                loader.commit()
            if own:
                self.hooks.point("insert.after_commit", loader)

        return write

    # --- updates, rejects, vanished rows ---------------------------------------------

    def update(self, shaped: Shaped, rows: pl.DataFrame, fields: list[str], counts: FeedCounts) -> None:
        batch_no = self.next_batch_no(shaped, "update") if rows.height else 0
        for i, batch in enumerate(self.batches(rows)):
            self.begin()
            self._write_updates(
                shaped.entity,
                batch.select(pl.col("target_id").alias("id"), delta.HASH, pl.lit(self.run_id).alias("run_id"), *fields),
            )
            self.checkpoint(shaped, "update", batch_no + i, batch.height)
            self.commit("update.before_commit")
            counts.updated += batch.height

    def _write_updates(self, entity: str, frame: pl.DataFrame) -> None:
        """Keep the rows' before-images for rollback, then update them (one transaction, set-based)."""
        stage = self.loader.stage(entity, frame)
        if self.opt.safety:
            cols = [c.name for c in delta.entity_columns(entity) if c.name != "id"]
            listed = ", ".join(q(c) for c in cols)
            self.loader.execute(
                f"INSERT INTO {q('crmkit_before_' + entity)} (before_run_id, target_id, {listed}) "
                f"SELECT ?, t.id, {', '.join('t.' + q(c) for c in cols)} FROM {q(entity)} t "
                f"WHERE t.id IN (SELECT id FROM {q(stage)})",
                (self.run_id,),
            )
            self.hooks.point("update.after_images", self.loader)
        self.loader.update_from(entity, stage, frame.columns)
        self.loader.execute(f"DROP TABLE {q(stage)}")

    def reject(self, shaped: Shaped, bad: pl.DataFrame, counts: FeedCounts) -> None:
        counts.rejected = bad.height
        raw_cols = [c for c in shaped.raw.columns if c != ROW]
        # the raw rows of the rejected rows only: picked out before the join, encoded after it
        raw = shaped.raw.filter(pl.col(ROW).is_in(bad.get_column(ROW).implode()))
        rows = (
            bad.select(ROW, KEY, ERRORS)
            .join(raw, on=ROW, how="left", maintain_order="left")
            .select(
                pl.lit(self.run_id).alias("run_id"),
                pl.lit(shaped.entity).alias("entity"),
                pl.lit(shaped.source).alias("source_name"),
                pl.col(ROW).alias("row_number"),
                capped_text(pl.col(KEY), LEGACY_KEY_LENGTH, "…").alias("legacy_key"),
                capped_text(pl.col(ERRORS).list.join("; "), MAX_STORED, STORED_TRUNCATED).alias("reasons"),
                pl.struct(
                    capped_text(pl.col(c), MAX_STORED, STORED_TRUNCATED).alias(c)
                    if raw.schema[c] == pl.String
                    else pl.col(c)
                    for c in raw_cols
                )
                .struct.json_encode()
                .alias("raw_json"),
            )
        )
        self.begin()
        self.loader.execute(
            "DELETE FROM crmkit_rejects WHERE run_id = ? AND entity = ? AND source_name = ?",
            (self.run_id, shaped.entity, shaped.source),
        )  # a resume writes them again
        self.loader.append("crmkit_rejects", rows)
        self.commit("reject.before_commit")
        self.rejects.append(rows.drop("run_id"))

    def vanished(self, shaped: Shaped, before: pl.DataFrame, deactivate: bool, counts: FeedCounts) -> None:
        if before.height == 0:  # a first load: nothing was there to vanish
            counts.vanished = 0
            return
        gone = before.filter(~pl.col("legacy_key").is_in(shaped.all_keys.implode()))
        counts.vanished = gone.height
        if not deactivate or gone.height == 0:
            return
        active = gone.filter(pl.col("active").fill_null(True) | (pl.col("written_by") == self.run_id))
        todo = active.filter(pl.col("written_by") != self.run_id)
        counts.deactivated = active.height
        if todo.height:
            self.begin()
            self._write_updates(
                shaped.entity,
                todo.select(
                    pl.col("target_id").alias("id"), pl.lit(False).alias("active"), pl.lit(self.run_id).alias("run_id")
                ),
            )
            self.commit("vanish.before_commit")

    def all_rejects(self) -> pl.DataFrame:
        """Every feed's rejects so far, as RunResult.rejects holds them."""
        if self.rejects:
            return pl.concat(self.rejects)
        return pl.DataFrame(
            schema={
                "entity": pl.String,
                "source_name": pl.String,
                "row_number": pl.Int64,
                "legacy_key": pl.String,
                "reasons": pl.String,
                "raw_json": pl.String,
            }
        )


def _map_when_committed(committed: Future[None] | None, entries: pl.DataFrame, loader: Loader) -> None:
    """Append a bulk insert's id-map ``entries`` once the batch they name has committed (on the
    run's own connection: already; on a second one: when ``committed`` says so, or its error)."""
    if committed is not None:
        committed.result()
    loader.append("crmkit_id_map", entries)
