"""``crmkit sandbox``: one isolated CRM database per trainee, reset in seconds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from crmkit.cli.options import json_option, sandbox_home, sandbox_server
from crmkit.db.url import TARGET_DIALECTS, mask_url
from crmkit.training import sandbox as sbx

HOME = click.option(
    "--home",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    callback=sandbox_home,
    help=f"Where the sandbox registry lives (env {sbx.HOME_ENV}; default .crmkit/).",
)
SERVER = click.option(
    "--server",
    default=None,
    metavar="URL",
    callback=sandbox_server,
    help=f"PostgreSQL server for postgresql sandboxes (env {sbx.PG_ENV}).",
)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


@click.group()
def sandbox() -> None:
    """Training sandboxes: a seeded CRM database per trainee, reset in seconds.

    \b
    Example:
      crmkit sandbox create sales_w --scenario configs/training/sales-en.yaml --department SALES_W --trainees 10
      crmkit sandbox list
      crmkit sandbox reset sales_w --trainee t03
      crmkit sandbox drop sales_w
    """


@sandbox.command()
@click.argument("name")
@click.option("--scenario", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Scenario YAML.")
@click.option("--seed", default=1, show_default=True, type=int, help="Random seed of the generated world.")
@click.option("--department", default=None, help="Only this department's world (its code in the scenario).")
@click.option("--trainees", default=1, show_default=True, type=click.IntRange(1, 200), help="How many sandboxes.")
@click.option("--backend", default="sqlite", show_default=True, type=click.Choice(TARGET_DIALECTS))
@SERVER
@HOME
@json_option
def create(
    name: str,
    scenario: Path,
    seed: int,
    department: str | None,
    trainees: int,
    backend: str,
    server: str | None,
    home: Path,
    as_json: bool,
) -> None:
    """Create sandbox NAME: generate the scenario's world once, copy it for every trainee.

    \b
    Example:
      crmkit sandbox create pilot --scenario configs/training/sales-en.yaml --trainees 10
      crmkit sandbox create pilot_pg --scenario configs/training/sales-en.yaml --backend postgresql \\
          --server postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    """
    sb = sbx.create(home, sbx.CreateOptions(name, scenario, seed, department, trainees, backend, server))
    urls = [(t, mask_url(u)) for t, u in sbx.trainee_urls(home, sb, server)]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "name": sb.name,
                    "backend": sb.backend,
                    "trainees": dict(urls),
                    "exercises": [{k: e[k] for k in ("id", "kind", "points", "prompt")} for e in sb.exercises],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    t = Table(title=f"Sandbox {sb.name} ({sb.backend}, {sb.scenario}, seed {sb.seed})")
    t.add_column("trainee")
    t.add_column("database")
    for trainee, url in urls:
        t.add_row(trainee, url)
    _console().print(t)
    for e in sb.exercises:
        click.echo(f"exercise {e['id']} ({e['points']} pt): {e['prompt']}")


@sandbox.command(name="list")
@HOME
@json_option
def list_(home: Path, as_json: bool) -> None:
    """List the sandboxes in the registry.

    \b
    Example:
      crmkit sandbox list --home .crmkit
    """
    boxes = sbx.list_sandboxes(home)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": b.name,
                        "backend": b.backend,
                        "scenario": b.scenario,
                        "seed": b.seed,
                        "department": b.department,
                        "trainees": b.trainees,
                        "created_at": b.created_at,
                    }
                    for b in boxes
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    t = Table(title="Sandboxes")
    for c in ("name", "backend", "trainees", "scenario", "department", "seed", "created"):
        t.add_column(c)
    for b in boxes:
        t.add_row(
            b.name, b.backend, str(len(b.trainees)), b.scenario, b.department or "(all)", str(b.seed), b.created_at
        )
    _console().print(t)


@sandbox.command()
@click.argument("name")
@click.option("--trainee", default=None, help="Only this trainee's sandbox (default: all).")
@click.option("--verify", is_flag=True, help="Then check every table against the seeded state (exit 1 if not).")
@SERVER
@HOME
def reset(name: str, trainee: str | None, verify: bool, server: str | None, home: Path) -> None:
    """Put sandbox NAME (or one trainee's) back to its seeded state.

    \b
    Example:
      crmkit sandbox reset pilot --trainee t03 --verify
    """
    for t, seconds in sbx.reset(home, name, trainee, server).items():
        click.echo(f"{name}/{t}: reset in {seconds:.2f} s")
    if verify:
        bad = {t: tables for t, tables in sbx.verify(home, name, trainee, server).items() if tables}
        for t, tables in bad.items():
            click.echo(f"{name}/{t}: differs from the seeded state in {', '.join(tables)}", err=True)
        if bad:
            sys.exit(1)
        click.echo("every table equals the seeded state")


@sandbox.command()
@click.argument("name")
@SERVER
@HOME
def drop(name: str, server: str | None, home: Path) -> None:
    """Delete sandbox NAME: its trainee databases, its template and its registry entry.

    \b
    Example:
      crmkit sandbox drop pilot
    """
    sb = sbx.drop(home, name, server)
    click.echo(f"dropped sandbox {sb.name} ({len(sb.trainees)} trainee databases and the template)")
