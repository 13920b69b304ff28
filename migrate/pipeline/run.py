"""A migration run: prepare (extract → shape → validate) → check → delta → write → reconcile.

Nothing is written until every source has been read and every feed shaped, so a bad
mapping or an unreadable source leaves the target untouched.  Then each entity is loaded
parents first, in batches, each batch one transaction.  A dry run takes the very same path
inside one transaction that is rolled back at the end.  The bookkeeping (run rows, locks,
checkpoints, audit) is the :class:`RunStore`'s; the points a test can hook are Options.hooks'.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from crmkit.audit import now, operator_name
from crmkit.db.loader import Loader, open_loader, preload_driver
from crmkit.db.sql import is_db_error, write_refusal
from crmkit.db.url import mask_url
from crmkit.errors import CrmkitError, TargetError
from crmkit.migrate.mapping import Mapping, load_mapping
from crmkit.migrate.pipeline import bulk
from crmkit.migrate.pipeline.feed import Feeds
from crmkit.migrate.pipeline.prepare import Prepared, prepare, validate
from crmkit.migrate.pipeline.reconcile import reconcile
from crmkit.migrate.pipeline.result import Options, RunResult, SourceInfo, over_threshold, parse_threshold
from crmkit.migrate.pipeline.resume import resumable
from crmkit.migrate.pipeline.write import Writer
from crmkit.migrate.safety import lock
from crmkit.migrate.safety.store import RunStore
from crmkit.schema.versions import ensure_schema


def _stamp() -> str:
    return now().isoformat(timespec="seconds")


def run(mapping_path: str | Path, options: Options) -> RunResult:
    """Run a mapping against a target.  Raises CrmkitError subclasses for user errors."""
    mapping = load_mapping(mapping_path)
    limit = parse_threshold(options.max_rejects if options.max_rejects is not None else mapping.max_rejects)
    driver = preload_driver(options.target)
    try:
        prepared = prepare(mapping, options.scope)
    finally:
        driver.join()  # also on a bad source: no import left running while the process exits
    result = _new_result(mapping, prepared, options, limit, validate(mapping, prepared))
    pre = result.validation
    if pre is not None and not pre.passed and not options.force:
        result.status = "gates_failed"
        result.finished_at = _stamp()
        result.message = (
            "nothing loaded: "
            + "; ".join(f"validation gate '{g.name}' {g.detail or 'failed'}" for g in pre.gates if not g.passed)
            + " (--force loads anyway)"
        )
        return result
    ensure_schema(options.target)
    loader = open_loader(options.target)
    try:
        _locked(loader, prepared, options, result)
    except CrmkitError:
        raise
    except Exception as exc:
        if is_db_error(exc) and write_refusal(exc) is not None:
            raise TargetError(f"target {result.target} {write_refusal(exc)}") from None
        if is_db_error(exc):
            raise TargetError(
                f"target {result.target}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                + (
                    " — nothing was written (a dry run)"
                    if options.dry_run
                    else " — the run stopped after its last committed batch; run it again with --resume"
                )
            ) from None
        raise
    finally:
        try:
            loader.close()
        except Exception:
            pass
    return result


def _new_result(mapping: Mapping, prepared: Prepared, options: Options, limit: str, pre: Any) -> RunResult:
    return RunResult(
        run_id=None,
        status="running",
        dry_run=options.dry_run,
        mapping=mapping.name,
        mapping_hash=mapping.content_hash,
        target=mask_url(options.target),
        started_at=_stamp(),
        max_rejects=limit,
        sources=[
            SourceInfo(n, mapping.sources[n].kind, e.frame.height, e.blank_rows, e.encoding, e.detected)
            for n, e in prepared.extracted.items()
        ],
        validation=pre,
    )


def _locked(loader: Loader, prepared: Prepared, options: Options, result: RunResult) -> None:
    """The load, holding the mapping's lock and those of the entities it writes on the target
    (a dry run takes none: it writes nothing that stays)."""
    store = RunStore(loader)
    entities = list(prepared.shaped)
    if not options.dry_run:
        lock.acquire(store, prepared.mapping.name, entities, options.lock_wait, result.target)
        loader.begin()  # holding the lock: a run of this mapping still marked running died
        store.mark_interrupted(prepared.mapping.name)
        loader.commit()
    try:
        resume_id = resumable(store, prepared, options, result)
        _Run(prepared, loader, options, result).go(resume_id)
    finally:
        if not options.dry_run:
            lock.release(store, prepared.mapping.name, entities)


class _Run:
    """One run's load: open (or reopen) its row, every feed parents first, reconcile, close."""

    def __init__(self, prepared: Prepared, loader: Loader, options: Options, result: RunResult):
        self.p, self.loader, self.opt, self.result = prepared, loader, options, result
        self.dry = options.dry_run
        self.operator = operator_name(options.operator)
        self.w = Writer(loader, options, result)
        self.store = self.w.store

    def go(self, resume_id: int | None) -> None:
        r = self.result
        if self.dry:
            self.loader.begin()
        try:
            r.run_id = self._reopen_run(resume_id) if resume_id else self._open_run()
            bulk.repair(self.w, list(self.p.shaped))
            if not self.dry:
                self._audit("resume" if resume_id else "run", "started", detail=f"pid {os.getpid()}")
            self.opt.hooks.point("run.opened", self.loader)
            self._feeds()
            r.rejects, r.warnings = self.w.listed()
            total = r.totals()
            rejected = over_threshold(total["rejected"], total["extracted"], r.max_rejects)
            r.status = "rejects_over_threshold" if rejected else "succeeded"
            r.finished_at = _stamp()
            self.opt.hooks.point("run.before_close", self.loader)
            self.w.begin()
            self.store.close_run(self.w.run_id, r.finished_at, r.status, r.to_json()["entities"])
            self.w.commit("run.close")
        except BaseException as exc:
            if self.dry:
                self.loader.rollback()
            else:
                self._abandon(exc)
            raise
        if self.dry:
            self.loader.rollback()
            r.run_id = None
        self._audit("dry_run" if self.dry else ("resume" if resume_id else "run"), r.status)

    def _feeds(self) -> None:
        """Every entity's feeds, parents first; merges recorded per entity; then reconcile."""
        feeds = Feeds(self.p, self.w, self.operator)
        for entity, shaped_feeds in self.p.shaped.items():
            plan = feeds.merge_plan(entity)
            for shaped in shaped_feeds:
                self.result.counts.append(feeds.load(shaped, plan))
            if plan is not None:
                feeds.record_merges(entity, plan)
        feeds.delete_vanished()
        reconcile(self.loader, self.result.counts, feeds.keymaps)

    def _audit(self, action: str, outcome: str, detail: str | None = None) -> None:
        r = self.result
        self.store.audit(
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
        if self.dry:  # a dry run takes no run id: its rows carry the next one, and are rolled back
            return self.store.next_run_id()
        self.w.begin()
        run_id = self.store.open_run(
            kind="dry_run" if self.dry else "run",
            mapping_name=r.mapping,
            mapping_hash=r.mapping_hash,
            target=r.target,
            operator=self.operator,
            started_at=r.started_at,
            sources_hash=self.p.sources_hash,
        )
        if not self.dry:
            self.store.set_lock_run(lock.keys(r.mapping, self.p.shaped), run_id)
        self.w.commit("run.open")
        return run_id

    def _reopen_run(self, run_id: int) -> int:
        self.loader.begin()
        self.store.reopen_run(run_id)
        self.store.set_lock_run(lock.keys(self.result.mapping, self.p.shaped), run_id)
        self.loader.commit()
        return run_id

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
            self.store.fail_run(self.result.run_id, message)
            self._audit("resume" if self.result.resumed else "run", "failed", message)
        except Exception:
            pass
