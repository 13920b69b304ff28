"""Date and date-time transforms: strptime formats tried in turn, Excel serial days, ISO always."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from crmkit.migrate.transforms.base import TRANSFORMS, Step, as_str

_EXCEL_EPOCH = dt.date(1899, 12, 30)
ISO_DATETIME = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M")


def _excel_serial(e: pl.Expr) -> pl.Expr:
    num = as_str(e).str.strip_chars().cast(pl.Float64, strict=False)
    ok = num.is_between(1, 2958465) & as_str(e).str.contains(r"^\s*\d+(\.\d+)?\s*$")
    return pl.when(ok).then(
        pl.lit(dt.datetime(1899, 12, 30)) + pl.duration(microseconds=(num * 86_400_000_000).round(0).cast(pl.Int64))
    )


def parse_datetime(e: pl.Expr, formats: list[str]) -> pl.Expr:
    """The first of ``formats`` that parses each value (like ``coalesce`` over every format).

    Each format is tried only on the values that no earlier format parsed: a column mostly
    in its first format costs one ``strptime`` pass, not one per format.
    """
    return as_str(e).str.strip_chars().map_batches(lambda s: _parse_series(s, formats), return_dtype=pl.Datetime("us"))


def _format_expr(e: pl.Expr, fmt: str) -> pl.Expr:
    if fmt == "excel_serial":
        return _excel_serial(e)
    if any(x in fmt for x in ("%H", "%M", "%S")):
        return e.str.strptime(pl.Datetime("us"), fmt, strict=False, exact=True)
    return e.str.strptime(pl.Date, fmt, strict=False, exact=True).cast(pl.Datetime("us"))


def _parse_series(s: pl.Series, formats: list[str]) -> pl.Series:
    out = pl.repeat(None, s.len(), dtype=pl.Datetime("us"), eager=True).alias(s.name)
    idx = s.is_not_null().arg_true()
    todo = s.gather(idx)
    for fmt in formats:
        if todo.len() == 0:
            break
        parsed = pl.DataFrame({"v": todo}).select(_format_expr(pl.col("v"), fmt))
        got = parsed.to_series().is_not_null()
        if got.any():
            out = out.scatter(idx.filter(got), parsed.to_series().filter(got))
            idx, todo = idx.filter(~got), todo.filter(~got)
    return out


def _formats(args: Any, what: str) -> list[str]:
    formats = [args] if isinstance(args, str) else list(args or [])
    if not formats or not all(isinstance(f, str) for f in formats):
        raise ValueError(f"{what} takes a list of formats, e.g. ['%Y-%m-%d', '%Y/%m/%d', excel_serial]")
    return formats


@TRANSFORMS.register(
    "date", summary="Parses a date with the first of the given formats that fits (and `excel_serial`, ISO)."
)
def _date(args: Any) -> Step:
    """Try each strptime format (and ``excel_serial``) in turn; ISO date-times are always accepted."""
    formats = _formats(args, "date")
    return Step(
        "date",
        lambda e: parse_datetime(e, formats + list(ISO_DATETIME)).dt.date(),
        True,
        f"is not a date ({', '.join(formats)})",
    )


@TRANSFORMS.register("datetime", summary="As `date`, keeping the time.")
def _datetime(args: Any) -> Step:
    formats = _formats(args, "datetime")
    return Step(
        "datetime",
        lambda e: parse_datetime(e, formats + list(ISO_DATETIME)),
        True,
        f"is not a date-time ({', '.join(formats)})",
    )
