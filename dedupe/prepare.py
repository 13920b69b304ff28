"""Prepare: input columns → the rules' fields, normalised once, column-wise.

Each field is a chain of normalisers (``nfkc``, ``lower``, ``email``, ``{phone: {region: CN}}``,
``pinyin``...).  Most are polars expressions over the whole column; the few that need a
library (phone numbers, pinyin, metaphone) run once per *distinct* value.  Empty text
becomes null: a missing value never agrees with anything.

Normalisers register by name in :data:`NORMALISERS` (``@NORMALISERS.register("name", summary=...)``),
like the migration's transforms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from crmkit.migrate.transforms import build as build_transform
from crmkit.migrate.transforms import nfkc_series
from crmkit.registry import Registry

ExprFn = Callable[[pl.Expr], pl.Expr]
SeriesFn = Callable[[pl.Series], pl.Series]


@dataclass(frozen=True)
class Norm:
    """A normaliser: an expression over the column, a function of the column, or of its distinct values."""

    name: str
    expr: ExprFn | None = None
    series: SeriesFn | None = None
    distinct: SeriesFn | None = None


nfkc = nfkc_series  # NFKC only where a value is not plain ASCII


Factory = Callable[[Any], Norm]
#: every normaliser by its YAML name
NORMALISERS: Registry[Factory] = Registry("normaliser")


def build(name: str, args: Any) -> Norm:
    """A normaliser from its YAML form; ValueError with a readable message when wrong."""
    return NORMALISERS.get(name)(args)


def _s(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.String)


def _simple(name: str, fn: ExprFn, summary: str) -> None:
    NORMALISERS.add(name, lambda args: Norm(name, fn), summary=summary)


_simple("strip", lambda e: _s(e).str.strip_chars(), "Removes leading and trailing whitespace.")
_simple("lower", lambda e: _s(e).str.to_lowercase(), "Lower case.")
_simple("upper", lambda e: _s(e).str.to_uppercase(), "Upper case.")
NORMALISERS.add(
    "nfkc", lambda args: Norm("nfkc", series=nfkc), summary="Unicode NFKC: full-width `ＡＢＣ１２３` → `ABC123`."
)
_simple(
    "collapse_spaces",
    lambda e: _s(e).str.replace_all(r"\s+", " ").str.strip_chars(),
    "Every run of whitespace becomes one space; the ends are trimmed.",
)
_simple(
    "ascii_fold",
    lambda e: _s(e).str.normalize("NFKD").str.replace_all(r"\p{Mn}", ""),
    "Drops accents: `Müller` → `Muller`.",
)
_simple("alnum", lambda e: _s(e).str.replace_all(r"[^\p{L}\p{N}]", ""), "Keeps only letters and digits.")
_simple(
    "letters",
    lambda e: _s(e).str.replace_all(r"[^\p{L}\s]", "").str.replace_all(r"\s+", " ").str.strip_chars(),
    "Keeps only letters (words one space apart).",
)
_simple("digits", lambda e: _s(e).str.replace_all(r"\D", ""), "Keeps only digits.")
_simple(
    "sorted_tokens",
    lambda e: _s(e).str.extract_all(r"\S+").list.sort().list.join(" "),
    "Words in alphabetical order: `Wei Zhang` and `Zhang Wei` agree.",
)
NORMALISERS.add(
    "email",
    lambda args: Norm("email", series=lambda s: nfkc(s).str.to_lowercase().str.replace_all(r"\s", "")),
    summary="NFKC, lower case, no spaces.",
)
_simple("soundex", lambda e: soundex(_s(e)), "American Soundex code (`Robert` → `R163`).")


@NORMALISERS.register(
    "null_if",
    summary="`{null_if: [values]}`: values that mean nothing (`-`, `N/A`, `无`) become empty, as in mappings.",
)
def _null_if(args: Any) -> Norm:
    """Values that mean 'nothing' (``-``, ``N/A``, ``无``) become null."""
    values = [str(v) for v in (args if isinstance(args, list) else [args])]
    return Norm("null_if", lambda e: pl.when(_s(e).is_in(values)).then(None).otherwise(_s(e)))


@NORMALISERS.register(
    "replace",
    summary="`{replace: {pattern: REGEX, with: TEXT}}`: regular-expression replacement, as in mappings.",
)
def _replace(args: Any) -> Norm:
    if not isinstance(args, dict) or "pattern" not in args:
        raise ValueError("replace takes {pattern: REGEX, with: TEXT}")
    import re

    try:
        re.compile(str(args["pattern"]))
    except re.error as exc:
        raise ValueError(f"replace: bad pattern: {exc}") from None
    pattern, repl = str(args["pattern"]), str(args.get("with", ""))
    return Norm("replace", lambda e: _s(e).str.replace_all(pattern, repl))


@NORMALISERS.register(
    "prefix",
    summary="`{prefix: N}`: the first N characters.",
)
def _prefix(args: Any) -> Norm:
    if not isinstance(args, int) or args < 1:
        raise ValueError("prefix takes a length, e.g. {prefix: 3}")
    return Norm("prefix", lambda e: _s(e).str.slice(0, args))


@NORMALISERS.register(
    "phone",
    summary="`{phone: {region: CN}}`: international form `+8613800138000`; national numbers get the region's country code, its national prefix (`0`) dropped. Structural only (the migration's `phone` transform validates).",
)
def _phone(args: Any) -> Norm:
    """International form ``+8613800138000``: national numbers get ``region``'s country code.

    Structural only (separators, ``+``/``00`` prefixes, the region's national prefix), so
    it is column-wise and also brings invalid numbers to one spelling; the migration's
    ``phone`` transform is what validates.
    """
    args = args or {}
    if not isinstance(args, dict) or set(args) - {"region"}:
        raise ValueError("phone takes {region: CN}")
    region = str(args["region"]).upper() if args.get("region") else None
    cc, national = _region_codes(region) if region else (None, None)

    def expr(e: pl.Expr) -> pl.Expr:
        raw = _s(e)
        digits = raw.str.replace_all(r"\D", "")
        plus = raw.str.strip_chars().str.replace_all(r"^[\s(]*", "").str.starts_with("+")
        national_form: pl.Expr = digits
        if cc is not None:
            local: pl.Expr = digits
            if national:
                local = (
                    pl.when(digits.str.starts_with(national)).then(digits.str.slice(len(national))).otherwise(digits)
                )
            # a number longer than any national one that starts with the country code already has it
            has_cc = digits.str.starts_with(cc) & (digits.str.len_chars() > 11)
            national_form = pl.when(has_cc).then(digits).otherwise(pl.lit(cc) + local)
        out = (
            pl.when(plus)
            .then(digits)
            .when(digits.str.starts_with("00"))
            .then(digits.str.slice(2))
            .otherwise(national_form)
        )
        return pl.when(digits.str.len_chars() >= 5).then(pl.lit("+") + out)

    return Norm("phone", series=lambda s: pl.DataFrame({"v": nfkc(s)}).select(expr(pl.col("v")).alias("v"))["v"])


def _region_codes(region: str) -> tuple[str, str | None]:
    from phonenumbers import PhoneMetadata

    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None:
        raise ValueError(f"phone: unknown region '{region}' (an ISO 3166 code such as CN, US, DE)")
    return str(meta.country_code), meta.national_prefix


@NORMALISERS.register(
    "date",
    summary="`{date: [formats]}`: a date (the migration's formats, `excel_serial` included).",
)
def _date(args: Any) -> Norm:
    """Parse with each format in turn (and ISO, and ``excel_serial``)."""
    formats = [args] if isinstance(args, str) else list(args or ["%Y-%m-%d"])
    step = build_transform("date", formats)
    assert step.apply is not None
    return Norm("date", step.apply)


@NORMALISERS.register(
    "number",
    summary="`1,234.50` → 1234.5 (`{number: {thousands: '.', decimal: ','}}` for other conventions).",
)
def _number(args: Any) -> Norm:
    """``1,234.50`` → 1234.5 (``{number: {thousands: '.', decimal: ','}}`` for other conventions)."""
    step = build_transform("number", args)
    assert step.apply is not None
    return Norm("number", step.apply)


@NORMALISERS.register(
    "pinyin",
    summary="Chinese characters → toneless pinyin syllables (`张伟` → `zhang wei`), via pypinyin; Latin text lower-cased.",
)
def _pinyin(args: Any) -> Norm:
    """Chinese characters → toneless pinyin syllables (``张伟`` → ``zhang wei``); Latin text lower-cased."""
    if args not in (None, True):
        raise ValueError("pinyin takes no arguments")

    def one(text: str) -> str:
        from pypinyin import lazy_pinyin

        out = " ".join(p.strip() for p in lazy_pinyin(text) if p.strip())
        return " ".join(out.lower().split())

    def distinct(values: pl.Series) -> pl.Series:
        return values.cast(pl.String).map_elements(one, return_dtype=pl.String, skip_nulls=True)

    return Norm("pinyin", distinct=distinct)


@NORMALISERS.register(
    "metaphone",
    summary="Metaphone code of each word (jellyfish).",
)
def _metaphone(args: Any) -> Norm:
    """Metaphone code of each word (jellyfish)."""

    def distinct(values: pl.Series) -> pl.Series:
        import jellyfish

        return values.cast(pl.String).map_elements(
            lambda t: " ".join(jellyfish.metaphone(w) for w in t.split()), return_dtype=pl.String, skip_nulls=True
        )

    return Norm("metaphone", distinct=distinct)


# --- soundex, column-wise -----------------------------------------------------------------

_SOUNDEX = {"1": "BFPV", "2": "CGJKQSXZ", "3": "DT", "4": "L", "5": "MN", "6": "R", "0": "AEIOUY"}


def soundex(e: pl.Expr) -> pl.Expr:
    """American Soundex (``Robert`` → ``R163``) over a whole column, no Python per value."""
    letters = e.str.normalize("NFKD").str.to_uppercase().str.replace_all(r"[^A-Z]", "")
    codes = letters.str.replace_all("[HW]", "")
    for digit, chars in _SOUNDEX.items():
        codes = codes.str.replace_all(f"[{chars}]", digit)
    for digit in "0123456":
        codes = codes.str.replace_all(f"{digit}+", digit)
    first_is_hw = letters.str.slice(0, 1).is_in(["H", "W"])
    # the first letter's own code is dropped (H/W have none, so nothing to drop)
    tail = pl.when(first_is_hw).then(codes).otherwise(codes.str.slice(1)).str.replace_all("0", "")
    code = pl.concat_str([letters.str.slice(0, 1), tail, pl.lit("000")]).str.slice(0, 4)
    return pl.when(letters.str.len_chars() > 0).then(code)


# --- the prepared frame ---------------------------------------------------------------------


def apply_chain(col: pl.Series, steps: list[Norm]) -> pl.Series:
    """Run a field's normalisers over a column (once per distinct value when values repeat)."""
    if col.dtype == pl.String and len(col) > 10_000 and col.head(20_000).n_unique() < 12_000:
        uniq = col.unique().drop_nulls()
        mapped = pl.DataFrame({"v": uniq, "__out": _chain(uniq, steps)})
        return pl.DataFrame({"v": col}).join(mapped, on="v", how="left", maintain_order="left")["__out"]
    return _chain(col, steps)


def _chain(col: pl.Series, steps: list[Norm]) -> pl.Series:
    frame = pl.DataFrame({"v": col})
    for step in steps:
        if step.expr is not None:
            frame = frame.with_columns(step.expr(pl.col("v")).alias("v"))
        elif step.series is not None:
            frame = pl.DataFrame({"v": step.series(frame["v"])})
        else:
            assert step.distinct is not None
            frame = _via_distinct(frame, step.distinct)
        if frame.schema["v"] == pl.String:
            frame = frame.with_columns(_blank_to_null(pl.col("v")))
    out = frame["v"]
    if out.dtype == pl.String:
        out = frame.select(_blank_to_null(pl.col("v").str.strip_chars()))["v"]
    return out


def _blank_to_null(e: pl.Expr) -> pl.Expr:
    return pl.when(e == "").then(None).otherwise(e).alias("v")


def _via_distinct(frame: pl.DataFrame, fn: SeriesFn) -> pl.DataFrame:
    uniq = frame.select(pl.col("v").unique().drop_nulls())
    if uniq.height == 0:
        return frame.with_columns(pl.lit(None, dtype=pl.String).alias("v"))
    mapped = uniq.with_columns(fn(uniq["v"]).alias("__out"))
    return frame.join(mapped, on="v", how="left", maintain_order="left").select(pl.col("__out").alias("v"))
