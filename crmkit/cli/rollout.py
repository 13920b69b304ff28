"""``crmkit rollout``: a pilot department first, then waves, each gated on evidence."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from crmkit.cli.options import allow_path_option, json_option, operator_option
from crmkit.rollout import engine, report
from crmkit.settings import Settings

PLAN = click.argument("plan", type=click.Path(dir_okay=False, path_type=Path))
_COLOUR = {
    "pass": "green",
    "fail": "red",
    "inconclusive": "yellow",
    "migrated": "green",
    "pending": "white",
    "rolled_back": "red",
}


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


@click.group()
def rollout() -> None:
    """Roll the CRM out one department at a time: pilot first, then waves.

    \b
    Example:
      crmkit rollout status configs/rollout/acme.yaml
      crmkit rollout advance configs/rollout/acme.yaml
      crmkit rollout report configs/rollout/acme.yaml --out build/rollout.html
    """


@rollout.command()
@PLAN
@json_option
@allow_path_option
def status(plan: Path, as_json: bool) -> None:
    """Show the waves of PLAN and the gates of the next one (measured against required).

    Exit code 0 when the next wave is ready to advance, 1 when a gate holds it.

    \b
    Example:
      crmkit rollout status configs/rollout/acme.yaml --json
    """
    st = engine.status(plan, sandbox_home=Settings.from_env().home)
    if as_json:
        click.echo(json.dumps(st.to_json(), ensure_ascii=False, indent=2))
        sys.exit(0 if st.ready or st.next_wave is None else 1)
    con = _console()
    t = Table(title=f"Rollout {st.plan} · {st.target}")
    for c in ("wave", "status", "migrated at", "runs"):
        t.add_column(c)
    for w in st.waves:
        colour = _COLOUR.get(w.status, "white")
        name = f"{w.name} ← next" if w.name == st.next_wave else w.name
        t.add_row(name, f"[{colour}]{w.status}[/{colour}]", w.migrated_at or "", ", ".join(map(str, w.run_ids)))
    con.print(t)
    wave = next((w for w in st.waves if w.name == st.next_wave), None)
    if wave is None:
        con.print("every wave is migrated")
        return
    g = Table(title=f"Gates of {wave.name}")
    for c in ("gate", "judges", "status", "measured", "required", "what to do"):
        g.add_column(c, overflow="fold")
    for r in wave.gates:
        colour = _COLOUR[r.status]
        g.add_row(r.gate, r.subject, f"[{colour}]{r.status}[/{colour}]", r.measured, r.required, r.hint)
    con.print(g)
    con.print(
        f"next: advance {wave.name}"
        if st.ready
        else f"next: {wave.name} waits on {', '.join(b.gate for b in st.blocked_by)}"
    )
    sys.exit(0 if st.ready else 1)


@rollout.command()
@PLAN
@click.option("--dry-run", is_flag=True, help="Run the wave's migration in a transaction that is rolled back.")
@operator_option
@json_option
@allow_path_option
def advance(plan: Path, dry_run: bool, operator: str | None, as_json: bool) -> None:
    """Migrate the next wave of PLAN if all its gates pass; refuse, naming the gates, if not.

    \b
    Example:
      crmkit rollout advance configs/rollout/acme.yaml --dry-run
      crmkit rollout advance configs/rollout/acme.yaml --operator alice
    """
    settings = Settings.from_env()
    done = engine.advance(
        plan, dry_run=dry_run, operator=operator, sandbox_home=settings.home, bulk_rows=settings.bulk_rows
    )
    if as_json:
        click.echo(
            json.dumps(
                {"wave": done.wave, "dry_run": done.dry_run, "runs": [r.to_json() for r in done.runs]},
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    for r in done.runs:
        totals = r.totals()
        click.echo(
            f"wave {done.wave}{' (dry run, rolled back)' if dry_run else ''}: run {r.run_id} of {r.mapping}: "
            f"{totals['inserted']} inserted, {totals['updated']} updated, {totals['unchanged']} unchanged, "
            f"{totals['filtered']} out of scope, {totals['rejected']} rejected"
        )


@rollout.command()
@PLAN
@click.argument("wave")
@click.option("--approval", required=True, help="The approval's name, as the plan lists it for WAVE.")
@click.option("--by", "by", required=True, help="Who gives it.")
@allow_path_option
def approve(plan: Path, wave: str, approval: str, by: str) -> None:
    """Record a named approval of WAVE (who and when).

    \b
    Example:
      crmkit rollout approve configs/rollout/acme.yaml wave-2 --approval sales-director --by "Li Wei"
    """
    engine.approve(plan, wave, approval, by)
    click.echo(f"approval {approval} of wave {wave} recorded, by {by}")


@rollout.command()
@PLAN
@click.argument("wave")
@operator_option
@allow_path_option
def rollback(plan: Path, wave: str, operator: str | None) -> None:
    """Undo WAVE's migration runs (the last migrated wave only).

    \b
    Example:
      crmkit rollout rollback configs/rollout/acme.yaml wave-2
    """
    runs = engine.rollback_wave(plan, wave, operator)
    click.echo(f"wave {wave} rolled back (runs {', '.join(map(str, runs))})")


@rollout.command(name="report")
@PLAN
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("rollout.html"),
    show_default=True,
    help="The HTML file (or a folder for rollout.html).",
)
@allow_path_option
def report_cmd(plan: Path, out: Path) -> None:
    """Write a self-contained HTML page: timeline of waves, gates, rows per department.

    \b
    Example:
      crmkit rollout report configs/rollout/acme.yaml --out build/rollout.html
    """
    page = report.write(engine.status(plan, sandbox_home=Settings.from_env().home), out)
    click.echo(f"report: {page}")
