"""Phone numbers to E.164, column-wise.

``phonenumbers`` is the reference, but it is pure Python (about 20 µs a number here),
which would make a million-row migration spend most of its time on one column.  So:

1. a vectorised fast path re-states, as polars regular expressions over whole columns,
   what ``phonenumbers.parse`` + ``is_valid_number`` + ``format_number(E164)`` do for a
   plain number of a region whose metadata needs no transform rule: strip separators,
   take ``+CC`` off, strip the national prefix with the region's own
   ``national_prefix_for_parsing``, and check the region's possible lengths and number
   type patterns.  It only ever *accepts* a number; anything unusual (letters,
   extensions, IDD prefixes, a country code shared by several regions, an invalid
   number) falls through to
2. ``phonenumbers`` itself, called once per distinct remaining value.

``tests/unit/test_phones.py`` checks that wherever the fast path answers, it answers exactly
what ``phonenumbers`` does.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata

_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
_SEPARATORS = r"[\s\-./()\u00a0\u2010-\u2015]"


def _full(pattern: str) -> str:
    return f"^(?:{pattern})$"


def _matches_desc(nsn: pl.Expr, desc: object) -> pl.Expr | None:
    pattern = getattr(desc, "national_number_pattern", None)
    if not pattern:
        return None
    expr = nsn.str.contains(_full(pattern))
    lengths = [n for n in getattr(desc, "possible_length", ()) if n > 0]
    if lengths:
        expr = expr & nsn.str.len_chars().is_in(lengths)
    return expr


@cache
def _main_region(country_code: int) -> str | None:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    return regions[0] if regions else None


@cache
def fast_path_region(region: str) -> bool:
    """Whether ``region``'s numbers can take the vectorised path.

    The region must be the main one of its country code (GB for +44, US for +1) and be
    matched without ``leading_digits``: ``phonenumbers`` then tries it first when it looks
    for the region of a number, so a number valid there is valid, full stop.  Numbers of
    the code's other regions (JE, GG, CA...) fall through to ``phonenumbers``.
    """
    meta = PhoneMetadata.metadata_for_region(region)
    return (
        meta is not None
        and not meta.national_prefix_transform_rule
        and _main_region(meta.country_code) == region
        and not meta.leading_digits
    )


def _fast(work: pl.DataFrame, region: str) -> pl.Series:
    """E.164 for the ``cleaned`` numbers of ``region`` the fast path is sure of, else null.

    Each stage is materialised as a column, so that no regular expression runs twice; the
    number-type patterns run only on the numbers no earlier type matched (mobile and fixed
    line first: most numbers are one of those).
    """
    meta = PhoneMetadata.metadata_for_region(region)
    assert meta is not None  # fast_path_region() said so
    cc = str(meta.country_code)
    general = meta.general_desc
    typed_descs: list[Any] = [
        d for t in _TYPES_FIRST if getattr(d := getattr(meta, t, None), "national_number_pattern", None)
    ]
    if not getattr(general, "national_number_pattern", None) or not typed_descs:
        return pl.repeat(None, work.height, dtype=pl.String, eager=True).alias("e164")
    nsn, valid = _national_significant(work, meta)
    valid = valid & _lengths_ok(nsn, general) & nsn.str.contains(r"^\d+$").fill_null(False)
    rows = valid.arg_true()
    todo = nsn.gather(rows)
    typed = pl.Series("typed", [], dtype=pl.UInt32)
    for desc in typed_descs:
        if todo.len() == 0:
            break
        hit = todo.str.contains(_full(desc.national_number_pattern)).fill_null(False) & _lengths_ok(todo, desc)
        typed = typed.append(rows.filter(hit))
        rows, todo = rows.filter(~hit), todo.filter(~hit)
    out = pl.repeat(None, work.height, dtype=pl.String, eager=True).alias("e164")
    if typed.len() == 0:
        return out
    return out.scatter(typed, ("+" + cc) + nsn.gather(typed))


#: the order number types are tried in (any match makes a number valid)
_TYPES_FIRST = ("mobile", "fixed_line") + tuple(t for t in _TYPES if t not in ("mobile", "fixed_line"))


def _lengths_ok(nsn: pl.Series, desc: object) -> pl.Series:
    lengths = [n for n in getattr(desc, "possible_length", ()) if n > 0]
    if not lengths:
        return pl.repeat(True, nsn.len(), eager=True)
    return nsn.str.len_chars().is_in(lengths).fill_null(False)


def _national_significant(work: pl.DataFrame, meta: PhoneMetadata) -> tuple[pl.Series, pl.Series]:
    """The national significant number of each ``cleaned`` value (null where the fast path
    cannot tell) and whether it matches the region's general pattern, as ``phonenumbers``
    strips the national prefix: only where the rest is still a viable number."""
    cc = str(meta.country_code)
    idd = meta.international_prefix or "(?!)"
    cleaned = pl.col("cleaned")
    assert meta.general_desc is not None and meta.general_desc.national_number_pattern  # checked by _fast
    general = _full(meta.general_desc.national_number_pattern)
    national = work.select(
        pl.when(cleaned.str.starts_with("+" + cc))
        .then(cleaned.str.slice(len(cc) + 1))
        .when(cleaned.str.contains(r"^\d+$") & ~cleaned.str.starts_with(cc) & ~cleaned.str.contains(f"^(?:{idd})"))
        .then(cleaned)
        .alias("national")
    )
    n = pl.col("national")
    if not meta.national_prefix_for_parsing:
        out = national.select(n.alias("nsn"), n.str.contains(general).fill_null(False).alias("ok"))
        return out["nsn"], out["ok"]
    steps = national.with_columns(
        n.str.extract(f"^({meta.national_prefix_for_parsing})", 1).alias("prefix"),
        n.str.contains(general).alias("viable"),
    ).with_columns(n.str.slice(pl.col("prefix").str.len_chars()).alias("stripped"))
    steps = steps.with_columns(pl.col("stripped").str.contains(general).alias("stripped_viable"))
    use = pl.col("prefix").is_not_null() & ~(pl.col("viable") & ~pl.col("stripped_viable"))
    out = steps.select(
        pl.when(use).then(pl.col("stripped")).otherwise(n).alias("nsn"),
        pl.when(use).then(pl.col("stripped_viable")).otherwise(pl.col("viable")).fill_null(False).alias("ok"),
    )
    return out["nsn"], out["ok"]


def clean(expr: pl.Expr) -> pl.Expr:
    """Full-width to half-width and separators removed: what the fast path reads."""
    from crmkit.migrate.transforms.base import nfkc

    return nfkc(expr).str.replace_all(_SEPARATORS, "")


def parse_one(raw: str, region: str | None) -> str | None:
    """The reference: ``phonenumbers`` on one value; None when not a valid number."""
    try:
        number = phonenumbers.parse(raw, region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def to_e164(frame: pl.DataFrame, value: str, region: str | None, region_column: str | None) -> pl.Series:
    """E.164 numbers for ``frame[value]``; null where a value is not a valid number.

    ``region`` is the default region; ``region_column`` (ISO 3166 alpha-2 codes) overrides
    it row by row where set.  Only the rows with a value are worked on.
    """
    raw = frame[value]
    present = raw.is_not_null()
    rows = present.arg_true()
    if region_column:
        r = pl.col(region_column).cast(pl.String).str.strip_chars().str.to_uppercase()
        known = r.is_in(sorted(phonenumbers.SUPPORTED_REGIONS))
        regions = frame.select(pl.when(known).then(r).otherwise(pl.lit(region)).alias("r"))["r"].gather(rows)
    else:
        regions = pl.repeat(region, rows.len(), dtype=pl.String, eager=True).alias("r")
    work = pl.DataFrame({"raw": raw.gather(rows), "region": regions})
    work = work.with_columns(clean(pl.col("raw")).alias("cleaned"), pl.lit(None, dtype=pl.String).alias("e164"))
    for r in sorted(r for r in work["region"].drop_nulls().unique().to_list() if fast_path_region(r)):
        mine = work["region"] == r
        if mine.all():
            work = work.with_columns(_fast(work, r))
        else:
            answers = _fast(work.filter(mine), r)
            work = work.with_columns(work["e164"].scatter(mine.arg_true(), answers))
    slow = work.filter(pl.col("e164").is_null()).select("raw", "region").unique()
    if slow.height:
        slow_answers = [parse_one(raw, reg) for raw, reg in slow.iter_rows()]
        slow = slow.with_columns(pl.Series("slow", slow_answers, dtype=pl.String))
        work = work.join(slow, on=["raw", "region"], how="left", nulls_equal=True, maintain_order="left").with_columns(
            pl.coalesce("e164", "slow").alias("e164")
        )
    out = pl.repeat(None, raw.len(), dtype=pl.String, eager=True).alias("e164")
    return out.scatter(rows, work["e164"]) if rows.len() else out
