"""``crmkit serve``: the reference CRM API over a target, and its tokens."""

from __future__ import annotations

import datetime as dt
import re

import click

from crmkit.cli.options import target_option
from crmkit.schema.vocabulary import TOKEN_SCOPES

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


def _expiry(value: str | None) -> dt.datetime:
    """When a token minted now expires: after ``value`` (Nd or Nh), else CRMKIT_API_TOKEN_DAYS days."""
    from crmkit.settings import Settings

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if value is None:
        return now + dt.timedelta(days=Settings.from_env().api_token_days)
    m = _DURATION.match(value.strip())
    if not m or int(m.group(1)) == 0:
        raise click.BadParameter(f"{value!r}: give a number of days or hours, e.g. 30d or 12h", param_hint="--expires")
    n, unit = int(m.group(1)), m.group(2)
    if n > 3650 * (24 if unit == "h" else 1):
        raise click.BadParameter(f"{value!r}: at most 3650 days (ten years)", param_hint="--expires")
    return now + (dt.timedelta(days=n) if unit == "d" else dt.timedelta(hours=n))


@serve.command()
@target_option
@click.option("--user", "email", required=True, metavar="EMAIL", help="The CRM user (users.email).")
@click.option("--label", default=None, help="A note stored with the token, e.g. who uses it.")
@click.option(
    "--expires",
    default=None,
    metavar="Nd|Nh",
    help="Expire after N days or hours (default: 30d, or CRMKIT_API_TOKEN_DAYS days).",
)
@click.option(
    "--scope",
    type=click.Choice(TOKEN_SCOPES),
    default="api",
    show_default=True,
    help="api: the CRM resources, as the user's role allows; metrics: only /metrics (for a Prometheus scraper).",
)
def token(target: str, email: str, label: str | None, expires: str | None, scope: str) -> None:
    """Mint an API token for a user and print it once (only its hash is stored).

    The token's id (for `crmkit serve revoke --token-id`) is printed on stderr; minting is audited.

    \b
    Example:
      crmkit serve token --target sqlite:///crm.db --user wang.fang@acme.example --expires 7d
      curl -H "Authorization: Bearer crm_..." http://127.0.0.1:8000/accounts?q=hongda
      crmkit serve token --target sqlite:///crm.db --user ops@acme.example --scope metrics
    """
    from crmkit.api import auth
    from crmkit.api.db import make_engine
    from crmkit.api.server import prepare_target

    expires_at = _expiry(expires)
    prepare_target(target)
    engine = make_engine(target, pool_size=1)
    try:
        user_id, role = auth.find_user(engine, email)
        secret = auth.mint(engine, [user_id], label=label, expires_at=expires_at, scope=scope)[user_id]
        token_id = auth.token_id(engine, secret)
    finally:
        engine.dispose()
    click.echo(secret)
    click.echo(
        f"token {token_id} for {email} (role {role}, scope {scope}), expires {expires_at:%Y-%m-%d %H:%M} UTC; "
        "it is not shown again",
        err=True,
    )


@serve.command()
@target_option
@click.option("--user", "email", default=None, metavar="EMAIL", help="Revoke every live token of this user.")
@click.option("--token-id", type=click.IntRange(min=1), default=None, help="Revoke this one token (its id).")
def revoke(target: str, email: str | None, token_id: int | None) -> None:
    """Revoke one token (--token-id) or every live token of a user (--user); audited.

    \b
    Example:
      crmkit serve revoke --target sqlite:///crm.db --token-id 17
      crmkit serve revoke --target sqlite:///crm.db --user wang.fang@acme.example
    """
    from crmkit.api import auth
    from crmkit.api.db import make_engine
    from crmkit.api.server import prepare_target

    if (email is None) == (token_id is None):
        raise auth.TokenError("give either --token-id N (one token) or --user EMAIL (all of a user's tokens)")
    prepare_target(target)
    engine = make_engine(target, pool_size=1)
    try:
        if token_id is not None:
            owner, live = auth.token_owner(engine, token_id)
            n = auth.revoke(engine, token_id=token_id)
            what = f"token {token_id} of {owner}" + ("" if live else " (it was already revoked)")
        else:
            user_id, _ = auth.find_user(engine, email or "", active=False)
            n = auth.revoke(engine, user_id=user_id)
            what = f"{n} token(s) of {email}"
    finally:
        engine.dispose()
    click.echo(f"revoked {what}" if n or token_id is None else f"nothing to revoke: {what}")


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
