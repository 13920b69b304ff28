"""Free text replaced wholesale (the ``text`` masking kind).

Notes, descriptions and case bodies name people who are in no column (a spouse, a
colleague), in any case (``LI NA``), with street addresses, obfuscated e-mail addresses
(``li at host dot example``) and ID numbers: scrubbing what is known misses what is not.
So a free-text value is replaced by generated text of about the same length in the same
language (the script and a few marker words decide: Chinese, German, else English), from a
pool of Faker lorem paragraphs seeded by the salt.  Nothing of the original survives but its
length and language.
"""

from __future__ import annotations

from functools import cache

import polars as pl

from crmkit.training import pseudonym as P

LOCALES = {"zh": "zh_CN", "de": "de_DE", "en": "en_US"}
POOL = 128  # paragraphs per language
LONGEST = 4000  # characters of each pooled paragraph: longer values are cut there
_GERMAN = r"[äöüÄÖÜß]|(?i)\b(der|die|das|und|nicht|ist|mit|bitte|wir|ein|eine|sich|auf|für)\b"


def language(values: pl.Series) -> pl.Series:
    """``zh``, ``de`` or ``en`` per value, from its script and a few German marker words."""
    zh = values.str.contains(P.CJK).fill_null(False)
    de = values.str.contains(_GERMAN).fill_null(False)
    return pl.select(pl.when(zh).then(pl.lit("zh")).when(de).then(pl.lit("de")).otherwise(pl.lit("en"))).to_series()


@cache
def _pool(lang: str, salt: str) -> tuple[str, ...]:
    from faker import Faker

    fake = Faker(LOCALES[lang])
    fake.seed_instance(P.seed_of(salt, f"text:{lang}"))
    sep = "" if lang == "zh" else " "
    out = []
    for _ in range(POOL):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < LONGEST:
            parts.append(fake.paragraph(nb_sentences=8))
        out.append(sep.join(parts)[:LONGEST])
    return tuple(out)


def replace(values: pl.Series, salt: str) -> pl.Series:
    """Each value → pooled text of its language, cut to its length (null and '' stay)."""
    f = pl.DataFrame({"v": values}).with_row_index("r")
    f = f.with_columns(
        language(f["v"]).alias("lang"),
        (P.hmac_int(pl.col("v"), salt, "text") % POOL).alias("i"),
        pl.col("v").str.len_chars().alias("n"),
    )
    langs = f.filter(pl.col("v").is_not_null())["lang"].unique().to_list()
    pools = pl.concat(
        [
            pl.DataFrame({"lang": [lang] * POOL, "i": list(range(POOL)), "text": list(_pool(lang, salt))})
            for lang in sorted(langs)
        ]
        or [pl.DataFrame(schema={"lang": pl.String, "i": pl.Int64, "text": pl.String})]
    ).with_columns(pl.col("i").cast(f.schema["i"]))
    out = f.join(pools, on=["lang", "i"], how="left", maintain_order="left").sort("r")
    text = out["text"].str.slice(0, out["n"])
    return pl.select(pl.when(values.is_null()).then(None).otherwise(text)).to_series().alias(values.name)
