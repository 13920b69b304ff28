"""``crmkit serve``: the reference CRM API over a target, and its tokens."""

from __future__ import annotations

import datetime as dt
import re

import click

from crmkit.cli.options import target_option

_DURATION = re.compile(r"^(\d+)([dh])$")


@click.group(invoke_without_command=True)
@target_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback needs --allow-remote.",
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="uvicorn worker processes (one per core is a good start).",
)
@click.option("--allow-remote", is_flag=True, help="Allow a --host other machines can reach.")
@click.option("--access-log", is_flag=True, help="Log every request (slower).")
@click.pass_context
def serve(
    ctx: click.Context, target: str, host: str, port: int, workers: int, allow_remote: bool, access_log: bool
) -> None:
    """Serve the reference CRM HTTP API over TARGET (FastAPI + uvicorn) until Ctrl-C.

    Token authentication (mint tokens with `crmkit serve token`), roles and department
    scoping, search, paging, an audit log of every write, /health, /metrics, and the
    OpenAPI spec at /openapi.json (browse it at /docs).

    \b
    Example:
      crmkit serve --target sqlite:///crm.db
      crmkit serve --target postgresql+psycopg://crm@127.0.0.1/crm --workers 2 --port 8080
      crmkit serve token --target sqlite:///crm.db --user wang.fang@acme.example
    """
    if ctx.invoked_subcommand is not None:
        return
    from crmkit.api.server import serve as run_server

    def announce(url: str) -> None:
        click.echo(f"crmkit API on {url} (OpenAPI: {url}/docs) with {workers} worker(s); Ctrl-C stops it", err=True)

    run_server(
        target,
        host=host,
        port=port,
        workers=workers,
        allow_remote=allow_remote,
        access_log=access_log,
        announce=announce,
    )


def _expiry(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    m = _DURATION.match(value.strip())
    if not m:
        raise click.BadParameter(f"{value!r}: give a number of days or hours, e.g. 30d or 12h", param_hint="--expires")
    n, unit = int(m.group(1)), m.group(2)
    delta = dt.timedelta(days=n) if unit == "d" else dt.timedelta(hours=n)
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) + delta


@serve.command()
@target_option
@click.option("--user", "email", required=True, metavar="EMAIL", help="The CRM user (users.email).")
@click.option("--label", default=None, help="A note stored with the token, e.g. who uses it.")
@click.option("--expires", default=None, metavar="Nd|Nh", help="Expire after N days or hours (default: never).")
def token(target: str, email: str, label: str | None, expires: str | None) -> None:
    """Mint an API token for a user and print it once (only its hash is stored).

    \b
    Example:
      crmkit serve token --target sqlite:///crm.db --user wang.fang@acme.example --expires 30d
      curl -H "Authorization: Bearer crm_..." http://127.0.0.1:8000/accounts?q=hongda
    """
    from crmkit.api import auth
    from crmkit.api.db import make_engine
    from crmkit.api.server import prepare_target

    expires_at = _expiry(expires)
    prepare_target(target)
    engine = make_engine(target, pool_size=1)
    try:
        user_id, role = auth.find_user(engine, email)
        secret = auth.mint(engine, [user_id], label=label, expires_at=expires_at)[user_id]
    finally:
        engine.dispose()
    click.echo(secret)
    click.echo(f"token for {email} (role {role}); it is not shown again", err=True)


@serve.command()
@target_option
@click.option("--user", "email", required=True, metavar="EMAIL", help="The CRM user (users.email).")
def revoke(target: str, email: str) -> None:
    """Revoke every live token of a user.

    \b
    Example:
      crmkit serve revoke --target sqlite:///crm.db --user wang.fang@acme.example
    """
    from crmkit.api import auth
    from crmkit.api.db import make_engine
    from crmkit.api.server import prepare_target

    prepare_target(target)
    engine = make_engine(target, pool_size=1)
    try:
        user_id, _ = auth.find_user(engine, email, active=False)
        n = auth.revoke(engine, user_id=user_id)
    finally:
        engine.dispose()
    click.echo(f"revoked {n} token(s) of {email}")


@serve.command()
@target_option
@click.option("--drop", is_flag=True, help="Remove the indexes instead.")
def index(target: str, drop: bool) -> None:
    """Create trigram indexes for the API's search (PostgreSQL; pg_trgm).

    Without them a search reads every row of its table.  Optional, because every index
    slows bulk loads: create them after migrating, drop them before a large migration.
    On SQLite there is nothing to do.

    \b
    Example:
      crmkit serve index --target postgresql+psycopg://crm@127.0.0.1/crm
      crmkit serve index --target postgresql+psycopg://crm@127.0.0.1/crm --drop
    """
    from crmkit.api import search_index
    from crmkit.api.db import make_engine
    from crmkit.api.server import prepare_target

    prepare_target(target)
    engine = make_engine(target, pool_size=1)
    try:
        if engine.dialect.name != "postgresql":
            click.echo("SQLite has no trigram indexes: search scans its table (nothing to do)")
            return
        names = search_index.drop(engine) if drop else search_index.create(engine)
    finally:
        engine.dispose()
    verb = "dropped" if drop else "created"
    click.echo(f"{verb} {len(names)} index(es)" + (f": {', '.join(names)}" if names else " (all were already so)"))
