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

``tests/test_phones.py`` checks that wherever the fast path answers, it answers exactly
what ``phonenumbers`` does.
"""

from __future__ import annotations

from functools import cache

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata

_TYPES = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
    "pager", "uan", "voicemail", "fixed_line", "mobile",
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

    Each stage is materialised as a column, so that no regular expression runs twice.
    """
    meta = PhoneMetadata.metadata_for_region(region)
    cc = str(meta.country_code)
    idd = meta.international_prefix or "(?!)"
    cleaned = pl.col("cleaned")
    work = work.select(
        pl.when(cleaned.str.starts_with("+" + cc))
        .then(cleaned.str.slice(len(cc) + 1))
        .when(
            cleaned.str.contains(r"^\d+$")
            & ~cleaned.str.starts_with(cc)
            & ~cleaned.str.contains(f"^(?:{idd})")
        )
        .then(cleaned)
        .alias("national")
    )
    general = meta.general_desc
    national = pl.col("national")
    if meta.national_prefix_for_parsing:
        work = work.with_columns(
            national.str.extract(f"^({meta.national_prefix_for_parsing})", 1).alias("prefix"),
            national.str.contains(_full(general.national_number_pattern)).alias("viable"),
        ).with_columns(national.str.slice(pl.col("prefix").str.len_chars()).alias("stripped"))
        work = work.with_columns(
            pl.col("stripped").str.contains(_full(general.national_number_pattern)).alias("stripped_viable")
        ).select(
            pl.when(pl.col("prefix").is_not_null() & ~(pl.col("viable") & ~pl.col("stripped_viable")))
            .then(pl.col("stripped"))
            .otherwise(national)
            .alias("nsn")
        )
    else:
        work = work.select(national.alias("nsn"))
    nsn = pl.col("nsn")
    valid = _matches_desc(nsn, general)
    typed = [m for t in _TYPES if (m := _matches_desc(nsn, getattr(meta, t, None))) is not None]
    if valid is None or not typed:
        return pl.Series("e164", [None] * work.height, dtype=pl.String)
    work = work.with_columns(valid.alias("valid")).with_columns(
        pl.when(pl.col("valid")).then(pl.any_horizontal(typed)).otherwise(False).alias("typed")
    )
    return work.select(
        pl.when(pl.col("typed") & nsn.str.contains(r"^\d+$")).then(pl.lit("+" + cc) + nsn).alias("e164")
    )["e164"]


def clean(expr: pl.Expr) -> pl.Expr:
    """Full-width to half-width and separators removed: what the fast path reads."""
    return expr.str.normalize("NFKC").str.replace_all(_SEPARATORS, "")


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
    it row by row where set.
    """
    if region_column:
        r = pl.col(region_column).cast(pl.String).str.strip_chars().str.to_uppercase()
        known = r.is_in(sorted(phonenumbers.SUPPORTED_REGIONS))
        regions = frame.select(pl.when(known).then(r).otherwise(pl.lit(region)).alias("r"))["r"]
    else:
        regions = pl.Series("r", [region] * frame.height, dtype=pl.String)
    work = pl.DataFrame({"raw": frame[value], "region": regions})
    work = work.with_columns(clean(pl.col("raw")).alias("cleaned"), pl.lit(None, dtype=pl.String).alias("e164"))
    for r in sorted(r for r in work["region"].drop_nulls().unique().to_list() if fast_path_region(r)):
        mine = work["region"] == r
        if mine.all():
            work = work.with_columns(_fast(work, r))
        else:
            answers = _fast(work.filter(mine), r)
            work = work.with_columns(work["e164"].scatter(mine.arg_true(), answers))
    slow = work.filter(pl.col("e164").is_null() & pl.col("raw").is_not_null()).select("raw", "region").unique()
    if slow.height:
        answers = [parse_one(raw, reg) for raw, reg in slow.iter_rows()]
        slow = slow.with_columns(pl.Series("slow", answers, dtype=pl.String))
        work = work.join(slow, on=["raw", "region"], how="left", nulls_equal=True).with_columns(
            pl.coalesce("e164", "slow").alias("e164")
        )
    return work["e164"]
