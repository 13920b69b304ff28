"""Transform: source columns → target fields, column-wise, with a reason for every failure.

A field is a chain of steps.  Each step maps a polars expression to a new one and is run
over the whole column.  A *fallible* step (date, number, phone, email, map, regex, the
final cast to the target type) fails where its input was a value and its output is null;
the first failing step names the reason, e.g. ``birth_date: '1985-13-01' is not a date
(formats %Y-%m-%d)``.  The row is then rejected, or, with ``on_error: warn``, loads with
the field empty and the reason kept as a warning.

Transforms register by name (:func:`register`), so a project can add its own::

    @register("cn_province")
    def cn_province(args, field): ...
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import polars as pl

from crmkit.migrate import phones

#: an expression over the current value, given the whole frame for steps that need other columns
Apply = Callable[[pl.Expr], pl.Expr]


@dataclass(frozen=True)
class Step:
    """One transform in a field's chain."""

    name: str
    apply: Apply | None = None
    fallible: bool = False
    reason: str = "is not valid"
    #: frame-level steps (phone) compute a Series from the frame and the current value column
    frame_apply: Callable[[pl.DataFrame, str], pl.Series] | None = None
    #: source columns the step reads besides the field's own
    needs: tuple[str, ...] = dc_field(default_factory=tuple)
    #: a target field of the same feed that must be computed first (phone's region_field)
    needs_field: str | None = None
    #: when the step fails, given its input (default: a value went in and none came out)
    fails: Callable[[pl.Expr], pl.Expr] | None = None


Factory = Callable[[Any], Step]
REGISTRY: dict[str, Factory] = {}
#: transforms that take no arguments and may be written as a bare name
BARE: set[str] = set()


def register(name: str, bare: bool = False) -> Callable[[Factory], Factory]:
    """Register a transform factory under ``name`` (the YAML key)."""

    def deco(factory: Factory) -> Factory:
        REGISTRY[name] = factory
        if bare:
            BARE.add(name)
        return factory

    return deco


def build(name: str, args: Any) -> Step:
    """A Step from its YAML form; ValueError with a readable message when wrong."""
    if name not in REGISTRY:
        raise ValueError(f"unknown transform '{name}' (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name](args)


def _s(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.String)


def nfkc_series(s: pl.Series) -> pl.Series:
    """NFKC, computed only for the values that are not plain ASCII (NFKC leaves those as they are).

    ``str.normalize`` is the costliest string step (0.2 s per million e-mails here); most
    legacy e-mails, phones and codes are ASCII, found by comparing byte and character counts.
    """
    s = s.cast(pl.String)
    mask = (s.str.len_bytes() != s.str.len_chars()).fill_null(False)
    if not mask.any():
        return s
    return s.scatter(mask.arg_true(), s.filter(mask).str.normalize("NFKC"))


def nfkc(e: pl.Expr) -> pl.Expr:
    """:func:`nfkc_series` as an expression (one call per column, no per-row Python)."""
    return _s(e).map_batches(nfkc_series, return_dtype=pl.String)


# --- text ------------------------------------------------------------------


@register("strip", bare=True)
def _strip(args: Any) -> Step:
    return Step("strip", lambda e: _s(e).str.strip_chars())


@register("lower", bare=True)
def _lower(args: Any) -> Step:
    return Step("lower", lambda e: _s(e).str.to_lowercase())


@register("upper", bare=True)
def _upper(args: Any) -> Step:
    return Step("upper", lambda e: _s(e).str.to_uppercase())


@register("title", bare=True)
def _title(args: Any) -> Step:
    return Step("title", lambda e: _s(e).str.to_titlecase())


@register("nfkc", bare=True)
def _nfkc(args: Any) -> Step:
    """Unicode NFKC: full-width letters, digits and punctuation to half-width."""
    return Step("nfkc", nfkc)


@register("collapse_spaces", bare=True)
def _collapse(args: Any) -> Step:
    return Step("collapse_spaces", lambda e: _s(e).str.replace_all(r"\s+", " ").str.strip_chars())


@register("null_if")
def _null_if(args: Any) -> Step:
    """Values that mean 'nothing' in the legacy data (``-``, ``N/A``, ``无``) become null."""
    values = [str(v) for v in (args if isinstance(args, list) else [args])]
    return Step("null_if", lambda e: pl.when(_s(e).is_in(values)).then(None).otherwise(_s(e)))


@register("replace")
def _replace(args: Any) -> Step:
    if not isinstance(args, dict) or "pattern" not in args:
        raise ValueError("replace takes {pattern: REGEX, with: TEXT}")
    pattern, repl = str(args["pattern"]), str(args.get("with", ""))
    _check_regex(pattern)
    return Step("replace", lambda e: _s(e).str.replace_all(pattern, repl))


@register("regex")
def _regex(args: Any) -> Step:
    """Extract a regex group (the first group, or ``group: N``); no match is a failure."""
    pattern, group = (args, 1) if isinstance(args, str) else (args.get("pattern"), args.get("group", 1))
    if not isinstance(pattern, str):
        raise ValueError("regex takes a pattern, or {pattern: REGEX, group: N}")
    _check_regex(pattern)
    if isinstance(args, str) and _groups(pattern) == 0:
        group = 0  # no capture group: the whole match
    return Step("regex", lambda e: _s(e).str.extract(pattern, int(group)), True, f"does not match {pattern}")


def _groups(pattern: str) -> int:
    import re

    try:
        return re.compile(pattern).groups
    except re.error:
        return 1


@register("split")
def _split(args: Any) -> Step:
    """Part ``index`` (0-based, negative from the end) of the value split on ``sep``."""
    if not isinstance(args, dict) or "index" not in args:
        raise ValueError("split takes {sep: ' ', index: N}")
    sep, index = str(args.get("sep", " ")), int(args["index"])
    return Step("split", lambda e: _s(e).str.split(sep).list.get(index, null_on_oob=True))


@register("concat")
def _concat(args: Any) -> Step:
    """Append another source column: ``{concat: {column: B, sep: ' '}}``; nulls are skipped."""
    if not isinstance(args, dict) or "column" not in args:
        raise ValueError("concat takes {column: NAME, sep: ' '}")
    col, sep = str(args["column"]), str(args.get("sep", " "))
    return Step(
        "concat",
        lambda e: pl.concat_str([_s(e), pl.col(col).cast(pl.String)], separator=sep, ignore_nulls=True),
        needs=(col,),
    )


@register("truncate")
def _truncate(args: Any) -> Step:
    n = int(args)
    return Step("truncate", lambda e: _s(e).str.slice(0, n))


@register("default")
def _default(args: Any) -> Step:
    return Step("default", lambda e: e.fill_null(pl.lit(args)))


# --- value maps ---------------------------------------------------------------


def map_step(values: dict[Any, Any], default: Any = None, has_default: bool = False) -> Step:
    """Legacy value → target value.  Unlisted values take ``default``, or fail without one."""
    old = [str(k) for k in values]
    new = [None if v is None else str(v) for v in values.values()]
    fallback = pl.lit(None if default is None else str(default), dtype=pl.String)

    def apply(e: pl.Expr) -> pl.Expr:
        return _s(e).replace_strict(old, new, default=fallback if has_default else None, return_dtype=pl.String)

    def unlisted(e: pl.Expr) -> pl.Expr:
        return e.is_not_null() & ~_s(e).is_in(old)

    return Step("map", apply, not has_default, "is not in the value map", fails=unlisted)


@register("map")
def _map(args: Any) -> Step:
    if not isinstance(args, dict):
        raise ValueError("map takes {legacy value: target value, ...}")
    values = args.get("values", args)
    if "values" in args:
        return map_step(values, args.get("default"), "default" in args)
    return map_step(values)


@register("bool")
def _bool(args: Any) -> Step:
    """Yes/no words to booleans; ``{true: [...], false: [...]}`` replaces the default words."""
    args = args or {}
    if not isinstance(args, dict):
        raise ValueError("bool takes {true: [words...], false: [words...]}")
    # YAML reads an unquoted true:/false: key as a boolean
    args = {str(k).lower() if isinstance(k, bool) else k: v for k, v in args.items()}
    unknown = set(args) - {"true", "false"}
    if unknown:
        raise ValueError(f"bool: unknown option(s) {', '.join(map(str, sorted(unknown)))} (true, false)")
    true = [str(v).lower() for v in _listed(args.get("true", ["true", "t", "yes", "y", "1", "是", "对", "ja"]))]
    false = [str(v).lower() for v in _listed(args.get("false", ["false", "f", "no", "n", "0", "否", "不", "nein"]))]

    def apply(e: pl.Expr) -> pl.Expr:
        v = _s(e).str.strip_chars().str.to_lowercase()
        return pl.when(v.is_in(true)).then(True).when(v.is_in(false)).then(False).otherwise(None)

    return Step("bool", apply, True, "is not a yes/no value")


BARE.add("bool")


def _listed(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


# --- dates and numbers ------------------------------------------------------------

_EXCEL_EPOCH = dt.date(1899, 12, 30)
_ISO_DATETIME = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M")


def _excel_serial(e: pl.Expr) -> pl.Expr:
    num = _s(e).str.strip_chars().cast(pl.Float64, strict=False)
    ok = num.is_between(1, 2958465) & _s(e).str.contains(r"^\s*\d+(\.\d+)?\s*$")
    return pl.when(ok).then(
        pl.lit(dt.datetime(1899, 12, 30)) + pl.duration(microseconds=(num * 86_400_000_000).round(0).cast(pl.Int64))
    )


def _parse_datetime(e: pl.Expr, formats: list[str]) -> pl.Expr:
    """The first of ``formats`` that parses each value (like ``coalesce`` over every format).

    Each format is tried only on the values that no earlier format parsed: a column mostly
    in its first format costs one ``strptime`` pass, not one per format.
    """
    return _s(e).str.strip_chars().map_batches(lambda s: _parse_series(s, formats), return_dtype=pl.Datetime("us"))


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


@register("date")
def _date(args: Any) -> Step:
    """Try each strptime format (and ``excel_serial``) in turn; ISO date-times are always accepted."""
    formats = _formats(args, "date")
    return Step(
        "date",
        lambda e: _parse_datetime(e, formats + list(_ISO_DATETIME)).dt.date(),
        True,
        f"is not a date ({', '.join(formats)})",
    )


@register("datetime")
def _datetime(args: Any) -> Step:
    formats = _formats(args, "datetime")
    return Step(
        "datetime",
        lambda e: _parse_datetime(e, formats + list(_ISO_DATETIME)),
        True,
        f"is not a date-time ({', '.join(formats)})",
    )


def _number_expr(e: pl.Expr, thousands: str, decimal: str) -> pl.Expr:
    """A number written with ``thousands`` grouping (in threes, or none) and ``decimal``.

    A value written in the other convention (``1,5`` where the decimal is a point) fails
    rather than being misread.
    """
    import re

    s = _s(e).str.strip_chars().str.replace_all(r"[\s\u00a0'¥$€£]", "")
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


@register("number")
def _number(args: Any) -> Step:
    """Numbers with thousands separators and a decimal point or comma: ``{decimal: ','}``."""
    thousands, decimal = _number_args(args)
    return Step("number", lambda e: _number_expr(e, thousands, decimal), True, "is not a number")


BARE.add("number")


@register("integer", bare=True)
def _integer(args: Any) -> Step:
    thousands, decimal = _number_args(args)

    def apply(e: pl.Expr) -> pl.Expr:
        f = _number_expr(e, thousands, decimal)
        return pl.when(f == f.round(0)).then(f.cast(pl.Int64, strict=False))

    return Step("integer", apply, True, "is not a whole number")


# --- contact details ------------------------------------------------------------------

_EMAIL = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"


@register("email", bare=True)
def _email(args: Any) -> Step:
    """NFKC, trimmed, lower-cased, and checked for a plausible ``local@domain.tld`` shape."""

    def apply(e: pl.Expr) -> pl.Expr:
        v = nfkc(e).str.strip_chars().str.to_lowercase().str.replace_all(r"\s", "")
        return pl.when(v.str.contains(_EMAIL)).then(v)

    return Step("email", apply, True, "is not an email address")


@register("phone")
def _phone(args: Any) -> Step:
    """To E.164 with ``region`` as the default and ``region_column`` (ISO codes) per row."""
    args = args or {}
    if not isinstance(args, dict):
        raise ValueError("phone takes {region: CN} and/or {region_column: COUNTRY}")
    unknown = set(args) - {"region", "region_column", "region_field"}
    if unknown:
        raise ValueError(f"phone: unknown option(s) {', '.join(sorted(unknown))} (region, region_column, region_field)")
    region = args.get("region")
    region_field = args.get("region_field")
    region_column = f"__v_{region_field}" if region_field else args.get("region_column")
    if region is not None and not phones.fast_path_region(str(region)) and not _known_region(str(region)):
        raise ValueError(f"phone: unknown region '{region}' (an ISO 3166 code such as CN, US, DE)")

    def frame_apply(frame: pl.DataFrame, value: str) -> pl.Series:
        return phones.to_e164(frame, value, region, region_column)

    return Step(
        "phone",
        None,
        True,
        "is not a phone number",
        frame_apply=frame_apply,
        needs=(args["region_column"],) if args.get("region_column") else (),
        needs_field=str(region_field) if region_field else None,
    )


BARE.add("phone")


def _known_region(region: str) -> bool:
    import phonenumbers

    return region in phonenumbers.SUPPORTED_REGIONS


def _check_regex(pattern: str) -> None:
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except Exception as exc:  # polars raises ComputeError for a bad pattern
        raise ValueError(f"invalid regular expression {pattern!r}: {str(exc).splitlines()[0]}") from None


# --- casting to the target type --------------------------------------------------------


def cast_step(kind: str, max_length: int | None) -> Step:
    """The last step of every field: the target column's type (and length)."""
    if kind == "string":
        if not max_length:
            return Step("type", _s)
        return Step(
            "type",
            lambda e: pl.when(_s(e).str.len_chars() <= max_length).then(_s(e)),
            True,
            f"is longer than {max_length} characters",
        )
    if kind == "integer":
        return Step("type", _integer(None).apply, True, "is not a whole number")
    if kind == "decimal":
        return Step("type", lambda e: _number_expr(e, ",", "."), True, "is not a number")
    if kind == "date":
        return Step(
            "type",
            lambda e: _parse_datetime(e, ["%Y-%m-%d", *_ISO_DATETIME]).dt.date(),
            True,
            "is not a date (YYYY-MM-DD); add a date transform with its format",
        )
    if kind == "datetime":
        return Step(
            "type",
            lambda e: _parse_datetime(e, ["%Y-%m-%d", *_ISO_DATETIME]),
            True,
            "is not a date-time; add a datetime transform with its format",
        )
    if kind == "boolean":
        return Step("type", _bool(None).apply, True, "is not a yes/no value")
    raise ValueError(kind)  # pragma: no cover


def blank_to_null() -> Step:
    """Text that is empty or only blanks is no value (not a failure)."""
    return Step("blank", lambda e: pl.when(_s(e).str.strip_chars() == "").then(None).otherwise(e))


def typed_cast(expr: pl.Expr, kind: str) -> pl.Expr:
    """Cast an already-typed value (not a string) to the target dtype; used for constants."""
    dtypes = {
        "string": pl.String,
        "integer": pl.Int64,
        "decimal": pl.Float64,
        "date": pl.Date,
        "datetime": pl.Datetime("us"),
        "boolean": pl.Boolean,
    }
    return expr.cast(dtypes[kind], strict=False)
