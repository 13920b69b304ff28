"""Number transforms: thousands separators, decimal point or comma, whole numbers."""

from __future__ import annotations

from typing import Any

import polars as pl

from crmkit.migrate.transforms.base import BARE, TRANSFORMS, Step, as_str


def number_expr(e: pl.Expr, thousands: str, decimal: str) -> pl.Expr:
    """A number written with ``thousands`` grouping (in threes, or none) and ``decimal``.

    A value written in the other convention (``1,5`` where the decimal is a point) fails
    rather than being misread.
    """
    import re

    s = as_str(e).str.strip_chars().str.replace_all(r"[\s\u00a0'¥$€£]", "")
    t, d = re.escape(thousands) if thousands else "", re.escape(decimal)
    grouped = rf"\d{{1,3}}(?:{t}\d{{3}})+" if t else r"(?!)"
    shape = rf"^[+-]?(?:{grouped}|\d+)(?:{d}\d+)?$|^[+-]?{d}\d+$"
    if thousands:
        plain = s.str.replace_all(thousands, "", literal=True)
    else:
        plain = s
    if decimal != ".":
        plain = plain.str.replace_all(decimal, ".", literal=True)
    return pl.when(s.str.contains(shape)).then(plain.cast(pl.Float64, strict=False))


def _number_args(args: Any) -> tuple[str, str]:
    args = args or {}
    decimal = str(args.get("decimal", "."))
    thousands = str(args.get("thousands", "," if decimal == "." else "."))
    return thousands, decimal


@TRANSFORMS.register("number", summary="A number with thousands separators and a decimal point or comma.", tags=(BARE,))
def _number(args: Any) -> Step:
    """Numbers with thousands separators and a decimal point or comma: ``{decimal: ','}``."""
    thousands, decimal = _number_args(args)
    return Step("number", lambda e: number_expr(e, thousands, decimal), True, "is not a number")


@TRANSFORMS.register("integer", summary="As `number`, and the value must be whole.", tags=(BARE,))
def integer(args: Any) -> Step:
    thousands, decimal = _number_args(args)

    def apply(e: pl.Expr) -> pl.Expr:
        f = number_expr(e, thousands, decimal)
        return pl.when(f == f.round(0)).then(f.cast(pl.Int64, strict=False))

    return Step("integer", apply, True, "is not a whole number")
