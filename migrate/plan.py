"""What a run would do, before anything is written.

``plan`` reads every source and shapes every feed (the same code as a run), then reports:
sources and their row counts, source columns nothing reads, target fields nothing fills,
a few transformed sample rows, and references that will not resolve — keys pointing at
rows missing from the parent's source (missing parents) and counts of rows so affected
(orphans).  When a target is given, keys already in its id map count as resolvable.
``issues`` lists the first rows a run would reject or load with a warning, and why: the
run's own check (keys, required fields, references) over the shaped rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from crmkit.migrate.fields import ERRORS, KEY, WARNINGS, Shaped, ref_col
from crmkit.migrate.mapping import load_mapping
from crmkit.migrate.pipeline.check import OUT_OF_SCOPE, KeyMap, check
from crmkit.migrate.pipeline.prepare import Prepared, prepare, ref_source
from crmkit.migrate.sources import ROW
from crmkit.schema.target import entities


@dataclass
class FeedPlan:
    entity: str
    source: str
    rows: int
    in_scope: int
    unmapped_columns: list[str]
    unfilled_fields: list[str]
    failing_rows: int  # rows a transform or cast already fails on
    sample: list[dict[str, object]]
    unresolved: dict[str, dict[str, object]] = field(default_factory=dict)  # field -> {orphans, missing}
    rejected_rows: int = 0  # rows a run would reject (any reason its check finds)
    warning_rows: int = 0  # rows a run would load with a warning (a value left empty)
    #: the first rows a run would reject or warn about: row, key, severity (error|warning), reasons
    issues: list[dict[str, object]] = field(default_factory=list)


@dataclass
class Plan:
    mapping: str
    sources: list[dict[str, object]]
    feeds: list[FeedPlan]

    def to_json(self) -> dict[str, object]:
        return {"mapping": self.mapping, "sources": self.sources, "feeds": [f.__dict__ for f in self.feeds]}


def plan(mapping_path: str, target: str | None = None, sample_rows: int = 3) -> Plan:
    mapping = load_mapping(mapping_path)
    prepared = prepare(mapping)
    known = (
        _target_keys(target)
        if target
        else pl.DataFrame(schema={"entity": pl.String, "source_name": pl.String, "legacy_key": pl.String})
    )
    sources: list[dict[str, object]] = [
        {
            "name": n,
            "kind": mapping.sources[n].kind,
            "rows": e.frame.height,
            "columns": len(e.columns),
            "blank_rows": e.blank_rows,
            "encoding": e.encoding,
            "encoding_detected": e.detected,
        }
        for n, e in prepared.extracted.items()
    ]
    feeds = []
    for ename, shaped_list in prepared.shaped.items():
        for i, shaped in enumerate(shaped_list):
            feeds.append(_feed_plan(prepared, ename, i, shaped, known, sample_rows))
    return Plan(mapping.name, sources, feeds)


def _feed_plan(p: Prepared, ename: str, i: int, shaped: Shaped, known: pl.DataFrame, n: int) -> FeedPlan:
    feed = p.mapping.entities[ename][i]
    ex = p.extracted[shaped.source]
    read = set(feed.key) | {c for spec in feed.fields.values() for c in spec.inputs}
    filled = {f.name for f in shaped.fields}
    frame = shaped.frame
    sample_cols = [ROW, KEY] + [f.name for f in shaped.fields if f.name not in shaped.refs]
    sample_cols += [ref_col(r) for r in shaped.refs] + [ERRORS]
    sample = (
        frame.head(n)
        .select(sample_cols)
        .with_columns(pl.col(ERRORS).list.join("; "), pl.exclude(ERRORS).cast(pl.String))
        .rows(named=True)
    )
    fp = FeedPlan(
        entity=ename,
        source=shaped.source,
        rows=ex.frame.height,
        in_scope=frame.height,
        unmapped_columns=[c for c in ex.columns if c not in read],
        unfilled_fields=[f for f in entities()[ename].fields if f not in filled],
        failing_rows=int(frame.select((pl.col(ERRORS).list.len() > 0).sum()).item()),
        sample=[{k.removeprefix("__ref_"): v for k, v in row.items()} for row in sample],
    )
    parents: dict[str, KeyMap] = {}
    for fname, spec in shaped.refs.items():
        assert spec.ref is not None
        src = ref_source(p.mapping, spec, f"entities.{ename}.fields.{fname}")
        parent_keys = _parent_keys(p, spec.ref, src, known)
        parents[fname] = _keymap(spec.ref, src, parent_keys)
        refs = frame.select(pl.col(ref_col(fname)).alias("k")).drop_nulls()
        orphans = refs.filter(~pl.col("k").is_in(parent_keys.implode()))
        fp.unresolved[fname] = {
            "parent": f"{spec.ref} ({src})",
            "orphans": orphans.height,
            "missing_parents": orphans["k"].unique(maintain_order=True).head(10).to_list(),
        }
    _issues(fp, check(shaped, parents), max(n, 5))
    return fp


def _keymap(entity: str, source: str, keys: pl.Series) -> KeyMap:
    """Keys a run could resolve, with stand-in ids (a plan writes nothing and knows no ids)."""
    ids = (
        pl.DataFrame({"legacy_key": keys})
        .with_row_index("target_id")
        .select("legacy_key", pl.col("target_id").cast(pl.Int64))
    )
    return KeyMap(entity, source, ids, pl.DataFrame(schema={"legacy_key": pl.String}))


def _issues(fp: FeedPlan, checked: pl.DataFrame, n: int) -> None:
    """Count the rows a run would reject or warn about; list the first ``n`` with their reasons."""
    checked = checked.filter(~pl.col(OUT_OF_SCOPE))
    bad = pl.col(ERRORS).list.len() > 0
    warned = ~bad & (pl.col(WARNINGS).list.len() > 0)
    fp.rejected_rows = int(checked.select(bad.sum()).item())
    fp.warning_rows = int(checked.select(warned.sum()).item())
    rows = checked.filter(bad | warned).head(n)
    fp.issues = rows.select(
        pl.col(ROW).alias("row"),
        pl.col(KEY).alias("key"),
        pl.when(bad).then(pl.lit("error")).otherwise(pl.lit("warning")).alias("severity"),
        pl.when(bad).then(pl.col(ERRORS)).otherwise(pl.col(WARNINGS)).list.join("; ").alias("reasons"),
    ).to_dicts()


def _parent_keys(p: Prepared, entity: str, source: str, known: pl.DataFrame) -> pl.Series:
    keys = [known.filter((pl.col("entity") == entity) & (pl.col("source_name") == source))["legacy_key"]]
    for shaped in p.shaped.get(entity, []):
        if shaped.source == source:
            keys.append(shaped.frame[KEY].drop_nulls())
    return pl.concat(keys).unique()


def _target_keys(target: str) -> pl.DataFrame:
    from crmkit.db.loader import open_loader
    from crmkit.schema import versions

    engine = versions.connect(target)
    fresh = versions.current(engine) is None
    engine.dispose()
    if fresh:
        return pl.DataFrame(schema={"entity": pl.String, "source_name": pl.String, "legacy_key": pl.String})
    loader = open_loader(target)
    try:
        return loader.query("SELECT entity, source_name, legacy_key FROM crmkit_id_map")
    finally:
        loader.close()
