"""Value lookups: legacy value maps and yes/no words."""

from __future__ import annotations

from typing import Any

import polars as pl

from crmkit.migrate.transforms.base import BARE, TRANSFORMS, Step, as_str


def map_step(values: dict[Any, Any], default: Any = None, has_default: bool = False) -> Step:
    """Legacy value → target value.  Unlisted values take ``default``, or fail without one."""
    old = [str(k) for k in values]
    new = [None if v is None else str(v) for v in values.values()]
    fallback = pl.lit(None if default is None else str(default), dtype=pl.String)

    def apply(e: pl.Expr) -> pl.Expr:
        return as_str(e).replace_strict(old, new, default=fallback if has_default else None, return_dtype=pl.String)

    def unlisted(e: pl.Expr) -> pl.Expr:
        return e.is_not_null() & ~as_str(e).is_in(old)

    return Step("map", apply, not has_default, "is not in the value map", fails=unlisted)


@TRANSFORMS.register("map", summary="Legacy value to target value; an unlisted value fails unless there is a default.")
def _map(args: Any) -> Step:
    if not isinstance(args, dict):
        raise ValueError("map takes {legacy value: target value, ...}")
    values = args.get("values", args)
    if "values" in args:
        return map_step(values, args.get("default"), "default" in args)
    return map_step(values)


@TRANSFORMS.register("bool", summary="Yes/no words to true/false; any other value fails.", tags=(BARE,))
def to_bool(args: Any) -> Step:
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
        v = as_str(e).str.strip_chars().str.to_lowercase()
        return pl.when(v.is_in(true)).then(True).when(v.is_in(false)).then(False).otherwise(None)

    return Step("bool", apply, True, "is not a yes/no value")


def _listed(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]
