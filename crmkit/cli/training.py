"""``crmkit training``: generated CRM worlds, legacy estates, masked copies, exercise grading."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from crmkit.cli.options import json_option, sandbox_home, sandbox_server
from crmkit.db.url import MYSQL_DIALECTS, dialect_of, mask_url
from crmkit.errors import CrmkitError

SCENARIO = click.option(
    "--scenario",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Scenario YAML (docs/training-scenarios.md).",
)
SEED = click.option("--seed", required=True, type=int, help="Random seed: the same seed gives the same bytes.")


class UsageError(CrmkitError):
    """Options that clash or are missing."""


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


@click.group()
def training() -> None:
    """Training data: generated CRM worlds, messy legacy estates, masked copies, graded exercises.

    \b
    Example:
      crmkit training generate --scenario configs/training/sales-en.yaml --seed 1 --out build/world
      crmkit training legacy --scenario configs/training/legacy-zh.yaml --seed 7 --out build/training-estate
      CRMKIT_MASK_SALT=... crmkit training mask --source sqlite:///crm.db --target sqlite:///masked.db \\
          --rules configs/training/mask.yaml
      crmkit training check pilot --trainee t01
    """


@training.command()
@SCENARIO
@SEED
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one CSV per entity (plus exercises.json, manifest.json) here.",
)
@click.option("--target", default=None, metavar="URL", help="Load the world into this (empty) CRM database.")
@json_option
def generate(scenario: Path, seed: int, out: Path | None, target: str | None, as_json: bool) -> None:
    """Generate the scenario's CRM world, to CSV files (--out) or into a database (--target).

    \b
    Example:
      crmkit training generate --scenario configs/training/sales-en.yaml --seed 1 --out build/world
      crmkit training generate --scenario configs/training/sales-de.yaml --seed 2 --target sqlite:///train.db
    """
    from crmkit.training.generate import generate as make
    from crmkit.training.output import load_target, write_dir
    from crmkit.training.scenario import load_scenario

    if (out is None) == (target is None):
        raise UsageError("give exactly one of --out DIR or --target URL")
    s, digest = load_scenario(scenario)
    world = make(s, seed, str(scenario))
    where = str(out) if out else mask_url(target or "")
    if out is not None:
        write_dir(world, out)
    else:
        load_target(world, target or "", digest)
    if as_json:
        click.echo(
            json.dumps({"scenario": s.name, "seed": seed, "written_to": where, "counts": world.counts()}, indent=2)
        )
        return
    t = Table(title=f"World of {s.name} (seed {seed}, {s.locale}) → {where}")
    t.add_column("entity")
    t.add_column("rows", justify="right")
    for entity, n in world.counts().items():
        t.add_row(entity, f"{n:,}")
    _console().print(t)


@training.command()
@SCENARIO
@SEED
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the spreadsheet, CSV, answer key and mapping (and legacy.sqlite).",
)
@click.option(
    "--legacy-db",
    default=None,
    metavar="URL",
    help="Put the legacy ERP tables into this empty MariaDB/MySQL database instead of legacy.sqlite.",
)
@json_option
def legacy(scenario: Path, seed: int, out: Path, legacy_db: str | None, as_json: bool) -> None:
    """Export the scenario's world as a messy legacy estate with an answer key.

    \b
    Example:
      crmkit training legacy --scenario configs/training/legacy-zh.yaml --seed 7 --out build/training-estate
      crmkit migrate run build/training-estate/mapping.yaml --target sqlite:///build/crm.db
    """
    from crmkit.training.estate import LEGACY_DB_ENV, export
    from crmkit.training.generate import generate as make
    from crmkit.training.scenario import load_scenario

    if legacy_db is not None and dialect_of(legacy_db) not in MYSQL_DIALECTS:
        raise UsageError(
            "--legacy-db takes a MariaDB/MySQL URL (mysql+pymysql://user@host/db); leave it out for a SQLite file"
        )
    s, _ = load_scenario(scenario)
    written = export(make(s, seed, str(scenario)), out, legacy_db)
    key = written.answer
    if as_json:
        click.echo(
            json.dumps(
                {
                    "files": [str(f) for f in written.files],
                    "expected": key["expected"],
                    "duplicates": len(key["duplicates"]),
                    "problems": len(key["problems"]),
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    t = Table(title=f"Legacy estate of {s.name} (seed {seed}) in {out}")
    for c in ("entity", "rows", "must reject", "missing", "orphan", "cascade"):
        t.add_column(c, justify="right" if c != "entity" else "left")
    for entity, e in key["expected"].items():
        r = e["rejects_by_class"]
        t.add_row(
            entity,
            str(e["extracted"]),
            str(e["rejected"]),
            str(r["missing_required"]),
            str(r["orphan_reference"]),
            str(r["cascade_orphan"]),
        )
    _console().print(t)
    click.echo(
        f"{len(key['duplicates'])} true duplicate pairs, {len(key['problems'])} problems: {out / 'answer_key.json'}"
    )
    click.echo(
        f"migrate it: crmkit migrate run {out / 'mapping.yaml'} --target sqlite:///crm.db"
        + (f"  (with {LEGACY_DB_ENV} set to the legacy database URL)" if legacy_db else "")
    )


@training.command()
@click.option("--source", required=True, metavar="URL", help="The production CRM database (read only).")
@click.option("--target", required=True, metavar="URL", help="An empty database for the masked copy.")
@click.option(
    "--rules",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Masking rules YAML (docs/training-masking.md).",
)
@json_option
def mask(source: str, target: str, rules: Path, as_json: bool) -> None:
    """Copy a CRM database with personal data masked (salt from the environment).

    \b
    Example:
      export CRMKIT_MASK_SALT=$(openssl rand -hex 16)
      crmkit training mask --source sqlite:///crm.db --target sqlite:///masked.db --rules configs/training/mask.yaml
    """
    from crmkit.settings import Settings
    from crmkit.training.mask import mask as run_mask

    result = run_mask(source, target, rules, key=Settings.from_env().mask_key)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    t = Table(title=f"Masked copy {mask_url(source)} → {mask_url(target)}")
    for c in ("table", "source rows", "copied", "masked columns"):
        t.add_column(c, justify="left" if c in ("table", "masked columns") else "right")
    for table, s in result.tables.items():
        t.add_row(table, str(s["source_rows"]), str(s["copied"]), ", ".join(s["masked"]))
    _console().print(t)


@training.command()
@click.argument("sandbox_name", metavar="SANDBOX")
@click.option("--trainee", default=None, help="Only this trainee (default: every trainee).")
@click.option(
    "--server",
    default=None,
    metavar="URL",
    callback=sandbox_server,
    help="PostgreSQL server of the sandbox (env CRMKIT_SANDBOX_PG_URL).",
)
@click.option(
    "--home",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    callback=sandbox_home,
    help="Sandbox registry (env CRMKIT_HOME; default .crmkit/).",
)
@json_option
def check(sandbox_name: str, trainee: str | None, server: str | None, home: Path, as_json: bool) -> None:
    """Grade the exercises in a sandbox and print a score sheet.

    \b
    Example:
      crmkit training check pilot
      crmkit training check pilot --trainee t03 --json
    """
    from crmkit.training.exercises import grade
    from crmkit.training.sandbox import _trainees, load

    sb = load(home, sandbox_name)
    if not sb.exercises:
        raise UsageError(f"sandbox '{sandbox_name}' has no exercises: its scenario declares none (exercises:)")
    sheets = {t: grade(sb.url(home, t, server), sb.exercises) for t in _trainees(sb, trainee)}
    total = sum(e["points"] for e in sb.exercises)
    if as_json:
        click.echo(
            json.dumps(
                {
                    t: {"score": sum(g.score for g in gs), "out_of": total, "exercises": [g.to_json() for g in gs]}
                    for t, gs in sheets.items()
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    prompts = {e["id"]: e["prompt"] for e in sb.exercises}
    for t, grades in sheets.items():
        table = Table(title=f"Score sheet: {sandbox_name}/{t}")
        for c in ("exercise", "task", "score", "points", "detail"):
            table.add_column(c, justify="right" if c in ("score", "points") else "left", overflow="fold")
        for g in grades:
            table.add_row(g.id, prompts[g.id], f"{g.score:g}", str(g.points), g.detail)
        table.add_row("[bold]total[/bold]", "", f"[bold]{sum(g.score for g in grades):g}[/bold]", str(total), "")
        _console().print(table)
