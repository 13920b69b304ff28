"""Check kinds as polars expressions, and the registry of custom checks.

Every check here is column-wise: a polars expression over whole columns, never a Python
function per row.  A check expression is True where a value is *valid* (pandera's
convention); null means "nothing to check" and passes.

Custom checks register by name and are then usable from YAML (``custom: NAME``)::

    import polars as pl
    from crmkit.validate import register_check

    @register_check("no_placeholder")
    def no_placeholder(field: str, args: object) -> pl.Expr:
        return ~pl.col(field).str.to_lowercase().is_in(["n/a", "test", "xxx"])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import polars as pl

from crmkit.registry import Registry

#: the address shape the migration's ``email`` transform accepts (migrate/transforms/phones_emails.py)
EMAIL = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
#: E.164: a plus, a country code not starting with 0, at most 15 digits in all
E164 = r"^\+[1-9][0-9]{6,14}$"

CheckFn = Callable[[str, Any], pl.Expr]


@dataclass(frozen=True)
class CustomCheck:
    """A custom check: ``fn(field, args) -> pl.Expr`` (True where valid), and what a failing value is."""

    fn: CheckFn
    message: str


#: every custom check by the name YAML gives it (``custom: NAME``)
CHECKS: Registry[CustomCheck] = Registry("custom check")


def register_check(name: str, message: str | None = None) -> Callable[[CheckFn], CheckFn]:
    """Register ``fn(field, args) -> pl.Expr`` (True where valid) as the custom check ``name``."""

    def deco(fn: CheckFn) -> CheckFn:
        text = message or f"fails the check {name}"
        summary = (fn.__doc__ or "").strip().split("\n", 1)[0].strip() or text
        CHECKS.add(name, CustomCheck(fn, text), summary=summary)
        return fn

    return deco


@cache
def countries() -> tuple[str, ...]:
    """ISO 3166-1 alpha-2 codes of current countries."""
    import pycountry

    return tuple(sorted(c.alpha_2 for c in pycountry.countries))


@cache
def currencies() -> tuple[str, ...]:
    """ISO 4217 alphabetic codes."""
    import pycountry

    return tuple(sorted(c.alpha_3 for c in pycountry.currencies))


def format_valid(fmt: str, col: pl.Expr) -> tuple[pl.Expr, str]:
    """The validity expression of a named format, and what a failing value is not."""
    if fmt == "email":
        return col.str.contains(EMAIL), "is not an email address"
    if fmt == "e164":
        return col.str.contains(E164), "is not a phone number in E.164 (+8613812345678)"
    if fmt == "iso3166":
        return col.is_in(countries()), "is not an ISO 3166 country code (CN, US, DE)"
    if fmt == "iso4217":
        return col.is_in(currencies()), "is not an ISO 4217 currency code (CNY, USD, EUR)"
    raise ValueError(fmt)  # pragma: no cover - the rules model allows only the above


def mask(value: pl.Expr) -> pl.Expr:
    """Personal data as shown in reports: first and last character kept (``j***m``)."""
    n = value.str.len_chars()
    return (
        pl.when(n <= 2)
        .then(pl.lit("***"))
        .otherwise(pl.concat_str([value.str.slice(0, 1), pl.lit("***"), value.str.slice(-1, 1)]))
    )


# --- custom checks that ship with crmkit ------------------------------------------------

PLACEHOLDERS = ["n/a", "na", "none", "null", "test", "xxx", "x", "-", "--", "?", "tbd", "unknown", "无", "暂无", "不详"]


@register_check("no_placeholder", "is a placeholder, not a value")
def no_placeholder(field: str, args: Any) -> pl.Expr:
    """Values such as ``n/a``, ``test``, ``xxx``, ``无``; ``args`` may list more."""
    extra = [str(a).lower() for a in (args or [])]
    return ~pl.col(field).cast(pl.String).str.strip_chars().str.to_lowercase().is_in(PLACEHOLDERS + extra)


@register_check("cn_mobile", "is not a mainland China mobile number (+861[3-9]XXXXXXXXX)")
def cn_mobile(field: str, args: Any) -> pl.Expr:
    """An E.164 number that is a mainland China mobile, where the number is Chinese."""
    col = pl.col(field)
    return ~col.str.starts_with("+86") | col.str.contains(r"^\+861[3-9][0-9]{9}$")
