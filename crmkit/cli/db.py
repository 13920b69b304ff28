"""``crmkit db``: the target CRM schema."""

from __future__ import annotations

import sys

import click

from crmkit.cli.options import target_option
from crmkit.schema import versions


@click.group()
def db() -> None:
    """The target CRM schema (Alembic versions).

    \b
    Example:
      crmkit db upgrade --target sqlite:///crm.db
      crmkit db current --target postgresql+psycopg://postgres@127.0.0.1/crm
      crmkit db repair --target postgresql+psycopg://postgres@127.0.0.1/crm
    """


@db.command()
@target_option
def upgrade(target: str) -> None:
    """Create the CRM schema in TARGET, or bring it up to this crmkit's version.

    \b
    Example:
      crmkit db upgrade --target sqlite:///crm.db
    """
    before, after = versions.ensure_schema(target)
    if before == after:
        click.echo(f"schema already at {after}")
    else:
        click.echo(f"schema upgraded: {before or 'empty'} -> {after}")


@db.command()
@target_option
def current(target: str) -> None:
    """Print the schema version of TARGET ('none' for a database crmkit never touched), and
    what it lacks of that version's tables, keys and indexes (then exit 1).

    \b
    Example:
      crmkit db current --target sqlite:///crm.db
    """
    from crmkit.db.url import mask_url
    from crmkit.schema import health

    engine = versions.connect(target)
    try:
        rev = versions.current(engine)
        head = versions.head()
        lacking = health.missing(engine) if rev == head else []
    finally:
        engine.dispose()
    click.echo(f"{rev or 'none'}" + (" (head)" if rev == head else f" (head is {head})"))
    if lacking:
        click.echo(f"degraded: the schema lacks {len(lacking)} of the models' tables, keys and indexes:")
        for item in lacking:
            click.echo(f"  {item}")
        click.echo(f"run `crmkit db repair --target {mask_url(target)}` to restore them")
        sys.exit(1)


@db.command()
@target_option
def repair(target: str) -> None:
    """Restore what TARGET lacks of the schema at its version: tables, keys, indexes, the id map.

    A bulk load killed or cut off midway leaves indexes, foreign keys and the id map's primary
    key dropped (every run start restores those of its own entities); this restores all of
    them, validated.  Exit 1 if something could not be restored.

    \b
    Example:
      crmkit db repair --target postgresql+psycopg://postgres@127.0.0.1/crm
    """
    from crmkit.migrate.safety.repair import repair as repair_target

    done = repair_target(target)
    if done.restored:
        click.echo(f"restored {len(done.restored)}:")
        for item in done.restored:
            click.echo(f"  {item}")
    else:
        click.echo(f"nothing to repair: the schema is whole at {done.revision}")
    if done.still_missing:
        click.echo(f"still missing {len(done.still_missing)}: " + "; ".join(done.still_missing), err=True)
        sys.exit(1)
