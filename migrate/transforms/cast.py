"""The implicit first and last steps of every field: blank text to null, the cast to the target type."""

from __future__ import annotations

import polars as pl

from crmkit.migrate.transforms.base import Step, as_str
from crmkit.migrate.transforms.dates import ISO_DATETIME, parse_datetime
from crmkit.migrate.transforms.lookups import to_bool
from crmkit.migrate.transforms.numbers import integer, number_expr


def cast_step(kind: str, max_length: int | None) -> Step:
    """The last step of every field: the target column's type (and length)."""
    if kind == "string":
        if not max_length:
            return Step("type", as_str)
        return Step(
            "type",
            lambda e: pl.when(as_str(e).str.len_chars() <= max_length).then(as_str(e)),
            True,
            f"is longer than {max_length} characters",
        )
    if kind == "integer":
        return Step("type", integer(None).apply, True, "is not a whole number")
    if kind == "decimal":
        return Step("type", lambda e: number_expr(e, ",", "."), True, "is not a number")
    if kind == "date":
        return Step(
            "type",
            lambda e: parse_datetime(e, ["%Y-%m-%d", *ISO_DATETIME]).dt.date(),
            True,
            "is not a date (YYYY-MM-DD); add a date transform with its format",
        )
    if kind == "datetime":
        return Step(
            "type",
            lambda e: parse_datetime(e, ["%Y-%m-%d", *ISO_DATETIME]),
            True,
            "is not a date-time; add a datetime transform with its format",
        )
    if kind == "boolean":
        return Step("type", to_bool(None).apply, True, "is not a yes/no value")
    raise ValueError(kind)  # pragma: no cover


def blank_to_null() -> Step:
    """Text that is empty or only blanks is no value (not a failure)."""
    return Step("blank", lambda e: pl.when(as_str(e).str.strip_chars() == "").then(None).otherwise(e))


def typed_cast(expr: pl.Expr, kind: str) -> pl.Expr:
    """Cast an already-typed value (not a string) to the target dtype; used for constants."""
    dtypes: dict[str, pl.DataType | type[pl.DataType]] = {
        "string": pl.String,
        "integer": pl.Int64,
        "decimal": pl.Float64,
        "date": pl.Date,
        "datetime": pl.Datetime("us"),
        "boolean": pl.Boolean,
    }
    return expr.cast(dtypes[kind], strict=False)
