"""Text transforms: case, whitespace, Unicode, regular expressions, splitting and joining."""

from __future__ import annotations

from typing import Any

import polars as pl

from crmkit.migrate.transforms.base import BARE, TRANSFORMS, Step, as_str, check_regex, nfkc


@TRANSFORMS.register("strip", summary="Removes leading and trailing whitespace.", tags=(BARE,))
def _strip(args: Any) -> Step:
    return Step("strip", lambda e: as_str(e).str.strip_chars())


@TRANSFORMS.register("lower", summary="Lower case.", tags=(BARE,))
def _lower(args: Any) -> Step:
    return Step("lower", lambda e: as_str(e).str.to_lowercase())


@TRANSFORMS.register("upper", summary="Upper case.", tags=(BARE,))
def _upper(args: Any) -> Step:
    return Step("upper", lambda e: as_str(e).str.to_uppercase())


@TRANSFORMS.register("title", summary="Each word capitalised, the rest lower case.", tags=(BARE,))
def _title(args: Any) -> Step:
    return Step("title", lambda e: as_str(e).str.to_titlecase())


@TRANSFORMS.register(
    "nfkc", summary="Unicode NFKC: full-width letters, digits and punctuation to half-width.", tags=(BARE,)
)
def _nfkc(args: Any) -> Step:
    """Unicode NFKC: full-width letters, digits and punctuation to half-width."""
    return Step("nfkc", nfkc)


@TRANSFORMS.register(
    "collapse_spaces", summary="Every run of whitespace becomes one space; the ends are trimmed.", tags=(BARE,)
)
def _collapse(args: Any) -> Step:
    return Step("collapse_spaces", lambda e: as_str(e).str.replace_all(r"\s+", " ").str.strip_chars())


@TRANSFORMS.register("null_if", summary="Values that mean nothing in the legacy data (`-`, `N/A`, `无`) become empty.")
def _null_if(args: Any) -> Step:
    """Values that mean 'nothing' in the legacy data (``-``, ``N/A``, ``无``) become null."""
    values = [str(v) for v in (args if isinstance(args, list) else [args])]
    return Step("null_if", lambda e: pl.when(as_str(e).is_in(values)).then(None).otherwise(as_str(e)))


@TRANSFORMS.register("replace", summary="Regular-expression replacement: `{pattern: REGEX, with: TEXT}`.")
def _replace(args: Any) -> Step:
    if not isinstance(args, dict) or "pattern" not in args:
        raise ValueError("replace takes {pattern: REGEX, with: TEXT}")
    pattern, repl = str(args["pattern"]), str(args.get("with", ""))
    check_regex(pattern)
    return Step("replace", lambda e: as_str(e).str.replace_all(pattern, repl))


@TRANSFORMS.register("regex", summary="Extracts a group of a regular expression; no match fails.")
def _regex(args: Any) -> Step:
    """Extract a regex group (the first group, or ``group: N``); no match is a failure."""
    pattern, group = (args, 1) if isinstance(args, str) else (args.get("pattern"), args.get("group", 1))
    if not isinstance(pattern, str):
        raise ValueError("regex takes a pattern, or {pattern: REGEX, group: N}")
    check_regex(pattern)
    if isinstance(args, str) and _groups(pattern) == 0:
        group = 0  # no capture group: the whole match
    return Step("regex", lambda e: as_str(e).str.extract(pattern, int(group)), True, f"does not match {pattern}")


def _groups(pattern: str) -> int:
    import re

    try:
        return re.compile(pattern).groups
    except re.error:
        return 1


@TRANSFORMS.register("split", summary="Part `index` of the value split on `sep`.")
def _split(args: Any) -> Step:
    """Part ``index`` (0-based, negative from the end) of the value split on ``sep``."""
    if not isinstance(args, dict) or "index" not in args:
        raise ValueError("split takes {sep: ' ', index: N}")
    sep, index = str(args.get("sep", " ")), int(args["index"])
    return Step("split", lambda e: as_str(e).str.split(sep).list.get(index, null_on_oob=True))


@TRANSFORMS.register("concat", summary="Appends another source column with `sep` between; empty parts are skipped.")
def _concat(args: Any) -> Step:
    """Append another source column: ``{concat: {column: B, sep: ' '}}``; nulls are skipped."""
    if not isinstance(args, dict) or "column" not in args:
        raise ValueError("concat takes {column: NAME, sep: ' '}")
    col, sep = str(args["column"]), str(args.get("sep", " "))
    return Step(
        "concat",
        lambda e: pl.concat_str([as_str(e), pl.col(col).cast(pl.String)], separator=sep, ignore_nulls=True),
        needs=(col,),
    )


@TRANSFORMS.register("truncate", summary="Keeps the first N characters.")
def _truncate(args: Any) -> Step:
    if isinstance(args, bool) or not isinstance(args, int) or args < 0:
        raise ValueError("truncate takes a number of characters, e.g. {truncate: 50}")
    n = args
    return Step("truncate", lambda e: as_str(e).str.slice(0, n))


@TRANSFORMS.register("default", summary="Fills an empty value at this point of the chain.")
def _default(args: Any) -> Step:
    if isinstance(args, (list, dict)) or args is None:
        raise ValueError("default takes one value (text, a number, true/false), e.g. {default: unknown}")
    return Step("default", lambda e: e.fill_null(pl.lit(args)))
