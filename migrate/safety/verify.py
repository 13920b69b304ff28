"""Verify: re-read the sources and compare them with what the target holds, row by row.

For every feed, the sources are shaped and checked exactly as a run would (references
resolved through the target's id map); each loadable row's hash is compared with the hash
of the row the target holds for its legacy key, recomputed from the target's current values.
Mismatches: ``missing`` (the target has no row for a loadable source row), ``changed`` (the
target's values differ), ``unexpected`` (the target holds a row for a key the source no
longer has, or one the source now rejects), ``orphan`` (a migrated row of an entity the
mapping writes that no id-map entry names: nothing else would ever see it).  This is what a team runs before sign-off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from crmkit.audit import operator_name
from crmkit.csvout import write_people_csv
from crmkit.db.loader import Loader, open_loader
from crmkit.db.sql import is_db_error, q, write_refusal
from crmkit.db.url import mask_url
from crmkit.migrate.fields import ERRORS, KEY, Shaped
from crmkit.migrate.mapping import load_mapping
from crmkit.migrate.pipeline import delta, vanish
from crmkit.migrate.pipeline.check import OUT_OF_SCOPE, KeyMap, check
from crmkit.migrate.pipeline.prepare import Prepared, prepare, ref_source
from crmkit.migrate.safety.image import read_back
from crmkit.migrate.safety.store import RunStore
from crmkit.schema.target import TargetField
from crmkit.schema.versions import ensure_schema

#: a mismatch: ``target_id`` only for an ``orphan`` (a migrated row no id-map entry names)
MISMATCH_SCHEMA = {
    "entity": pl.String,
    "source_name": pl.String,
    "legacy_key": pl.String,
    "kind": pl.String,
    "target_id": pl.Int64,
}


@dataclass
class VerifyResult:
    mapping: str
    target: str
    counts: list[dict[str, object]] = field(default_factory=list)
    mismatches: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=MISMATCH_SCHEMA))
    #: said beside the result (e.g. why no audit entry was written)
    note: str | None = None

    #: target rows whose legacy row is gone, and what became of them (on_vanished): not mismatches
    #: when the mapping's choice was carried out
    vanished: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={"entity": pl.String, "source_name": pl.String, "legacy_key": pl.String, "outcome": pl.String}
        )
    )

    @property
    def ok(self) -> bool:
        return self.mismatches.height == 0

    def to_json(self) -> dict[str, object]:
        return {
            "mapping": self.mapping,
            "target": self.target,
            "ok": self.ok,
            "counts": self.counts,
            "mismatches": self.mismatches.to_dicts(),
            "vanished": self.vanished.to_dicts(),
            **({"note": self.note} if self.note else {}),
        }

    def write(self, directory: str | Path) -> None:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "verify.json").write_text(
            json.dumps(self.to_json(), indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
        write_people_csv(self.mismatches, out / "verify-mismatches.csv")


def verify(
    mapping_path: str | Path, target: str, operator: str | None = None, scope: dict[str, str] | None = None
) -> VerifyResult:
    """Compare the sources with the target; ``scope`` limits it to what rollout waves moved so far."""
    mapping = load_mapping(mapping_path)
    prepared = prepare(mapping, scope)
    ensure_schema(target)
    loader = open_loader(target)
    result = VerifyResult(mapping.name, mask_url(target))
    try:
        parts = []
        for ename, feeds in prepared.shaped.items():
            for shaped in feeds:
                parts.append(_feed(loader, prepared, shaped, result))
            parts.append(_orphans(loader, ename))
        result.mismatches = pl.concat(parts) if parts else result.mismatches
        _audit(loader, result, mapping.name, mapping.content_hash, operator)
    finally:
        loader.close()
    return result


def _audit(loader: Loader, result: VerifyResult, name: str, content_hash: str, operator: str | None) -> None:
    """The audit entry of the verify; a target that refuses writes (a read-only replica) is
    still verified, and the result says the entry is missing."""
    try:
        RunStore(loader).audit(
            action="verify",
            operator=operator_name(operator),
            target=result.target,
            outcome="clean" if result.ok else f"{result.mismatches.height} mismatches",
            mapping_name=name,
            mapping_hash=content_hash,
        )
    except Exception as exc:
        refusal = write_refusal(exc) if is_db_error(exc) else None
        if refusal is None:
            raise
        loader.rollback()
        result.note = f"not recorded in the audit trail: the target {refusal.split(':')[0]}"


def _keymap(loader: Loader, entity: str, source: str) -> KeyMap:
    ids = loader.query(
        "SELECT legacy_key, target_id FROM crmkit_id_map WHERE entity = ? AND source_name = ?", (entity, source)
    )
    if ids.height == 0:
        ids = pl.DataFrame(schema={"legacy_key": pl.String, "target_id": pl.Int64})
    return KeyMap(
        entity,
        source,
        ids.with_columns(pl.col("target_id").cast(pl.Int64)),
        pl.DataFrame(schema={"legacy_key": pl.String}),
    )


def _feed(loader: Loader, prepared: Prepared, shaped: Shaped, result: VerifyResult) -> pl.DataFrame:
    parents = {}
    for fname, spec in shaped.refs.items():
        assert spec.ref is not None
        parents[fname] = _keymap(loader, spec.ref, ref_source(prepared.mapping, spec, fname))
    for fname, spec in shaped.refs.items():  # rows whose parent the filter left out are not expected
        parent_feeds = prepared.shaped.get(spec.ref or "", [])
        src = parents[fname].source
        left = [s.left_out for s in parent_feeds if s.source == src]
        if left:
            parents[fname].left_out = pl.DataFrame({"legacy_key": pl.concat(left)}).filter(
                ~pl.col("legacy_key").is_in(parents[fname].ids["legacy_key"].implode())
            )
    checked = check(shaped, parents)
    checked = checked.filter(~pl.col(OUT_OF_SCOPE)).drop(OUT_OF_SCOPE)
    fields = [f.name for f in shaped.fields]
    expected = delta.with_row_hash(checked.filter(pl.col(ERRORS).list.len() == 0), fields)
    actual = _target_rows(loader, shaped.entity, shaped.source, shaped.fields)
    actual = delta.with_row_hash(actual, fields)
    exp = expected.select(pl.col(KEY).alias("legacy_key"), pl.col(delta.HASH).alias("expected"))
    act = actual.select("legacy_key", pl.col(delta.HASH).alias("actual"))
    both = exp.join(act, on="legacy_key", how="full", coalesce=True)
    kind = (
        pl.when(pl.col("actual").is_null())
        .then(pl.lit("missing"))
        .when(pl.col("expected").is_null())
        .then(pl.lit("unexpected"))
        .when(pl.col("expected") != pl.col("actual"))
        .then(pl.lit("changed"))
    )
    mism = both.with_columns(kind.alias("kind")).filter(pl.col("kind").is_not_null())
    gone = _vanished(loader, prepared, shaped, result)
    mism = mism.join(gone.filter(~pl.col("mismatch")), on="legacy_key", how="anti")  # as on_vanished says
    mism = mism.join(gone, on="legacy_key", how="left").select(
        "legacy_key", pl.coalesce("outcome", "kind").alias("kind")
    )
    result.counts.append(
        {
            "entity": shaped.entity,
            "source": shaped.source,
            "expected": expected.height,
            "in_target": actual.height,
            "mismatches": mism.height,
            "vanished": gone.height,
        }
    )
    return mism.select(
        pl.lit(shaped.entity).alias("entity"),
        pl.lit(shaped.source).alias("source_name"),
        "legacy_key",
        "kind",
        pl.lit(None, pl.Int64).alias("target_id"),
    ).sort("legacy_key")


def _vanished(loader: Loader, prepared: Prepared, shaped: Shaped, result: VerifyResult) -> pl.DataFrame:
    """The feed's vanished rows (legacy_key, outcome, mismatch), listed in ``result.vanished``."""
    feed = next(f for f in prepared.mapping.entities[shaped.entity] if f.source == shaped.source)
    gone = vanish.verify_outcomes(loader, shaped.entity, shaped.source, feed.on_vanished, shaped.all_keys)
    listed = gone.select(
        pl.lit(shaped.entity).alias("entity"), pl.lit(shaped.source).alias("source_name"), "legacy_key", "outcome"
    )
    result.vanished = pl.concat([result.vanished, listed.sort("legacy_key")])
    return gone


def _orphans(loader: Loader, entity: str) -> pl.DataFrame:
    """Rows of ``entity`` that a migration wrote (they carry a source name) but no id-map entry
    names: a run that died between its rows and their id map, or two runs that wrote the same
    keys.  Rows created in the CRM itself carry no source name and are not orphans."""
    frame = loader.query(
        f"SELECT e.source_name, e.legacy_key, e.id FROM {q(entity)} e WHERE e.source_name IS NOT NULL "
        f"AND NOT EXISTS (SELECT 1 FROM crmkit_id_map m WHERE m.entity = ? AND m.target_id = e.id) "
        f"ORDER BY e.id",
        (entity,),
    )
    if frame.height == 0:
        return pl.DataFrame(schema=MISMATCH_SCHEMA)
    return frame.select(
        pl.lit(entity).alias("entity"),
        pl.col("source_name").cast(pl.String),
        pl.col("legacy_key").cast(pl.String),
        pl.lit("orphan").alias("kind"),
        pl.col("id").cast(pl.Int64).alias("target_id"),
    )


def _target_rows(loader: Loader, entity: str, source: str, fields: list[TargetField]) -> pl.DataFrame:
    cols = ", ".join(f"e.{q(f.name)}" for f in fields)
    frame = loader.query(
        f"SELECT m.legacy_key, {cols} FROM crmkit_id_map m JOIN {q(entity)} e ON e.id = m.target_id "
        f"WHERE m.entity = ? AND m.source_name = ?",
        (entity, source),
    )
    if frame.height == 0:
        return pl.DataFrame(schema={"legacy_key": pl.String, **{f.name: f.dtype for f in fields}})
    return frame.with_columns([read_back(frame, f) for f in fields])
