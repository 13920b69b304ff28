"""A migration run: extract → shape → check → delta → load → reconcile.

Nothing is written until every source has been read and every feed shaped, so a bad
mapping or an unreadable source leaves the target untouched.  Then each entity is loaded
parents first, in batches, each batch one transaction.  A dry run takes the very same path
inside one transaction that is rolled back at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from crmkit.audit import now, operator_name
from crmkit.db.background import Background
from crmkit.db.loader import Loader, open_loader, preload_driver
from crmkit.db.sql import is_db_error, q
from crmkit.db.url import mask_url
from crmkit.errors import CrmkitError, MappingError, ReconcileError, TargetError
from crmkit.migrate import audit, delta, faults, lock
from crmkit.migrate.check import OUT_OF_SCOPE, KeyMap, check
from crmkit.migrate.fields import ERRORS, KEY, WARNINGS, Shaped, ref_col, shape
from crmkit.migrate.mapping import Feed, FieldSpec, Mapping, entity_order, load_mapping
from crmkit.migrate.sources import ROW, Extracted, extract
from crmkit.schema.target import entities
from crmkit.schema.versions import ensure_schema

Progress = Callable[[str, int, int], None]


#: a crmkit_checkpoints phase: a bulk insert's id map is being written beside it (see _Runner._insert)
ID_MAP_PENDING = "idmap-pending"
COUNT_KEYS = (
    "extracted",
    "filtered",
    "inserted",
    "updated",
    "unchanged",
    "merged",
    "rejected",
    "warnings",
    "vanished",
    "deactivated",
)


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
    vanished: int = 0  # rows an earlier run loaded whose legacy row is gone (not an outcome of this run)
    deactivated: int = 0  # of those, set inactive by this run (on_vanished: deactivate)

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
    resumed: bool = False
    validation: Any = None  # validate.migration.PreloadValidation, when the mapping has rules

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "succeeded" else 1

    def totals(self) -> dict[str, int]:
        return {k: sum(getattr(c, k) for c in self.counts) for k in COUNT_KEYS}

    def to_json(self) -> dict[str, object]:
        per_entity: dict[str, dict[str, int]] = {}
        for c in self.counts:
            agg = per_entity.setdefault(c.entity, {k: 0 for k in COUNT_KEYS})
            for k in agg:
                agg[k] += getattr(c, k)
        return {
            "run_id": self.run_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "mapping": self.mapping,
            "mapping_hash": self.mapping_hash,
            "target": self.target,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "max_rejects": self.max_rejects,
            "entities": per_entity,
            "feeds": [{**asdict(c)} for c in self.counts],
            "sources": [asdict(s) for s in self.sources],
            "totals": self.totals(),
            "report_dir": self.report_dir,
            "message": self.message,
            "resumed": self.resumed,
            "validation": self.validation.to_json() if self.validation is not None else None,
        }


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
    #: the sources' digest, computed on a thread of its own while the feeds are shaped
    _hashing: Future[str] | None = None

    @property
    def sources_hash(self) -> str:
        """A stable digest of every source's content, as read: a resume must find it unchanged."""
        if self._hashing is None:
            self._hashing = _hash_in_background(self.extracted)
        return self._hashing.result()


def _sources_digest(extracted: dict[str, Extracted]) -> str:
    digest = hashlib.sha256()
    for name in sorted(extracted):
        digest.update(name.encode() + b"\0" + _frame_digest(extracted[name].frame))
    return digest.hexdigest()


def _hash_in_background(extracted: dict[str, Extracted]) -> Future[str]:
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmkit-sources-hash")
    future = pool.submit(_sources_digest, dict(extracted))
    pool.shutdown(wait=False)
    return future


def _frame_digest(frame: pl.DataFrame) -> bytes:
    import polars_hash as plh

    cols = [pl.col(c).cast(pl.String).fill_null("\0") for c in frame.columns]
    if not cols:
        return b""
    hashed = frame.select(pl.concat_str(cols, separator="\x1f").alias("h")).select(plh.col("h").nchash.xxhash64())
    return hashlib.sha256(hashed["h"].to_numpy().tobytes() + ",".join(frame.columns).encode()).digest()


def prepare(mapping: Mapping, scope: dict[str, str] | None = None) -> Prepared:
    """Read every source the mapping uses and shape every feed.  Writes nothing.

    ``scope`` (a rollout wave's) maps entities to a SQL condition over their source columns;
    rows outside it, and the rows that refer to them, are out of scope (``filtered``).
    """
    scope = scope or {}
    unknown = set(scope) - set(mapping.entities)
    if unknown:
        raise MappingError(
            f"scope names entities the mapping {mapping.name} does not load: {', '.join(sorted(unknown))}"
        )
    used = {f.source for feeds in mapping.entities.values() for f in feeds}
    extracted = {name: extract(name, mapping.sources[name]) for name in mapping.sources if name in used}
    hashing = _hash_in_background(extracted)  # polars hashes without the GIL while the feeds are shaped
    targets = entities()
    shaped: dict[str, list[Shaped]] = {}
    for ename in entity_order(mapping):
        feeds = mapping.entities[ename]
        shaped[ename] = [
            shape(feed, targets[ename], extracted[feed.source], _where(mapping, ename, i, len(feeds)), scope.get(ename))
            for i, feed in enumerate(feeds)
        ]
    for ename, feeds in mapping.entities.items():
        for feed in feeds:
            for fname, spec in feed.fields.items():
                if spec.ref:
                    ref_source(mapping, spec, f"{_where(mapping, ename, 0, 1)}.fields.{fname}")
    return Prepared(mapping, extracted, shaped, hashing)


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
    #: True: resume the last unfinished run of the mapping (if any); an int: that run
    resume: bool | int = False
    #: with resume: when the mapping or sources changed, abandon the old run and start anew
    restart: bool = False
    #: checkpoints and before-images (turned off only to measure their cost)
    safety: bool = True
    #: a rollout wave's scope: entity -> SQL condition over its source columns
    scope: dict[str, str] | None = None
    #: load even when a validation gate of the mapping fails
    force: bool = False
    #: inserts of at least this many rows drop the secondary indexes and build them after
    #: (env CRMKIT_BULK_ROWS; the tests lower it to exercise that path on small data)
    bulk_rows: int = field(default_factory=lambda: int(os.environ.get("CRMKIT_BULK_ROWS", "200000")))


class ResumeError(CrmkitError):
    """The run asked to be resumed cannot be (changed mapping or sources, unknown run)."""


def run(mapping_path: str | Path, options: Options) -> RunResult:
    """Run a mapping against a target.  Raises CrmkitError subclasses for user errors."""
    mapping = load_mapping(mapping_path)
    limit = parse_threshold(options.max_rejects if options.max_rejects is not None else mapping.max_rejects)
    driver = preload_driver(options.target)
    try:
        prepared = prepare(mapping, options.scope)
    finally:
        driver.join()  # also on a bad source: no import left running while the process exits
    pre = _validate(mapping, prepared)
    result = RunResult(
        run_id=None,
        status="running",
        dry_run=options.dry_run,
        mapping=mapping.name,
        mapping_hash=mapping.content_hash,
        target=mask_url(options.target),
        started_at=now().isoformat(timespec="seconds"),
        max_rejects=limit,
        sources=[
            SourceInfo(n, mapping.sources[n].kind, e.frame.height, e.blank_rows, e.encoding, e.detected)
            for n, e in prepared.extracted.items()
        ],
        validation=pre,
    )
    if pre is not None and not pre.passed and not options.force:
        result.status = "gates_failed"
        result.finished_at = now().isoformat(timespec="seconds")
        result.message = (
            "nothing loaded: "
            + "; ".join(f"validation gate '{g.name}' {g.detail or 'failed'}" for g in pre.gates if not g.passed)
            + " (--force loads anyway)"
        )
        return result
    ensure_schema(options.target)
    loader = open_loader(options.target)
    try:
        if not options.dry_run:
            lock.acquire(loader, mapping.name)
        try:
            resume_id = _resumable(loader, prepared, options, result)
            _Runner(prepared, loader, options, result).go(resume_id)
        finally:
            if not options.dry_run:
                lock.release(loader, mapping.name)
    except CrmkitError:
        raise
    except Exception as exc:
        if is_db_error(exc):
            raise TargetError(
                f"target {result.target}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                f" — the run stopped after its last committed batch; run it again with --resume"
            ) from None
        raise
    finally:
        try:
            loader.close()
        except Exception:
            pass
    return result


def _validate(mapping: Mapping, prepared: Prepared) -> Any:
    """The mapping's validation rules over every shaped feed, before anything loads.

    Rows failing an ``error`` rule carry its reason into ``__errors`` (they will be rejected),
    ``warning`` rules into ``__warnings``.  Gates measured here cannot see rows that later
    fail to resolve a reference: those count against the run's own max_rejects.
    """
    if mapping.validate_ is None:
        return None
    from crmkit.validate.migration import merge_into_pipeline, validate_feeds

    pairs = [(e, sh) for e, feeds in prepared.shaped.items() for sh in feeds]
    pre = validate_feeds(mapping.validate_, [(e, sh.source, sh.frame) for e, sh in pairs])
    for (_, sh), fv in zip(pairs, pre.feeds):
        sh.frame = merge_into_pipeline(fv.result.checked)
    return pre


def _resumable(loader: Loader, p: Prepared, options: Options, result: RunResult) -> int | None:
    """The id of the run to resume, or None for a new run."""
    if options.dry_run or options.resume is False:
        return None
    runs = loader.query(
        "SELECT id, mapping_hash, sources_hash FROM crmkit_runs WHERE kind = 'run' AND mapping_name = ? "
        "AND status IN ('running', 'failed') ORDER BY id DESC",
        (p.mapping.name,),
    )
    if options.resume is not True:
        runs = runs.filter(pl.col("id") == int(options.resume))
        if runs.height == 0:
            raise ResumeError(
                f"run {options.resume} is not an unfinished run of mapping {p.mapping.name} "
                f"in {result.target} (see crmkit migrate history)"
            )
    if runs.height == 0:
        result.message = "no unfinished run to resume: started a new run"
        return None
    run_id, mapping_hash, sources_hash = runs.row(0)
    changed = [
        what
        for what, old, new in (
            ("the mapping", mapping_hash, p.mapping.content_hash),
            ("the sources", sources_hash, p.sources_hash),
        )
        if old != new
    ]
    if changed:
        if not options.restart:
            raise ResumeError(
                f"{' and '.join(changed)} changed since run {run_id} was interrupted: resuming would mix two "
                f"versions; run with --resume --restart to abandon run {run_id} and start over"
            )
        loader.begin()
        loader.execute("UPDATE crmkit_runs SET status = 'abandoned' WHERE id = ?", (run_id,))
        loader.commit()
        result.message = f"run {run_id} abandoned ({' and '.join(changed)} changed): started a new run"
        return None
    result.resumed = True
    return int(run_id)


class _Runner:
    def __init__(self, prepared: Prepared, loader: Loader, options: Options, result: RunResult):
        self.p, self.loader, self.opt, self.result = prepared, loader, options, result
        self.keymaps: dict[tuple[str, str], KeyMap] = {}
        self.rejects: list[pl.DataFrame] = []
        self.dry = options.dry_run
        self.operator = operator_name(options.operator)
        self._checks: dict[int, pl.DataFrame] = {}

    # transactions: one per batch for a real run, one for the whole of a dry run
    def _begin(self) -> None:
        if not self.dry:
            self.loader.begin()

    def _commit(self, where: str) -> None:
        faults.point(where, self.loader)
        if not self.dry:
            self.loader.commit()

    @property
    def run_id(self) -> int:
        assert self.result.run_id is not None
        return self.result.run_id

    def go(self, resume_id: int | None) -> None:
        r = self.result
        if self.dry:
            self.loader.begin()
        try:
            r.run_id = self._reopen_run(resume_id) if resume_id else self._open_run()
            self._repair_indexes()
            if not self.dry:
                self._audit("resume" if resume_id else "run", "started", detail=f"pid {os.getpid()}")
            faults.point("run.opened", self.loader)
            for entity, feeds in self.p.shaped.items():
                plan = self._merge_plan(entity)
                for shaped in feeds:
                    r.counts.append(self._feed(shaped, plan))
                if plan is not None:
                    self._record_merges(entity, plan)
            self._reconcile()
            r.rejects = pl.concat(self.rejects) if self.rejects else _empty_rejects()
            total = r.totals()
            r.status = (
                "rejects_over_threshold"
                if over_threshold(total["rejected"], total["extracted"], r.max_rejects)
                else "succeeded"
            )
            r.finished_at = now().isoformat(timespec="seconds")
            faults.point("run.before_close", self.loader)
            self._close_run()
        except BaseException as exc:
            if self.dry:
                self.loader.rollback()
            else:
                self._abandon(exc)
            raise
        if self.dry:
            self.loader.rollback()
        self._audit("dry_run" if self.dry else ("resume" if resume_id else "run"), r.status)

    def _audit(self, action: str, outcome: str, detail: str | None = None) -> None:
        r = self.result
        audit.record(
            self.loader,
            action=action,
            operator=self.operator,
            target=r.target,
            outcome=outcome,
            run_id=None if self.dry else r.run_id,
            mapping_name=r.mapping,
            mapping_hash=r.mapping_hash,
            detail=detail or (json.dumps(r.totals()) if r.counts else None),
        )

    def _open_run(self) -> int:
        r = self.result
        self._begin()
        run_id = self.loader.scalar(
            "INSERT INTO crmkit_runs (kind, mapping_name, mapping_hash, target, operator, started_at, status, "
            "sources_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                "dry_run" if self.dry else "run",
                r.mapping,
                r.mapping_hash,
                r.target,
                self.operator,
                r.started_at.replace("T", " "),
                "running",
                self.p.sources_hash,
            ),
        )
        if not self.dry:
            lock.set_run(self.loader, r.mapping, int(run_id))
        self._commit("run.open")
        return int(run_id)

    def _repair_indexes(self) -> None:
        """Build any secondary index a bulk load dropped and a crash kept from rebuilding, and
        the id map of any bulk insert that a crash cut short (see :meth:`_insert`)."""
        self._begin()
        for table in [*self.p.shaped, "crmkit_id_map"]:
            self.loader.create_indexes(table)
        pending = self.loader.query(
            "SELECT run_id, entity, source_name FROM crmkit_checkpoints WHERE phase = ?", (ID_MAP_PENDING,)
        )
        for run_id, entity, source in pending.iter_rows():
            # the rows the bulk insert committed carry their provenance: their keys map to themselves
            self.loader.execute(
                f"INSERT INTO crmkit_id_map (entity, source_name, legacy_key, target_id, run_id) "
                f"SELECT ?, e.source_name, e.legacy_key, e.id, ? FROM {q(entity)} e "
                f"WHERE e.run_id = ? AND e.source_name = ? AND NOT EXISTS (SELECT 1 FROM crmkit_id_map m "
                f"WHERE m.entity = ? AND m.source_name = e.source_name AND m.legacy_key = e.legacy_key)",
                (entity, run_id, run_id, source, entity),
            )
            self._id_map_done(run_id, entity, source)
        self._commit("indexes.repair")

    def _id_map_done(self, run_id: int, entity: str, source: str) -> None:
        self.loader.execute(
            "DELETE FROM crmkit_checkpoints WHERE run_id = ? AND entity = ? AND source_name = ? AND phase = ?",
            (run_id, entity, source, ID_MAP_PENDING),
        )

    def _reopen_run(self, run_id: int) -> int:
        self.loader.begin()
        self.loader.execute("UPDATE crmkit_runs SET status = 'running', message = NULL WHERE id = ?", (run_id,))
        lock.set_run(self.loader, self.result.mapping, run_id)
        self.loader.commit()
        return run_id

    def _close_run(self) -> None:
        r = self.result
        self._begin()
        self.loader.execute(
            "UPDATE crmkit_runs SET finished_at = ?, status = ?, counts_json = ? WHERE id = ?",
            (r.finished_at.replace("T", " "), r.status, json.dumps(r.to_json()["entities"]), r.run_id),
        )
        self._commit("run.close")

    def _abandon(self, exc: BaseException) -> None:
        """A real run that died: roll back the open batch, mark the run failed (best effort)."""
        try:
            self.loader.rollback()
        except Exception:
            pass
        if self.result.run_id is None:
            return
        message = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
        try:
            self.loader.execute(
                "UPDATE crmkit_runs SET finished_at = ?, status = 'failed', message = ? WHERE id = ?",
                (now().isoformat(sep=" ", timespec="seconds"), message, self.result.run_id),
            )
            self._audit("resume" if self.result.resumed else "run", "failed", message)
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

    def _merge_plan(self, entity: str) -> Any:
        """When the mapping names dedupe rules for ``entity``: the merge of its loadable rows."""
        rules_path = self.p.mapping.dedupe.get(entity)
        if rules_path is None:
            return None
        from crmkit.dedupe import load_rules, merge_plan
        from crmkit.dedupe.store import target_decisions

        frames, fields = [], {}
        for shaped in self.p.shaped[entity]:
            checked = self._checked(shaped)
            ok = checked.filter(~pl.col(OUT_OF_SCOPE) & (pl.col(ERRORS).list.len() == 0))
            fields.update({f.name: None for f in shaped.fields})
            frames.append(ok.select(pl.lit(shaped.source).alias("__source"), KEY, *(f.name for f in shaped.fields)))
        frame = pl.concat(frames, how="diagonal_relaxed")
        return merge_plan(frame, load_rules(rules_path), target_decisions(self.loader, entity), list(fields))

    def _record_merges(self, entity: str, plan: Any) -> None:
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
            pl.lit(self.run_id).alias("run_id"),
        )
        self._begin()
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
            self.loader, entity, plan, survivors, self.run_id, self.p.mapping.dedupe[entity].stem, self.operator
        )
        self._commit("merge.before_commit")
        for src in sources:
            km = self.keymaps[(entity, src)]
            extra = rows.filter(pl.col("source_name") == src).select("legacy_key", "target_id")
            km.ids = pl.concat([km.ids.filter(~pl.col("legacy_key").is_in(extra["legacy_key"].implode())), extra])

    def _feed(self, shaped: Shaped, plan: Any = None) -> FeedCounts:
        faults.point("feed.start", self.loader)
        feed_def = self._feed_def(shaped)
        counts = FeedCounts(
            shaped.entity,
            shaped.source,
            extracted=self.p.extracted[shaped.source].frame.height,
            filtered=shaped.filtered,
        )
        checked = self._checked(shaped)
        # both masks computed once; each row lands in exactly one of filtered / ok / bad
        out = checked.get_column(OUT_OF_SCOPE)
        broken = checked.get_column(ERRORS).list.len() > 0
        counts.filtered += int(out.sum())
        checked = checked.drop(OUT_OF_SCOPE)
        if out.any() or broken.any():
            ok, bad = checked.filter(~out & ~broken), checked.filter(~out & broken)
        else:
            ok, bad = checked, checked.clear()
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
        d = delta.classify(ok, before, self.run_id)
        counts.unchanged = d.unchanged.height
        counts.inserted, counts.updated = d.done_inserts, d.done_updates
        counts.warnings = int(ok.select(pl.col(WARNINGS).list.len().gt(0).sum()).item())
        inserted = self._insert(shaped, d.inserts, value_fields, counts)
        self._update(shaped, d.updates, value_fields, counts)
        self._reject(shaped, bad, counts)
        self._vanished(shaped, before, deactivating, counts)
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

    def _feed_def(self, shaped: Shaped) -> Feed:
        return next(f for f in self.p.mapping.entities[shaped.entity] if f.source == shaped.source)

    def _progress(self, shaped: Shaped, done: int, total: int) -> None:
        if self.opt.progress:
            self.opt.progress(f"{shaped.entity} ← {shaped.source}", done, total)

    def _checkpoint(self, shaped: Shaped, phase: str, batch_no: int, rows: int, loader: Loader | None = None) -> None:
        if self.opt.safety:
            (loader or self.loader).execute(
                "INSERT INTO crmkit_checkpoints (run_id, entity, source_name, phase, batch_no, rows) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self.run_id, shaped.entity, shaped.source, phase, batch_no, rows),
            )

    def _next_batch_no(self, shaped: Shaped, phase: str) -> int:
        last = self.loader.scalar(
            "SELECT max(batch_no) FROM crmkit_checkpoints WHERE run_id = ? AND entity = ? AND source_name = ? "
            "AND phase = ?",
            (self.run_id, shaped.entity, shaped.source, phase),
        )
        return int(last or 0) + 1

    def _batches(self, rows: pl.DataFrame) -> list[pl.DataFrame]:
        return [rows.slice(s, self.opt.batch_size) for s in range(0, rows.height, self.opt.batch_size)]

    def _insert(self, shaped: Shaped, rows: pl.DataFrame, fields: list[str], counts: FeedCounts) -> pl.DataFrame:
        bulk = rows.height >= self.opt.bulk_rows
        if not bulk:
            return self._insert_batches(shaped, rows, fields, counts)
        # A real bulk insert into PostgreSQL writes its id map on a second connection, a batch
        # behind the rows, and every other batch of rows on a third, so that the server works
        # on both cores.  Until the id map is complete a marker row says so; a crash in between
        # leaves the marker, and the next run's _repair_indexes maps the committed rows' keys
        # from their provenance columns.
        side = stream = None
        if not self.dry:
            side = self._background()
            if side is not None:
                try:
                    stream = self._background()
                except BaseException:
                    _close_quietly(side)
                    raise
        table = shaped.entity
        self._begin()
        if side is not None:
            self.loader.execute(
                "INSERT INTO crmkit_checkpoints (run_id, entity, source_name, phase, batch_no, rows) "
                "VALUES (?, ?, ?, ?, 0, 0)",
                (self.run_id, table, shaped.source, ID_MAP_PENDING),
            )
        for t in (table, "crmkit_id_map"):
            self.loader.drop_indexes(t)
        self._commit("indexes.drop")
        if not self.dry:  # bulk mode is for batches committed one by one
            self.loader.bulk_mode(True)
        try:
            out = self._insert_batches(shaped, rows, fields, counts, side, stream)
        except BaseException:
            for b in (stream, side):
                _close_quietly(b)  # the main connection's error is the one to report; the marker stays
            raise
        finally:
            self.loader.bulk_mode(False)
        self._begin()
        if side is not None:
            side.submit(lambda loader: loader.create_indexes("crmkit_id_map"))
            self.loader.create_indexes(table)  # meanwhile, on this connection
            side.close()
            self._id_map_done(self.run_id, table, shaped.source)
        else:
            for t in (table, "crmkit_id_map"):
                self.loader.create_indexes(t)
        self._commit("indexes.create")
        return out

    def _background(self) -> Background | None:
        """A :class:`Background` on a companion connection in bulk mode; None where the target
        has no companion (SQLite)."""
        companion = self.loader.companion()
        if companion is None:
            return None
        try:
            companion.bulk_mode(True)
        except BaseException:
            companion.close()
            raise
        return Background(companion)

    def _insert_batches(
        self,
        shaped: Shaped,
        rows: pl.DataFrame,
        fields: list[str],
        counts: FeedCounts,
        side: Background | None = None,
        stream: Background | None = None,
    ) -> pl.DataFrame:
        """Insert ``rows`` in batches, each in its own transaction with its checkpoint.  With
        ``side``, each committed batch's id-map entries are written there; with ``stream``,
        every other batch is written on that connection (its ids are reserved here first, in
        one block, so that neither connection waits on the other's lock of the table)."""
        table = shaped.entity
        defaults = [
            pl.lit(f.default).alias(f.name)
            for f in entities()[table].fields.values()
            if f.default is not None and f.name not in fields
        ]
        out = []
        batch_no = self._next_batch_no(shaped, "insert") if rows.height else 0
        ids = None
        if stream is not None and rows.height:
            self._begin()
            ids = self.loader.next_ids(table, rows.height)
            self._commit("insert.ids")
        for i, batch in enumerate(self._batches(rows)):
            for background in (stream, side):
                if background is not None:
                    background.raise_error()  # a connection lost there: no more batches here
            if ids is None:
                self._begin()
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
            committed: Future[None] | None = None
            if stream is not None and i % 2:
                committed = stream.submit(
                    self._write_batch(shaped, frame, batch_no + i, own=False),
                    then=partial(faults.point, "insert.after_commit", stream.loader),
                )
            else:
                if ids is not None:
                    self._begin()
                self._write_batch(shaped, frame, batch_no + i, own=True, in_db_id_map=side is None)(self.loader)
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
            self._progress(shaped, counts.inserted, rows.height)
        if stream is not None:
            stream.close()  # its batches committed, or its error raised here
        return pl.concat(out) if out else pl.DataFrame(schema={"legacy_key": pl.String, "target_id": pl.Int64})

    def _write_batch(
        self, shaped: Shaped, frame: pl.DataFrame, batch_no: int, own: bool, in_db_id_map: bool = False
    ) -> Callable[[Loader], None]:
        """One batch's rows and checkpoint on ``loader``; committed here when ``own`` (on this
        run's connection), else by the :class:`Background` that runs it."""

        def write(loader: Loader) -> None:
            table = shaped.entity
            faults.point("insert.before_batch", loader)
            loader.append(table, frame)
            faults.point("insert.after_rows", loader)
            if in_db_id_map:
                # the batch's id-map entries copied inside the database from the rows just written
                # (their ids are one block): no second bulk transfer of the batch
                loader.execute(
                    f"INSERT INTO crmkit_id_map (entity, source_name, legacy_key, target_id, run_id) "
                    f"SELECT ?, source_name, legacy_key, id, run_id FROM {q(table)} WHERE id BETWEEN ? AND ?",
                    (table, frame["id"][0], frame["id"][-1]),
                )
            faults.point("insert.after_idmap", loader)
            self._checkpoint(shaped, "insert", batch_no, frame.height, loader)
            faults.point("insert.before_commit", loader)
            if own and not self.dry:
                loader.commit()
            if own:
                faults.point("insert.after_commit", loader)

        return write

    def _update(self, shaped: Shaped, rows: pl.DataFrame, fields: list[str], counts: FeedCounts) -> None:
        batch_no = self._next_batch_no(shaped, "update") if rows.height else 0
        for i, batch in enumerate(self._batches(rows)):
            self._begin()
            self._write_updates(
                shaped.entity,
                batch.select(pl.col("target_id").alias("id"), delta.HASH, pl.lit(self.run_id).alias("run_id"), *fields),
            )
            self._checkpoint(shaped, "update", batch_no + i, batch.height)
            self._commit("update.before_commit")
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
            faults.point("update.after_images", self.loader)
        self.loader.update_from(entity, stage, frame.columns)
        self.loader.execute(f"DROP TABLE {q(stage)}")

    def _reject(self, shaped: Shaped, bad: pl.DataFrame, counts: FeedCounts) -> None:
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
                pl.col(KEY).alias("legacy_key"),
                pl.col(ERRORS).list.join("; ").alias("reasons"),
                pl.struct(raw_cols).struct.json_encode().alias("raw_json"),
            )
        )
        self._begin()
        self.loader.execute(
            "DELETE FROM crmkit_rejects WHERE run_id = ? AND entity = ? AND source_name = ?",
            (self.run_id, shaped.entity, shaped.source),
        )  # a resume writes them again
        self.loader.append("crmkit_rejects", rows)
        self._commit("reject.before_commit")
        self.rejects.append(rows.drop("run_id"))

    def _vanished(self, shaped: Shaped, before: pl.DataFrame, deactivate: bool, counts: FeedCounts) -> None:
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
            self._begin()
            self._write_updates(
                shaped.entity,
                todo.select(
                    pl.col("target_id").alias("id"), pl.lit(False).alias("active"), pl.lit(self.run_id).alias("run_id")
                ),
            )
            self._commit("vanish.before_commit")

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
                "SELECT count(*) FROM crmkit_id_map WHERE entity = ? AND source_name = ?", (entity, source)
            )
            if int(in_map or 0) != km.ids.height:
                raise ReconcileError(
                    f"{entity} from {source}: the id map holds {in_map} keys, the run expected {km.ids.height}"
                )


def _empty_rejects() -> pl.DataFrame:
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


def _close_quietly(background: Background | None) -> None:
    """Wait for ``background``'s jobs and close it, keeping quiet about its error: the caller
    is already reporting another one."""
    if background is not None:
        try:
            background.close()
        except Exception:
            pass
