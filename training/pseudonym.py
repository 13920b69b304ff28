"""Deterministic pseudonyms, column-wise: HMAC-SHA256 of the value keyed by a secret salt.

The same input and salt give the same fake value wherever it appears; another salt gives
another one.  Fake names come from a synthetic vocabulary (three syllables and a final
``q`` or ``x`` for Latin names; rare surnames and uncommon given-name characters for
Chinese), so a pseudonym is never a real-looking name that could be someone else's.
Everything runs on whole columns: the HMAC through polars-hash, the vocabulary pick by
indexing, formats rebuilt with polars string operations.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
from collections.abc import Callable
from functools import cache

import polars as pl
import polars_hash  # noqa: F401  (registers the .chash namespace)

_CONS, _VOWELS, _FINAL = "bdfgklmnprstvz", "aeiou", "qx"
LATIN = pl.Series(
    "latin",
    [
        (a + b + c + d + e + f + g).capitalize()
        for a, b, c, d, e, f, g in itertools.product(_CONS, _VOWELS, _CONS, _VOWELS, _CONS, _VOWELS, _FINAL)
    ],
    dtype=pl.String,
)
ZH_SURNAMES = pl.Series("zh_sur", list("禤亓訾昝逄仉郄笪眭隗厍蒯郗啜缑甯"), dtype=pl.String)
_ZH_GIVEN_CHARS = "珩瑀琮璟翀骞湉昶砚沅苡婳琬琭珝晞暄琇樾珣玹琤瑄璞瑗甄"
ZH_GIVEN = pl.Series("zh_given", [a + b for a in _ZH_GIVEN_CHARS for b in _ZH_GIVEN_CHARS], dtype=pl.String)
CJK = r"[\u3400-\u9fff]"


#: legal forms kept at the end of a Chinese company name (a form says nothing of whose it is)
ZH_LEGAL = r"(股份有限公司|有限责任公司|有限公司|集团公司|集团|公司)$"


@cache
def zh_company_chars() -> str:
    """Characters of Faker's zh_CN company-name prefixes, to build masked company words."""
    from faker.providers.company.zh_CN import Provider

    return "".join(sorted(set("".join(Provider.company_prefixes))))


def zh_chars(values: pl.Series, salt: str, role: str, length: pl.Series, chars: str) -> pl.Series:
    """``length`` characters of ``chars`` per value, from HMACs of the value (any length)."""
    n, pool, most = len(chars), pl.Series(list(chars)), int(length.max() or 1)  # type: ignore[arg-type]
    per = max(1, int(48 / math.log2(n)))  # characters one 48-bit HMAC gives
    frame = pl.DataFrame({"v": values})
    parts = []
    for k in range((most + per - 1) // per):
        h = frame.select(hmac_int(pl.col("v"), salt, f"{role}{k}")).to_series()
        parts += [pool.gather(((h // n**i) % n).fill_null(0)) for i in range(per)]
    full = pl.select(pl.concat_str(parts)).to_series()
    return full.str.slice(0, length.clip(1, None)).alias(values.name)


def hmac_int(values: pl.Expr, salt: str, role: str) -> pl.Expr:
    """A 48-bit integer from HMAC-SHA256(salt, role:value); null stays null."""
    text = pl.lit(f"{role}:") + values.cast(pl.String)
    return text.chash.hmac_sha256(key=salt).str.slice(0, 12).str.to_integer(base=16)  # type: ignore[attr-defined]


def seed_of(salt: str, role: str) -> int:
    """A 63-bit seed from HMAC-SHA256(salt, role) (to seed Faker from the salt)."""
    digest = hmac.new(salt.encode(), role.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def pick(values: pl.Series, salt: str, role: str, vocab: pl.Series) -> pl.Series:
    """The vocabulary entry each value maps to (nulls stay null)."""
    idx = pl.DataFrame({"v": values}).select((hmac_int(pl.col("v"), salt, role) % vocab.len()).alias("i"))["i"]
    out = vocab.gather(idx.fill_null(0))
    return pl.select(pl.when(values.is_null()).then(None).otherwise(out)).to_series().alias(values.name)


def distinct_map(values: pl.Series, fn: Callable[[pl.Series], pl.Series]) -> pl.Series:
    """Apply ``fn`` to the distinct non-null values only, then join back in order."""
    frame = pl.DataFrame({"v": values})
    uniq = frame.select(pl.col("v").drop_nulls().unique(maintain_order=True))
    mapped = uniq.with_columns(fn(uniq["v"]).alias("m"))
    return frame.join(mapped, on="v", how="left", maintain_order="left")["m"].alias(values.name)


def name_token(tokens: pl.Series, salt: str, role: str) -> pl.Series:
    """One name token: Chinese surname/given name, or a Latin synthetic name."""
    cjk = tokens.str.contains(CJK).fill_null(False)
    zh_vocab = ZH_SURNAMES if role == "last" else ZH_GIVEN
    latin = pick(tokens, salt, role, LATIN)
    chinese = pick(tokens, salt, f"zh_{role}", zh_vocab)
    return pl.select(pl.when(cjk).then(chinese).otherwise(latin)).to_series().alias(tokens.name)


def full_name(values: pl.Series, salt: str) -> pl.Series:
    """'First [Middle] Last' token by token (first names and surname keep their role); Chinese
    names as surname (first character) + given name."""

    def fn(v: pl.Series) -> pl.Series:
        f = pl.DataFrame({"v": v}).with_row_index("r")
        cjk = f["v"].str.contains(f"^{CJK}+$").fill_null(False)
        zh = f.filter(cjk)
        zh_out = pick(zh["v"].str.slice(0, 1), salt, "zh_last", ZH_SURNAMES) + pick(
            zh["v"].str.slice(1), salt, "zh_first", ZH_GIVEN
        )
        toks = (
            f.filter(~cjk)
            .with_columns(pl.col("v").str.split(" "))
            .explode("v")
            .with_columns(pl.int_range(pl.len()).over("r").alias("pos"), pl.len().over("r").alias("n"))
        )
        last = toks["pos"] == toks["n"] - 1
        masked = pl.select(
            pl.when(last & (toks["n"] > 1))
            .then(pick(toks["v"], salt, "last", LATIN))
            .otherwise(pick(toks["v"], salt, "first", LATIN))
        ).to_series()
        latin = toks.with_columns(masked.alias("v")).group_by("r", maintain_order=True).agg(pl.col("v").str.join(" "))
        out = pl.concat([zh.select("r", zh_out.alias("v")), latin.select("r", "v")]).sort("r")
        return out["v"]

    return distinct_map(values, fn)


def words(values: pl.Series, salt: str) -> pl.Series:
    """Free-form identifying text (addresses, company names): every Latin word and every run
    of Chinese characters replaced, digits and punctuation kept, capitalisation kept."""

    def fn(v: pl.Series) -> pl.Series:
        f = (
            pl.DataFrame({"v": v})
            .with_row_index("r")
            .with_columns(pl.col("v").str.extract_all(r"[A-Za-zÀ-ÿ]+|[\u3400-\u9fff]+|[^A-Za-zÀ-ÿ\u3400-\u9fff]+"))
            .explode("v")
        )
        piece = f["v"]
        latin_word = piece.str.contains(r"^[A-Za-zÀ-ÿ]+$").fill_null(False)
        cjk_word = piece.str.contains(f"^{CJK}+$").fill_null(False)
        lat = pick(piece.str.to_lowercase(), salt, "word", LATIN)
        lat = pl.select(
            pl.when(piece.str.slice(0, 1) == piece.str.slice(0, 1).str.to_uppercase())
            .then(lat)
            .otherwise(lat.str.to_lowercase())
        ).to_series()
        runs = piece.filter(cjk_word)  # Chinese runs only (building them is the costly part)
        legal = runs.str.extract(ZH_LEGAL, 1)
        body = runs.str.replace(ZH_LEGAL, "")
        zh_runs = zh_chars(body, salt, "zh_word", body.str.len_chars(), zh_company_chars()) + legal.fill_null("")
        zh_runs = pl.select(pl.when(body.str.len_chars() == 0).then(runs).otherwise(zh_runs)).to_series()
        zh = piece.clone().scatter(cjk_word.arg_true(), zh_runs) if runs.len() else piece
        new = pl.select(pl.when(latin_word).then(lat).when(cjk_word).then(zh).otherwise(piece)).to_series()
        return f.with_columns(new.alias("v")).group_by("r", maintain_order=True).agg(pl.col("v").str.join(""))["v"]

    return distinct_map(values, fn)


def email(values: pl.Series, salt: str) -> pl.Series:
    """Format-preserving: letters of the local part and of the domain's labels replaced, the
    separators, digits and top-level domain kept (``john.smith7@acme.com`` → ``dakimoq.tefulax7@vozerix.com``)."""

    def fn(v: pl.Series) -> pl.Series:
        parts = v.str.split_exact("@", 1)
        local, domain = parts.struct.field("field_0"), parts.struct.field("field_1")
        host = domain.str.replace(r"\.[^.]+$", "")
        tld = domain.str.extract(r"(\.[^.]+)$", 1)
        lower = lambda s: words(s, salt).str.to_lowercase()  # noqa: E731
        masked = lower(local) + "@" + lower(host) + tld.fill_null("")
        return pl.select(pl.when(domain.is_null() | tld.is_null()).then(lower(v)).otherwise(masked)).to_series()

    return distinct_map(values, fn)


def phone(values: pl.Series, salt: str, keep_tail: int = 7) -> pl.Series:
    """Format-preserving: the last ``keep_tail`` digits replaced by digits derived from the
    HMAC, everything else (``+``, country code, area code, spaces, dashes) kept."""

    def fn(v: pl.Series) -> pl.Series:
        digits = v.str.replace_all(r"\D", "")
        h = pl.DataFrame({"d": digits}).select((hmac_int(pl.col("d"), salt, "phone") % (10**keep_tail)).alias("d"))["d"]
        fake = h.cast(pl.String).str.zfill(keep_tail)
        f = (
            pl.DataFrame({"v": v, "fake": fake})
            .with_row_index("r")
            .with_columns(pl.col("v").str.split(""))
            .explode("v")
        )
        is_digit = pl.col("v").str.contains(r"^\d$")
        f = f.with_columns(
            pl.when(is_digit).then(1).otherwise(0).reverse().cum_sum().reverse().over("r").alias("from_end")
        )
        rank = pl.col("from_end") - 1  # 0 = last digit
        new = (
            pl.when(is_digit & (rank < keep_tail))
            .then(pl.col("fake").str.slice(pl.lit(keep_tail - 1) - rank, 1))
            .otherwise(pl.col("v"))
        )
        return f.with_columns(new.alias("v")).group_by("r", maintain_order=True).agg(pl.col("v").str.join(""))["v"]

    return distinct_map(values, fn)


def key(values: pl.Series, salt: str) -> pl.Series:
    """A legacy key as a short HMAC (keys can be e-mail addresses or phone numbers)."""
    out = pl.DataFrame({"v": values}).select(pl.lit("k") + pl.col("v").chash.hmac_sha256(key=salt).str.slice(0, 16))  # type: ignore[attr-defined]
    return out.to_series().alias(values.name)
