"""Verify: re-read the sources and compare them with what the target holds, row by row.

For every feed, the sources are shaped and checked exactly as a run would (references
resolved through the target's id map); each loadable row's hash is compared with the hash
of the row the target holds for its legacy key, recomputed from the target's current values.
Mismatches: ``missing`` (the target has no row for a loadable source row), ``changed`` (the
target's values differ), ``unexpected`` (the target holds a row for a key the source no
longer has, or one the source now rejects).  This is what a team runs before sign-off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from crmkit.audit import operator_name
from crmkit.csvout import write_people_csv
from crmkit.db.loader import Loader, open_loader
from crmkit.db.sql import q
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


@dataclass
class VerifyResult:
    mapping: str
    target: str
    counts: list[dict[str, object]] = field(default_factory=list)
    mismatches: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={"entity": pl.String, "source_name": pl.String, "legacy_key": pl.String, "kind": pl.String}
        )
    )

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
        for _ename, feeds in prepared.shaped.items():
            for shaped in feeds:
                parts.append(_feed(loader, prepared, shaped, result))
        result.mismatches = pl.concat(parts) if parts else result.mismatches
        RunStore(loader).audit(
            action="verify",
            operator=operator_name(operator),
            target=result.target,
            outcome="clean" if result.ok else f"{result.mismatches.height} mismatches",
            mapping_name=mapping.name,
            mapping_hash=mapping.content_hash,
        )
    finally:
        loader.close()
    return result


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
        pl.lit(shaped.entity).alias("entity"), pl.lit(shaped.source).alias("source_name"), "legacy_key", "kind"
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
