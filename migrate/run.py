"""A migration run: extract → shape → check → delta → load → reconcile.

Nothing is written until every source has been read and every feed shaped, so a bad
mapping or an unreadable source leaves the target untouched.  Then each entity is loaded
parents first, in batches, each batch one transaction.  A dry run takes the very same path
inside one transaction that is rolled back at the end.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from crmkit.errors import MappingError, ReconcileError
from crmkit.schema.target import entities
from migrate import delta
from migrate.check import KeyMap, check
from migrate.extract import ROW, Extracted, extract, mask_url
from migrate.fields import ERRORS, KEY, WARNINGS, Shaped, ref_col, shape
from migrate.load import Loader, open_loader, q
from migrate.mapping import FieldSpec, Mapping, entity_order, load_mapping
from crmkit.schema.versions import ensure_schema

Progress = Callable[[str, int, int], None]


@dataclass
class FeedCounts:
    """Outcomes of one feed.  ``extracted`` must equal the sum of the others."""

    entity: str
    source: str
    extracted: int = 0
    filtered: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    rejected: int = 0
    warnings: int = 0

    @property
    def accounted(self) -> int:
        return self.filtered + self.inserted + self.updated + self.unchanged + self.merged + self.rejected


@dataclass
class SourceInfo:
    name: str
    kind: str
    rows: int
    blank_rows: int = 0
    encoding: str | None = None
    detected: bool = False


@dataclass
class RunResult:
    run_id: int | None
    status: str  # succeeded | rejects_over_threshold | failed
    dry_run: bool
    mapping: str
    mapping_hash: str
    target: str
    started_at: str
    finished_at: str = ""
    max_rejects: str = "0"
    sources: list[SourceInfo] = field(default_factory=list)
    counts: list[FeedCounts] = field(default_factory=list)
    rejects: pl.DataFrame = field(default_factory=pl.DataFrame)
    report_dir: str | None = None
    message: str = ""

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "succeeded" else 1

    def totals(self) -> dict[str, int]:
        keys = ("extracted", "filtered", "inserted", "updated", "unchanged", "merged", "rejected", "warnings")
        return {k: sum(getattr(c, k) for c in self.counts) for k in keys}

    def to_json(self) -> dict[str, object]:
        per_entity: dict[str, dict[str, int]] = {}
        for c in self.counts:
            agg = per_entity.setdefault(c.entity, {k: 0 for k in ("extracted", "filtered", "inserted", "updated",
                                                                  "unchanged", "merged", "rejected", "warnings")})
            for k in agg:
                agg[k] += getattr(c, k)
        return {
            "run_id": self.run_id, "status": self.status, "dry_run": self.dry_run,
            "mapping": self.mapping, "mapping_hash": self.mapping_hash, "target": self.target,
            "started_at": self.started_at, "finished_at": self.finished_at, "max_rejects": self.max_rejects,
            "entities": per_entity,
            "feeds": [{**asdict(c)} for c in self.counts],
            "sources": [asdict(s) for s in self.sources],
            "totals": self.totals(), "report_dir": self.report_dir, "message": self.message,
        }


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def over_threshold(rejected: int, extracted: int, limit: str) -> bool:
    """``limit`` is a count (``10``) or a share of extracted rows (``0.5%``)."""
    text = str(limit).strip()
    if text.endswith("%"):
        return extracted > 0 and rejected * 100 > float(text[:-1]) * extracted
    return rejected > int(text)


def parse_threshold(limit: str | int | None) -> str:
    text = "0" if limit is None else str(limit).strip()
    try:
        value = float(text[:-1]) if text.endswith("%") else int(text)
    except ValueError:
        raise MappingError(f"max rejects '{text}' is neither a count (10) nor a percentage (0.5%)") from None
    if value < 0:
        raise MappingError(f"max rejects '{text}' is negative")
    return text


# --- preparation: everything that can fail before a write -----------------------------


@dataclass
class Prepared:
    mapping: Mapping
    extracted: dict[str, Extracted]
    shaped: dict[str, list[Shaped]]  # entity -> one per feed


def prepare(mapping: Mapping) -> Prepared:
    """Read every source the mapping uses and shape every feed.  Writes nothing."""
    used = {f.source for feeds in mapping.entities.values() for f in feeds}
    extracted = {name: extract(name, mapping.sources[name]) for name in mapping.sources if name in used}
    targets = entities()
    shaped: dict[str, list[Shaped]] = {}
    for ename in entity_order(mapping):
        feeds = mapping.entities[ename]
        shaped[ename] = [
            shape(feed, targets[ename], extracted[feed.source], _where(mapping, ename, i, len(feeds)))
            for i, feed in enumerate(feeds)
        ]
    for ename, feeds in mapping.entities.items():
        for feed in feeds:
            for fname, spec in feed.fields.items():
                if spec.ref:
                    ref_source(mapping, spec, f"{_where(mapping, ename, 0, 1)}.fields.{fname}")
    return Prepared(mapping, extracted, shaped)


def _where(m: Mapping, entity: str, i: int, n: int) -> str:
    return f"{m.path}: entities.{entity}" + (f"[{i}]" if n > 1 else "")


def ref_source(m: Mapping, spec: FieldSpec, where: str) -> str:
    """The source whose legacy keys a reference uses."""
    if spec.source:
        return spec.source
    assert spec.ref is not None
    feeds = m.entities.get(spec.ref, [])
    if len(feeds) == 1:
        return feeds[0].source
    raise MappingError(
        f"{where}: {spec.ref} has {'several feeds' if feeds else 'no feed in this mapping'}: "
        f"say whose legacy keys these are with source: NAME"
    )


# --- the run ----------------------------------------------------------------------


@dataclass
class Options:
    target: str = "sqlite:///crm.db"
    dry_run: bool = False
    batch_size: int = 50_000
    max_rejects: str | None = None
    operator: str | None = None
    progress: Progress | None = None


def run(mapping_path: str | Path, options: Options) -> RunResult:
    """Run a mapping against a target.  Raises CrmkitError subclasses for user errors."""
    mapping = load_mapping(mapping_path)
    limit = parse_threshold(options.max_rejects if options.max_rejects is not None else mapping.max_rejects)
    prepared = prepare(mapping)
    ensure_schema(options.target)
    loader = open_loader(options.target)
    result = RunResult(
        run_id=None, status="running", dry_run=options.dry_run, mapping=mapping.name,
        mapping_hash=mapping.content_hash, target=mask_url(options.target),
        started_at=now().isoformat(timespec="seconds"), max_rejects=limit,
        sources=[SourceInfo(n, mapping.sources[n].kind, e.frame.height, e.blank_rows, e.encoding, e.detected)
                 for n, e in prepared.extracted.items()],
    )
    try:
        _Runner(prepared, loader, options, result).go()
    finally:
        loader.close()
    return result


class _Runner:
    def __init__(self, prepared: Prepared, loader: Loader, options: Options, result: RunResult):
        self.p, self.loader, self.opt, self.result = prepared, loader, options, result
        self.keymaps: dict[tuple[str, str], KeyMap] = {}
        self.rejects: list[pl.DataFrame] = []
        self.dry = options.dry_run

    # transactions: one per batch for a real run, one for the whole of a dry run
    def _begin(self) -> None:
        if not self.dry:
            self.loader.begin()

    def _commit(self) -> None:
        if not self.dry:
            self.loader.commit()

    def go(self) -> None:
        r = self.result
        if self.dry:
            self.loader.begin()
        try:
            r.run_id = self._open_run()
            for ename, feeds in self.p.shaped.items():
                for shaped in feeds:
                    r.counts.append(self._feed(shaped))
            self._reconcile()
            r.rejects = pl.concat(self.rejects) if self.rejects else _empty_rejects()
            total = r.totals()
            r.status = "rejects_over_threshold" if over_threshold(
                total["rejected"], total["extracted"], r.max_rejects) else "succeeded"
            r.finished_at = now().isoformat(timespec="seconds")
            self._close_run()
        except BaseException as exc:
            if self.dry:
                self.loader.rollback()
            else:
                self._abandon(exc)
            raise
        if self.dry:
            self.loader.rollback()

    def _open_run(self) -> int:
        r = self.result
        self._begin()
        run_id = self.loader.scalar(
            "INSERT INTO crmkit_runs (kind, mapping_name, mapping_hash, target, operator, started_at, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            ("dry_run" if self.dry else "run", r.mapping, r.mapping_hash, r.target,
             self.opt.operator or _os_user(), r.started_at.replace("T", " "), "running"),
        )
        self._commit()
        return int(run_id)

    def _close_run(self) -> None:
        r = self.result
        self._begin()
        self.loader.execute(
            "UPDATE crmkit_runs SET finished_at = ?, status = ?, counts_json = ? WHERE id = ?",
            (r.finished_at.replace("T", " "), r.status, json.dumps(r.to_json()["entities"]), r.run_id),
        )
        self._commit()

    def _abandon(self, exc: BaseException) -> None:
        """A real run that died: roll back the open batch, mark the run failed."""
        try:
            self.loader.rollback()
        except Exception:
            pass
        if self.result.run_id is None:
            return
        try:
            self.loader.execute(
                "UPDATE crmkit_runs SET finished_at = ?, status = 'failed', message = ? WHERE id = ?",
                (now().isoformat(sep=" ", timespec="seconds"), str(exc).splitlines()[0][:500] if str(exc) else
                 type(exc).__name__, self.result.run_id),
            )
        except Exception:
            pass

    # --- one feed ----------------------------------------------------------------

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
                entity, source, ids.with_columns(pl.col("target_id").cast(pl.Int64)),
                pl.DataFrame(schema={"legacy_key": pl.String}),
            )
        return self.keymaps[(entity, source)]

    def _feed(self, shaped: Shaped) -> FeedCounts:
        counts = FeedCounts(shaped.entity, shaped.source,
                            extracted=self.p.extracted[shaped.source].frame.height, filtered=shaped.filtered)
        checked = check(shaped, self._parents(shaped))
        bad_mask = pl.col(ERRORS).list.len() > 0
        ok = checked.filter(~bad_mask)
        bad = checked.filter(bad_mask)
        value_fields = [f.name for f in shaped.fields]
        ok = delta.with_row_hash(ok, value_fields)
        before = delta.existing(self.loader, shaped.entity, shaped.source)
        d = delta.classify(ok, before)
        counts.unchanged = d.unchanged.height
        counts.warnings = int(ok.select(pl.col(WARNINGS).list.len().gt(0).sum()).item())
        inserted = self._insert(shaped, d.inserts, value_fields, counts)
        self._update(shaped, d.updates, value_fields, counts)
        self._reject(shaped, bad, counts)
        self.keymaps[(shaped.entity, shaped.source)] = KeyMap(
            shaped.entity, shaped.source,
            pl.concat([before.select("legacy_key", "target_id"), inserted]),
            bad.select(pl.col(KEY).alias("legacy_key")).drop_nulls(),
        )
        return counts

    def _progress(self, shaped: Shaped, done: int, total: int) -> None:
        if self.opt.progress:
            self.opt.progress(f"{shaped.entity} ← {shaped.source}", done, total)

    def _insert(self, shaped: Shaped, rows: pl.DataFrame, fields: list[str], counts: FeedCounts) -> pl.DataFrame:
        table = shaped.entity
        run_id = self.result.run_id
        defaults = [pl.lit(f.default).alias(f.name) for f in entities()[table].fields.values()
                    if f.default is not None and f.name not in fields]
        out = []
        total = rows.height
        for start in range(0, total, self.opt.batch_size):
            batch = rows.slice(start, self.opt.batch_size)
            self._begin()
            ids = self.loader.next_ids(table, batch.height)
            batch = batch.with_columns(ids.alias("id"))
            entity_rows = batch.select(
                "id", pl.lit(shaped.source).alias("source_name"), pl.col(KEY).alias("legacy_key"),
                delta.HASH, pl.lit(run_id).alias("run_id"), *fields, *defaults,
            )
            self.loader.append(table, entity_rows)
            id_rows = batch.select(
                pl.lit(table).alias("entity"), pl.lit(shaped.source).alias("source_name"),
                pl.col(KEY).alias("legacy_key"), pl.col("id").alias("target_id"), pl.lit(run_id).alias("run_id"),
            )
            self.loader.append("crmkit_id_map", id_rows)
            self._commit()
            counts.inserted += batch.height
            out.append(batch.select(pl.col(KEY).alias("legacy_key"), pl.col("id").alias("target_id")))
            self._progress(shaped, start + batch.height, total)
        return pl.concat(out) if out else pl.DataFrame(schema={"legacy_key": pl.String, "target_id": pl.Int64})

    def _update(self, shaped: Shaped, rows: pl.DataFrame, fields: list[str], counts: FeedCounts) -> None:
        for start in range(0, rows.height, self.opt.batch_size):
            batch = rows.slice(start, self.opt.batch_size)
            self._begin()
            self.loader.update(shaped.entity, batch.select(
                pl.col("target_id").alias("id"), delta.HASH, pl.lit(self.result.run_id).alias("run_id"), *fields))
            self._commit()
            counts.updated += batch.height

    def _reject(self, shaped: Shaped, bad: pl.DataFrame, counts: FeedCounts) -> None:
        counts.rejected = bad.height
        if bad.height == 0:
            return
        raw_cols = [c for c in shaped.raw.columns if c != ROW]
        raw = shaped.raw.select(ROW, pl.struct(raw_cols).struct.json_encode().alias("raw_json"))
        rows = bad.select(ROW, KEY, ERRORS).join(raw, on=ROW, how="left", maintain_order="left").select(
            pl.lit(self.result.run_id).alias("run_id"), pl.lit(shaped.entity).alias("entity"),
            pl.lit(shaped.source).alias("source_name"), pl.col(ROW).alias("row_number"),
            pl.col(KEY).alias("legacy_key"), pl.col(ERRORS).list.join("; ").alias("reasons"), "raw_json",
        )
        self._begin()
        self.loader.append("crmkit_rejects", rows)
        self._commit()
        self.rejects.append(rows.drop("run_id"))

    # --- reconciliation ---------------------------------------------------------------

    def _reconcile(self) -> None:
        """Outcomes must add up to the rows extracted, and the id map must agree."""
        for c in self.result.counts:
            if c.accounted != c.extracted:
                raise ReconcileError(
                    f"{c.entity} from {c.source}: {c.extracted} rows extracted but {c.accounted} accounted for "
                    f"({c.filtered} filtered, {c.inserted} inserted, {c.updated} updated, {c.unchanged} unchanged, "
                    f"{c.merged} merged, {c.rejected} rejected)"
                )
        for (entity, source), km in self.keymaps.items():
            in_map = self.loader.scalar(
                "SELECT count(*) FROM crmkit_id_map WHERE entity = ? AND source_name = ?", (entity, source))
            if int(in_map or 0) != km.ids.height:
                raise ReconcileError(
                    f"{entity} from {source}: the id map holds {in_map} keys, the run expected {km.ids.height}")


def _empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema={"entity": pl.String, "source_name": pl.String, "row_number": pl.Int64,
                                "legacy_key": pl.String, "reasons": pl.String, "raw_json": pl.String})


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
