"""Column builders of the training generator: random streams, keys, people, companies, phones.

Every helper builds a whole column at once from a numpy ``Generator(PCG64)`` and the locale's
vocabulary (:mod:`training.vocab`); :mod:`training.builder` assembles the entities from them.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from crmkit.schema.models import ENTITY_MODELS, table_of
from crmkit.schema.target import entities
from crmkit.training.vocab import PHONES, Vocab

DAY_US = 86_400_000_000
EMAIL_NUMBERS = 100  # a person's e-mail may carry a number 1..99 to keep it unique
KEY_PREFIX = {
    "departments": "D",
    "users": "U",
    "accounts": "A",
    "contacts": "C",
    "leads": "L",
    "opportunities": "O",
    "activities": "V",
    "cases": "K",
    "tags": "T",
    "taggings": "G",
}
RNG = np.random.Generator


def rng_for(seed: int, stream: str) -> RNG:
    """An independent random stream per entity, fixed by the seed."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(stream.encode())])))


def weighted(rng: RNG, mix: dict[str, float], n: int) -> pl.Series:
    keys = list(mix)
    w = np.array([mix[k] for k in keys], dtype=float)
    return pl.Series(keys, dtype=pl.String).gather(rng.choice(len(keys), size=n, p=w / w.sum()))


def pick_in_blocks(rng: RNG, group: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """For each row, a random index inside its group's block [start, start + count)."""
    u = rng.random(group.shape[0])
    return start[group] + np.floor(u * count[group]).astype(np.int64)


def days(values: np.ndarray) -> pl.Series:
    return pl.Series(values.astype(np.int32)).cast(pl.Date)


def micros(values: np.ndarray) -> pl.Series:
    return pl.Series(values.astype(np.int64)).cast(pl.Datetime("us"))


def epoch_day(d: Any) -> int:
    import datetime as dt

    return (d - dt.date(1970, 1, 1)).days


def key_series(entity: str, n: int) -> pl.Series:
    width = max(4, len(str(n)))
    s = pl.Series("k", np.arange(1, n + 1, dtype=np.int64)).cast(pl.String).str.zfill(width)
    return (KEY_PREFIX[entity] + s).alias("legacy_key")


def finish(entity: str, n: int, cols: dict[str, pl.Series | Any], source: str) -> pl.DataFrame:
    """The entity's frame with every model column, in model order, typed."""
    fields = entities()[entity].fields
    data: dict[str, pl.Series] = {
        "id": pl.Series(np.arange(1, n + 1, dtype=np.int64)),
        "source_name": pl.Series([source], dtype=pl.String).gather(np.zeros(n, dtype=np.int64)),
        "legacy_key": key_series(entity, n),
        "row_hash": pl.Series([None] * n, dtype=pl.Int64),
        "run_id": pl.Series([None] * n, dtype=pl.Int64),
        "image_hash": pl.Series([None] * n, dtype=pl.Int64),
    }
    for name, f in fields.items():
        value = cols.get(name)
        dtype = pl.Int64 if f.kind == "integer" else f.dtype
        if value is None:
            data[name] = pl.Series([None] * n, dtype=dtype)
        elif isinstance(value, pl.Series):
            data[name] = value.cast(dtype)
        else:
            data[name] = pl.Series([value], dtype=dtype).gather(np.zeros(n, dtype=np.int64))
    order = [c.name for c in table_of(ENTITY_MODELS[entity]).columns]
    order = ["id"] + [c for c in order if c != "id"]
    return pl.DataFrame({c: data[c].alias(c) for c in order})


@dataclass
class People:
    first: pl.Series
    last: pl.Series
    full: pl.Series
    local: pl.Series  # e-mail local part, first.last[N]


def people(rng: RNG, v: Vocab, n: int, unique_name: bool, unique_email: bool) -> People:
    nf, nl = v.first.len(), v.last.len()
    if unique_name or unique_email:
        k = 1 if unique_name else int(min(EMAIL_NUMBERS, max(1, -(-3 * n // (nf * nl)))))
        space = nf * nl * k
        codes = rng.choice(space, size=n, replace=False) if n else np.zeros(0, dtype=np.int64)
        f, rest = codes % nf, codes // nf
        last_i, num = rest % nl, rest // nl
    else:
        f, last_i = rng.integers(0, nf, n), rng.integers(0, nl, n)
        num = np.where(rng.random(n) < 0.15, rng.integers(1, EMAIL_NUMBERS, n), 0)
    first, last = v.first.gather(f), v.last.gather(last_i)
    sep = "" if v.locale == "zh_CN" else " "
    full = (last + first) if v.locale == "zh_CN" else (first + sep + last)
    suffix = pl.Series(num).cast(pl.String).replace("0", "")
    local = v.first_ascii.gather(f) + "." + v.last_ascii.gather(last_i) + suffix
    return People(first, last, full, local)


@dataclass
class Companies:
    name: pl.Series
    domain: pl.Series


def companies(rng: RNG, v: Vocab, n: int, unique: bool) -> Companies:
    na, nb, ns = v.company_a.len(), v.company_b.len(), v.suffixes.len()
    nc = v.cities.len() if v.locale == "zh_CN" else 1
    if unique:
        codes = rng.choice(na * nb * ns * nc, size=n, replace=False) if n else np.zeros(0, dtype=np.int64)
    else:
        codes = rng.integers(0, na * nb * ns * nc, n)
    a, rest = codes % na, codes // na
    b, rest = rest % nb, rest // nb
    s, c = rest % ns, rest // ns
    if v.locale == "zh_CN":
        name = v.cities.gather(c) + v.company_a.gather(a) + v.company_b.gather(b) + v.suffixes.gather(s)
    else:
        name = v.company_a.gather(a) + " " + v.company_b.gather(b) + " " + v.suffixes.gather(s)
    domain = v.company_a_ascii.gather(a) + v.company_b_ascii.gather(b) + "." + v.tld
    return Companies(name, domain)


def phones(rng: RNG, locale: str, kind: str, n: int) -> pl.Series:
    """Valid E.164 numbers of the locale's numbering plan."""
    plan = PHONES[locale][kind]
    which = rng.integers(0, len(plan), n)
    nd = np.array([p[1] for p in plan])[which]
    first, last = (5, 8) if (locale, kind) == ("zh_CN", "landline") else (2, 10)  # CN 800/400 are not landlines
    low, high = first * 10 ** (nd - 1), last * 10 ** (nd - 1)
    number = low + np.floor(rng.random(n) * (high - low)).astype(np.int64)
    if locale == "en_US":  # no N11 or 555 exchange
        exchange = number // 10_000
        number = np.where((exchange % 100 == 11) | (exchange == 555), number + 10_000, number)
    prefixes = pl.Series([p[0] for p in plan], dtype=pl.String).gather(which)
    return prefixes + pl.Series(number).cast(pl.String)


def addresses(rng: RNG, v: Vocab, n: int) -> pl.Series:
    street = v.streets.gather(rng.integers(0, v.streets.len(), n))
    number = pl.Series(rng.integers(1, 300, n)).cast(pl.String)
    if v.locale == "en_US":
        return number + " " + street
    if v.locale == "de_DE":
        return street + " " + number
    return street + number + "号"


def epoch_day_np(year: int) -> int:
    import datetime as dt

    return epoch_day(dt.date(year, 1, 1))


def nullable(index: np.ndarray) -> pl.Series:
    """0-based row indices (-1 = none) as 1-based ids with nulls."""
    s = pl.Series(index.astype(np.int64) + 1)
    return pl.select(pl.when(s > 0).then(s)).to_series()


def fill_template(tmpl: pl.Series, **parts: pl.Series) -> pl.Series:
    """Fill ``{p}``-style placeholders row by row, column-wise (a template per row)."""
    out = tmpl
    for key, values in parts.items():
        pieces = out.str.split_exact("{" + key + "}", 1)
        head, tail = pieces.struct.field("field_0"), pieces.struct.field("field_1")
        out = pl.select(pl.when(tail.is_null()).then(head).otherwise(head + values + tail)).to_series()
    return out


def fill(template: str, **parts: pl.Series) -> pl.Series:
    """One template for every row: literal pieces around the given columns."""
    pieces: list[pl.Expr] = []
    pos = 0
    for m in re.finditer(r"\{(\w+)\}", template):
        pieces += [pl.lit(template[pos : m.start()]), pl.col(m.group(1))]
        pos = m.end()
    pieces.append(pl.lit(template[pos:]))
    return pl.DataFrame(parts).select(pl.concat_str(pieces).alias("text")).to_series()
