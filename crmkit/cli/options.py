"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from crmkit.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TARGET = "sqlite:///crm.db"


def target_option(fn: F) -> F:
    return click.option(
        "--target",
        envvar="CRMKIT_TARGET",
        default=DEFAULT_TARGET,
        show_default=True,
        metavar="URL",
        help="Target database URL (env CRMKIT_TARGET). Put passwords in the environment, not on the command line.",
    )(fn)


def sandbox_home(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path:
    """Callback of a --home option: the folder given, else the settings' (CRMKIT_HOME, default .crmkit)."""
    return value if value is not None else Settings.from_env().home


def sandbox_server(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Callback of a sandbox --server option: the URL given, else the settings' (CRMKIT_SANDBOX_PG_URL)."""
    return value or Settings.from_env().sandbox_server


def _allow(_ctx: click.Context, _param: click.Parameter, value: tuple[Path, ...]) -> None:
    from crmkit.paths import allow_paths

    allow_paths(value)


def allow_path_option(fn: F) -> F:
    """``--allow-path DIR`` (repeatable): a folder outside the project that configuration files may name."""
    return click.option(
        "--allow-path",
        multiple=True,
        metavar="DIR",
        type=click.Path(file_okay=False, path_type=Path),
        expose_value=False,
        callback=_allow,
        help=(
            "Let the mapping (and the files it names) read files in DIR too; repeatable. Without it, every "
            "path a mapping names must be inside its project: the nearest folder above it holding "
            "crmkit.yaml, pyproject.toml or .git, else the mapping's folder (symlinks followed)."
        ),
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")(fn)


def operator_option(fn: F) -> F:
    return click.option(
        "--operator", default=None, help="Who does this (recorded in the audit; default: the OS user)."
    )(fn)
