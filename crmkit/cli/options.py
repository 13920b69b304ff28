"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

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


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")(fn)


def operator_option(fn: F) -> F:
    return click.option(
        "--operator", default=None, help="Who does this (recorded in the audit; default: the OS user)."
    )(fn)
