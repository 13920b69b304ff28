"""One feed through the load: check its references, merge (dedupe), delta, then write.

:class:`Feeds` keeps what the feeds of a run share: the key maps (legacy key → target id)
their children resolve references through, and each feed's checked frame.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from crmkit.db.sql import q
from crmkit.migrate.fields import ERRORS, KEY, WARNINGS, Shaped, ref_col
from crmkit.migrate.mapping import Feed
from crmkit.migrate.pipeline import bulk, delta, vanish
from crmkit.migrate.pipeline.check import OUT_OF_SCOPE, KeyMap, check
from crmkit.migrate.pipeline.prepare import Prepared, ref_source
from crmkit.migrate.pipeline.result import FeedCounts
from crmkit.migrate.pipeline.write import Writer


class Feeds:
    def __init__(self, prepared: Prepared, writer: Writer, operator: str) -> None:
        self.p, self.w, self.operator = prepared, writer, operator
        self.loader = writer.loader
        self.keymaps: dict[tuple[str, str], KeyMap] = {}
        self._checks: dict[int, pl.DataFrame] = {}
        #: vanished rows of on_vanished: delete feeds, deleted once every feed has loaded
        self.vanished: list[vanish.Pending] = []

    def _parents(self, shaped: Shaped) -> dict[str, KeyMap]:
        out = {}
        for fname, spec in shaped.refs.items():
            src = ref_source(self.p.mapping, spec, f"entities.{shaped.entity}.fields.{fname}")
            assert spec.ref is not None
            out[fname] = self._keymap(spec.ref, src)
        return out

    def _keymap(self, entity: str, source: str) -> KeyMap:
        if (entity, source) not in self.keymaps:
            ids = self.loader.query(
                "SELECT legacy_key, target_id FROM crmkit_id_map WHERE entity = ? AND source_name = ?",
                (entity, source),
            )
            if ids.height == 0:
                ids = pl.DataFrame(schema={"legacy_key": pl.String, "target_id": pl.Int64})
            self.keymaps[(entity, source)] = KeyMap(
                entity,
                source,
                ids.with_columns(pl.col("target_id").cast(pl.Int64)),
                pl.DataFrame(schema={"legacy_key": pl.String}),
            )
        return self.keymaps[(entity, source)]

    def _checked(self, shaped: Shaped) -> pl.DataFrame:
        """References resolved and every reason collected (kept: a merge plan needs it first)."""
        key = id(shaped)
        if key not in self._checks:
            self._checks[key] = check(shaped, self._parents(shaped))
        return self._checks[key]

    # --- merges (the mapping's dedupe rules) ------------------------------------------

    def merge_plan(self, entity: str) -> Any:
        """When the mapping names dedupe rules for ``entity``: the merge of its loadable rows."""
        rules_path = self.p.mapping.dedupe.get(entity)
        if rules_path is None:
            return None
        from crmkit.dedupe import load_rules, merge_plan
        from crmkit.dedupe.store import target_decisions

        frames: list[pl.DataFrame] = []
        fields: dict[str, None] = {}
        for shaped in self.p.shaped[entity]:
            checked = self._checked(shaped)
            ok = checked.filter(~pl.col(OUT_OF_SCOPE) & (pl.col(ERRORS).list.len() == 0))
            fields.update({f.name: None for f in shaped.fields})
            frames.append(ok.select(pl.lit(shaped.source).alias("__source"), KEY, *(f.name for f in shaped.fields)))
        frame = pl.concat(frames, how="diagonal_relaxed")
        return merge_plan(frame, load_rules(rules_path), target_decisions(self.loader, entity), list(fields))

    def record_merges(self, entity: str, plan: Any) -> None:
        """Every merged legacy key into the id map, pointing at its golden row; merge lineage."""
        from crmkit.dedupe.merge import merged_keys
        from crmkit.dedupe.store import record_merges

        sources = [s.source for s in self.p.shaped[entity]]
        survivors = pl.concat(
            [
                self.keymaps[(entity, src)].ids.select(
                    pl.lit(src).alias("__source"), pl.col("legacy_key").alias(KEY), "target_id"
                )
                for src in sources
            ]
        )
        rows = merged_keys(plan, survivors).select(
            pl.lit(entity).alias("entity"),
            "source_name",
            "legacy_key",
            pl.col("target_id").cast(pl.Int64),
            pl.lit(self.w.run_id).alias("run_id"),
        )
        self.w.begin()
        if rows.height:
            stage = self.loader.stage("crmkit_id_map", rows)
            self.loader.execute(
                f"DELETE FROM crmkit_id_map WHERE EXISTS (SELECT 1 FROM {q(stage)} s WHERE s.entity = "
                f"crmkit_id_map.entity AND s.source_name = crmkit_id_map.source_name "
                f"AND s.legacy_key = crmkit_id_map.legacy_key)"
            )
            self.loader.execute(
                f"INSERT INTO crmkit_id_map (entity, source_name, legacy_key, target_id, run_id) "
                f"SELECT entity, source_name, legacy_key, target_id, run_id FROM {q(stage)}"
            )
            self.loader.execute(f"DROP TABLE {q(stage)}")
        record_merges(
            self.loader, entity, plan, survivors, self.w.run_id, self.p.mapping.dedupe[entity].stem, self.operator
        )
        self.w.commit("merge.before_commit")
        for src in sources:
            km = self.keymaps[(entity, src)]
            extra = rows.filter(pl.col("source_name") == src).select("legacy_key", "target_id")
            km.ids = pl.concat([km.ids.filter(~pl.col("legacy_key").is_in(extra["legacy_key"].implode())), extra])

    # --- one feed -------------------------------------------------------------------

    def load(self, shaped: Shaped, plan: Any = None) -> FeedCounts:
        """Check, merge, delta and write one feed; its counts."""
        self.w.hooks.point("feed.start", self.loader)
        feed_def = self._feed_def(shaped)
        counts = FeedCounts(
            shaped.entity,
            shaped.source,
            extracted=self.p.extracted[shaped.source].frame.height,
            filtered=shaped.filtered,
        )
        ok, bad = self._split(shaped, counts)
        if plan is not None:
            from crmkit.dedupe.merge import feed_rows

            ok, counts.merged = feed_rows(plan, shaped.source, ok)
        value_fields = [f.name for f in shaped.fields]
        deactivating = feed_def.on_vanished == "deactivate"
        if deactivating:
            ok = ok.with_columns(pl.lit(True).alias("active"))
            value_fields = [*value_fields, "active"] if "active" not in value_fields else value_fields
        # references enter the hash as the legacy keys they name, not as surrogate ids
        hashed = [ref_col(f) if f in shaped.refs else f for f in value_fields]
        ok = delta.with_row_hash(ok, hashed)
        before = delta.existing(self.loader, shaped.entity, shaped.source)
        d = delta.classify(ok, before, self.w.run_id)
        counts.unchanged = d.unchanged.height
        counts.inserted, counts.updated = d.done_inserts, d.done_updates
        if d.inserts.height >= self.w.opt.bulk_rows:
            inserted = bulk.insert(self.w, shaped, d.inserts, value_fields, counts)
        else:
            inserted = self.w.insert(shaped, d.inserts, value_fields, counts)
        self.w.update(shaped, d.updates, value_fields, counts)
        self.w.reject(shaped, bad, counts, warned=ok.filter(pl.col(WARNINGS).list.len() > 0))
        gone = self.w.vanished(shaped, before, feed_def.on_vanished, counts)
        if feed_def.on_vanished == "delete":
            self.vanished.append(vanish.Pending(shaped.entity, shaped.source, gone, counts))
        loaded = pl.concat([before.select("legacy_key", "target_id"), inserted])
        self.keymaps[(shaped.entity, shaped.source)] = KeyMap(
            shaped.entity,
            shaped.source,
            loaded,
            bad.select(pl.col(KEY).alias("legacy_key")).drop_nulls(),
            pl.DataFrame({"legacy_key": shaped.left_out}).filter(
                ~pl.col("legacy_key").is_in(loaded["legacy_key"].implode())
            ),
        )
        return counts

    def delete_vanished(self) -> None:
        """After every feed: delete the vanished rows of on_vanished: delete feeds (children
        first); the key maps forget the deleted keys."""
        self.w.delete_vanished(self.vanished)
        for p in self.vanished:
            km = self.keymaps[(p.entity, p.source)]
            km.ids = km.ids.filter(~pl.col("legacy_key").is_in(p.deleted.implode()))

    def _split(self, shaped: Shaped, counts: FeedCounts) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The checked rows to load and to reject; the out-of-scope ones counted as filtered."""
        checked = self._checked(shaped)
        # both masks computed once; each row lands in exactly one of filtered / ok / bad
        out = checked.get_column(OUT_OF_SCOPE)
        broken = checked.get_column(ERRORS).list.len() > 0
        counts.filtered += int(out.sum())
        checked = checked.drop(OUT_OF_SCOPE)
        if out.any() or broken.any():
            return checked.filter(~out & ~broken), checked.filter(~out & broken)
        return checked, checked.clear()

    def _feed_def(self, shaped: Shaped) -> Feed:
        return next(f for f in self.p.mapping.entities[shaped.entity] if f.source == shaped.source)
