"""``crmkit db``: the target CRM schema."""

from __future__ import annotations

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
    """Print the schema version of TARGET ('none' for a database crmkit never touched).

    \b
    Example:
      crmkit db current --target sqlite:///crm.db
    """
    engine = versions.connect(target)
    try:
        rev = versions.current(engine)
    finally:
        engine.dispose()
    head = versions.head()
    click.echo(f"{rev or 'none'}" + (" (head)" if rev == head else f" (head is {head})"))
