"""The ``crmkit`` command.  Commands parse options, call one library function and print.

Errors a user can fix (:class:`crmkit.errors.CrmkitError`) become one line, ``Error: ...``,
and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from crmkit import __version__
from crmkit.errors import CrmkitError


class CrmkitGroup(click.Group):
    """A click group that turns domain errors into one line and exit code 2, and imports a
    command's module only when that command runs (``crmkit migrate run`` does not pay for
    the API server's or the dedupe engine's imports)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CrmkitError as exc:
            if ctx.find_root().params.get("debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_available()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _available():
            import importlib

            module = importlib.import_module(f"crmkit.cli.{cmd_name}")
            self.add_command(getattr(module, cmd_name))
        return super().get_command(ctx, cmd_name)


@click.group(cls=CrmkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(__version__, prog_name="crmkit")
def main(debug: bool) -> None:
    """crmkit: from legacy customer data to a CRM that departments use.

    \b
    Example:
      crmkit migrate plan migrate/mappings/acme-legacy.yaml
      crmkit migrate run migrate/mappings/acme-legacy.yaml --target sqlite:///crm.db
    """
    from crmkit.paths import allow_paths

    allow_paths(())  # only a command's own --allow-path widens what its files may name


#: command modules under crmkit/cli/; each defines a click command or group of the same name
COMMANDS = ("db", "migrate", "validate", "dedupe", "training", "sandbox", "serve", "loadtest", "rollout")


def _available() -> list[str]:
    import importlib.util

    # a capability not built yet has no module
    return [name for name in COMMANDS if importlib.util.find_spec(f"crmkit.cli.{name}") is not None]
