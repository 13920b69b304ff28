"""Resume: which unfinished run of the mapping a run continues, if any."""

from __future__ import annotations

import polars as pl

from crmkit.migrate.pipeline.prepare import Prepared
from crmkit.migrate.pipeline.result import Options, ResumeError, RunResult
from crmkit.migrate.safety.store import RunStore


def resumable(store: RunStore, p: Prepared, options: Options, result: RunResult) -> int | None:
    """The id of the run to resume, or None for a new run."""
    if options.dry_run or options.resume is False:
        return None
    runs = store.unfinished_runs(p.mapping.name)
    if options.resume is not True:
        runs = runs.filter(pl.col("id") == int(options.resume))
        if runs.height == 0:
            raise ResumeError(
                f"run {options.resume} is not an unfinished run of mapping {p.mapping.name} "
                f"in {result.target} (see crmkit migrate history)"
            )
    if runs.height == 0:
        raise ResumeError(
            f"nothing to resume: mapping {p.mapping.name} has no unfinished run in {result.target}; "
            f"run it without --resume to start a new run"
        )
    run_id, mapping_hash, sources_hash = runs.row(0)
    later = store.later_writers(int(run_id), list(p.shaped))
    if later.height and not options.restart:
        rid, entity = later.row(0)
        raise ResumeError(
            f"run {run_id} cannot be resumed: run {rid} has written {entity} since, and resuming would put run "
            f"{run_id}'s older values back; run without --resume for a new run (or --resume --restart to abandon "
            f"run {run_id})"
        )
    changed = [
        what
        for what, old, new in (
            ("the mapping", mapping_hash, p.mapping.content_hash),
            ("the sources", sources_hash, p.sources_hash),
        )
        if old != new
    ]
    if later.height:
        changed.append(f"run {later.row(0)[0]} wrote {later.row(0)[1]}")
    if changed:
        if not options.restart:
            raise ResumeError(
                f"{' and '.join(changed)} changed since run {run_id} was interrupted: resuming would mix two "
                f"versions; run with --resume --restart to abandon run {run_id} and start over"
            )
        store.loader.begin()
        store.set_status(run_id, "abandoned")
        store.loader.commit()
        result.message = f"run {run_id} abandoned ({' and '.join(changed)} changed): started a new run"
        return None
    result.resumed = True
    return int(run_id)
