"""``crmkit migrate``: plan, run and look back on migrations."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crmkit.cli.options import allow_path_option, json_option, operator_option, target_option
from crmkit.db.url import mask_url
from crmkit.migrate import report
from crmkit.migrate.pipeline.result import Options, Progress, RunResult
from crmkit.migrate.pipeline.run import run as run_mapping
from crmkit.migrate.plan import plan as make_plan
from crmkit.migrate.safety.history import history as run_history
from crmkit.migrate.safety.hooks import parse_faults
from crmkit.migrate.safety.rollback import rollback as rollback_run
from crmkit.migrate.safety.verify import verify as verify_mapping
from crmkit.settings import Settings

MAPPING = click.argument("mapping", type=click.Path(dir_okay=False, path_type=Path))


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


@click.group()
def migrate() -> None:
    """Move legacy data into the CRM: plan a mapping, run it, see past runs.

    \b
    Example:
      crmkit migrate plan migrate/mappings/acme-legacy.yaml
      crmkit migrate run migrate/mappings/acme-legacy.yaml --target sqlite:///crm.db --report reports/
      crmkit migrate history --target sqlite:///crm.db
    """


@migrate.command()
@MAPPING
@click.option(
    "--target", default=None, metavar="URL", help="Also count keys already in this target's id map as resolvable."
)
@click.option("--sample", default=3, show_default=True, help="Transformed rows to show per feed.")
@allow_path_option
@json_option
def plan(mapping: Path, target: str | None, sample: int, as_json: bool) -> None:
    """Show what a run of MAPPING would do, without writing anything.

    Sources and row counts, source columns nothing reads, target fields nothing fills,
    sample transformed rows, and references that will not resolve.

    \b
    Example:
      crmkit migrate plan migrate/mappings/acme-legacy.yaml --sample 5
    """
    p = make_plan(str(mapping), target, sample)
    if as_json:
        click.echo(json.dumps(p.to_json(), ensure_ascii=False, indent=2, default=str))
        return
    con = _console()
    t = Table(title=f"Sources of {p.mapping}")
    for col in ("source", "kind", "rows", "columns", "blank rows", "encoding"):
        t.add_column(col)
    for s in p.sources:
        enc = f"{s['encoding']}{' (detected)' if s['encoding_detected'] else ''}" if s["encoding"] else ""
        t.add_row(str(s["name"]), str(s["kind"]), str(s["rows"]), str(s["columns"]), str(s["blank_rows"]), enc)
    con.print(t)
    for f in p.feeds:
        con.print(
            f"\n[bold]{f.entity}[/bold] ← {f.source}: {f.in_scope} of {f.rows} rows in scope, "
            f"{f.failing_rows} fail a transform or type; {f.rejected_rows} would be rejected, "
            f"{f.warning_rows} load with a warning"
        )
        for issue in f.issues:
            tone = "red" if issue["severity"] == "error" else "yellow"
            con.print(
                f"  row {issue['row']} (key {issue['key']}) [{tone}]{issue['severity']}[/{tone}]: "
                f"{escape(str(issue['reasons']))}"
            )
        if f.unmapped_columns:
            con.print(f"  source columns not read: {', '.join(f.unmapped_columns)}")
        if f.unfilled_fields:
            con.print(f"  target fields not filled: {', '.join(f.unfilled_fields)}")
        for fname, u in f.unresolved.items():
            if u["orphans"]:
                missing = ", ".join(map(str, u["missing_parents"]))  # type: ignore[call-overload]
                con.print(
                    f"  [red]{fname}[/red]: {u['orphans']} rows point at keys missing from {u['parent']}: {missing}"
                )
        if f.sample:
            st = Table(show_header=True, box=None, padding=(0, 1))
            for col in f.sample[0]:
                st.add_column(col, overflow="fold")
            for row in f.sample:
                st.add_row(*("" if v is None else str(v) for v in row.values()))
            con.print(st)


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    with Bar(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        yield update


@migrate.command()
@MAPPING
@target_option
@click.option("--dry-run", is_flag=True, help="Do everything inside one transaction, then roll it back.")
@click.option(
    "--batch-size", default=50_000, show_default=True, type=click.IntRange(min=1), help="Rows per transaction."
)
@click.option(
    "--max-rejects",
    default=None,
    metavar="N|P%",
    help="Rejects allowed before exit code 1: a count or a share (default: the mapping's, else 0).",
)
@click.option(
    "--report",
    "report_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Write summary.json, rejects.csv, warnings.csv and report.html here.",
)
@operator_option
@click.option(
    "--resume",
    default=None,
    is_flag=False,
    flag_value="last",
    metavar="[RUN_ID]",
    help="Resume the last unfinished run of MAPPING (or RUN_ID) where it stopped.",
)
@click.option(
    "--restart",
    is_flag=True,
    help="With --resume: if the mapping or sources changed, abandon the old run and start over.",
)
@click.option("--force", is_flag=True, help="Load even when a validation gate of the mapping fails.")
@click.option(
    "--lock-wait",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Wait this long for another run that writes the same entities (else refuse at once).",
)
@click.option("--faults", default="", hidden=True, help="Fault injection for the safety tests: ACTION@POINT#N,...")
@allow_path_option
@json_option
def run(
    mapping: Path,
    target: str,
    dry_run: bool,
    batch_size: int,
    max_rejects: str | None,
    report_dir: Path | None,
    operator: str | None,
    resume: str | None,
    restart: bool,
    force: bool,
    lock_wait: float,
    faults: str,
    as_json: bool,
) -> None:
    """Run MAPPING into TARGET: extract, transform, check, load, reconcile.

    Each batch commits its rows, id-map entries and checkpoint together: a run that died
    (killed, connection lost, disk full) resumes with --resume and ends exactly where an
    uninterrupted run would.  Exit codes: 0 success; 1 the run finished but its rejects
    passed the threshold; 2 a usage, configuration, source or connection error.

    \b
    Example:
      crmkit migrate run migrate/mappings/acme-legacy.yaml --target sqlite:///crm.db --report reports/
      crmkit migrate run migrate/mappings/acme-legacy.yaml --dry-run --json
      crmkit migrate run migrate/mappings/acme-legacy.yaml --target sqlite:///crm.db --resume
    """
    if restart and resume is None:
        raise click.UsageError("--restart goes with --resume")
    if dry_run and resume is not None:
        raise click.UsageError("--dry-run and --resume exclude each other")
    if resume not in (None, "last") and not str(resume).isdigit():
        raise click.UsageError(f"--resume takes a run id (a number), not {resume!r}")
    resume_opt: bool | int = False if resume is None else (True if resume == "last" else int(resume))
    hooks = parse_faults(faults)
    with _progress(sys.stdout.isatty() and not as_json) as progress:
        result = run_mapping(
            mapping,
            Options(
                target=target,
                dry_run=dry_run,
                batch_size=batch_size,
                max_rejects=max_rejects,
                operator=operator,
                progress=progress,
                resume=resume_opt,
                restart=restart,
                force=force,
                lock_wait=lock_wait,
                bulk_rows=Settings.from_env().bulk_rows,
                hooks=hooks,
            ),
        )
    page = report.write_report(result, report_dir) if report_dir else None
    if page:
        result.report_dir = str(report_dir)
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    else:
        _print_result(result, page)
    sys.exit(result.exit_code)


def _print_result(r: RunResult, page: Path | None) -> None:
    con = _console()
    t = Table(title=f"Dry run of {r.mapping} (rolled back)" if r.dry_run else f"Run {r.run_id} of {r.mapping}")
    cols = ("extracted", "inserted", "updated", "unchanged", "merged", "filtered", "rejected", "warnings", "vanished")
    t.add_column("entity")
    for c in cols:
        t.add_column(c, justify="right")
    entities = cast(dict[str, dict[str, int]], r.to_json()["entities"])
    for entity, counts in entities.items():
        t.add_row(entity, *(str(counts[c]) for c in cols))
    totals = r.totals()
    t.add_row("[bold]total[/bold]", *(f"[bold]{totals[c]}[/bold]" for c in cols))
    con.print(t)
    read = [f"{s.name} {s.encoding}{' (detected)' if s.detected else ''}" for s in r.sources if s.encoding]
    if read:
        con.print("encodings: " + ", ".join(read), highlight=False)
    if r.message:
        con.print(r.message)
    colour = "green" if r.status == "succeeded" else "red"
    con.print(f"status: [{colour}]{r.status}[/{colour}] (max rejects {r.max_rejects}) · target {r.target}")
    if page:
        con.print(f"report: {page}")


@migrate.command()
@target_option
@click.option("--limit", default=20, show_default=True, help="How many entries, newest first.")
@json_option
def history(target: str, limit: int, as_json: bool) -> None:
    """List what happened to TARGET: runs, resumes, verifies and rollbacks, newest first.

    \b
    Example:
      crmkit migrate history --target sqlite:///crm.db --limit 5
    """
    frame = run_history(target, limit)
    if as_json:
        click.echo(json.dumps(frame.to_dicts(), ensure_ascii=False, indent=2))
        return
    t = Table(title=f"History of {mask_url(target)}")
    cols = ("at", "action", "run_id", "mapping_name", "outcome", "operator")
    for c in cols:
        t.add_column(c)
    for row in frame.iter_rows(named=True):
        t.add_row(*(str(row[c] or "") for c in cols))
    _console().print(t)


@migrate.command()
@MAPPING
@target_option
@operator_option
@click.option(
    "--report",
    "report_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Write verify.json and verify-mismatches.csv here.",
)
@allow_path_option
@json_option
def verify(mapping: Path, target: str, operator: str | None, report_dir: Path | None, as_json: bool) -> None:
    """Re-read MAPPING's sources and compare them with TARGET, row by row.

    Lists every row missing from the target, changed in it, or there unexpectedly, and every
    migrated row that no id-map entry names (an orphan: a duplicate no later run would see).
    Rows whose legacy row is gone are listed as vanished: a mismatch only where the feed's
    on_vanished (deactivate, delete) was not carried out.  Exit code 1 on any mismatch:
    run it before signing off a cut-over.

    \b
    Example:
      crmkit migrate verify migrate/mappings/acme-legacy.yaml --target sqlite:///crm.db --report reports/
    """
    result = verify_mapping(mapping, target, operator)
    if report_dir:
        result.write(report_dir)
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2, default=str))
    else:
        con = _console()
        t = Table(title=f"Verify {result.mapping} against {result.target}")
        for c in ("entity", "source", "expected", "in_target", "mismatches", "vanished"):
            t.add_column(c)
        for count in result.counts:
            t.add_row(*(str(count[k]) for k in ("entity", "source", "expected", "in_target", "mismatches", "vanished")))
        con.print(t)
        for row in result.mismatches.head(50).iter_rows(named=True):
            row_id = f" (id {row['target_id']})" if row.get("target_id") is not None else ""
            con.print(f"  {row['kind']:<10} {row['entity']} {row['source_name']}:{row['legacy_key']}{row_id}")
        con.print("[green]clean[/green]" if result.ok else f"[red]{result.mismatches.height} mismatches[/red]")
        if result.note:
            con.print(result.note)
    sys.exit(0 if result.ok else 1)


@migrate.command()
@click.argument("run_id", type=int)
@target_option
@operator_option
@click.option("--cascade", is_flag=True, help="Roll back the later runs that touched this run's rows first.")
@click.option(
    "--force", is_flag=True, help="Roll back rows edited since the run wrote them too (discarding the edits)."
)
@click.option("--dry-run", is_flag=True, help="Say what the rollback would do (or why it refuses), change nothing.")
@json_option
def rollback(
    run_id: int, target: str, operator: str | None, cascade: bool, force: bool, dry_run: bool, as_json: bool
) -> None:
    """Return TARGET to its state before run RUN_ID.

    Rows the run inserted are removed; rows it updated get their before-images back.  If
    a later run touched those rows it refuses, naming them, unless --cascade.  If a row was
    changed since the run wrote it (through the API or by hand) it refuses, naming the rows,
    unless --force (which discards those changes).  A row created since that refers to a row
    the rollback would delete (a case opened under a migrated account) always makes it
    refuse: delete or re-point that row first.

    \b
    Example:
      crmkit migrate rollback 3 --target sqlite:///crm.db --dry-run
      crmkit migrate rollback 3 --target sqlite:///crm.db
      crmkit migrate rollback 3 --target sqlite:///crm.db --force
      crmkit migrate rollback 2 --target sqlite:///crm.db --cascade
    """
    result = rollback_run(target, run_id, cascade=cascade, force=force, dry_run=dry_run, operator=operator)
    if as_json:
        click.echo(json.dumps(result.__dict__, indent=2, ensure_ascii=False))
        return
    click.echo(
        f"{'would roll back' if dry_run else 'rolled back'} run(s) {', '.join(map(str, result.rolled_back))}: "
        f"{'would remove' if dry_run else 'removed'} {sum(result.removed.values())} rows, "
        f"{'would restore' if dry_run else 'restored'} {sum(result.restored.values())}"
    )
    for row in result.changed:
        click.echo(f"  changed since the run, {'would be' if dry_run else ''} rolled back (--force): {row}")
