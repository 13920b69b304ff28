"""Collision-free pseudonyms for one masking run.

:mod:`training.pseudonym` picks a fake per value by HMAC; picks collide (two originals, one
fake), which merges distinct people or companies into false duplicates and breaks columns
that must be unique.  Here every distinct value of a run gets its own fake:

* :func:`resolve`: re-pick (another HMAC round) every value whose fake is already taken by
  another value or equals an original; a counter suffix as the last resort;
* :class:`Lexicon`: names token by token (first names and surnames, Latin and Chinese), each
  token mapped one-to-one, so ``first_name``, ``last_name`` and ``full_name`` stay consistent
  and two distinct full names never become one.  Chinese surnames are a weighted sample
  without replacement of Faker's zh_CN surname list (its real frequencies: 王, 李, 张 ...),
  never the original surname itself; Chinese given names are built from the characters of
  Faker's zh_CN given names and never equal an original given name, so a masked full name
  never equals an original one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import polars as pl

from crmkit.training import pseudonym as P

ROUNDS = 8
Candidates = Callable[[pl.Series, int], pl.Series]


def resolve(values: pl.Series, candidates: Candidates, avoid: pl.Series) -> pl.Series:
    """One fake per distinct value of ``values`` (distinct, non-null), none in ``avoid``.

    ``candidates(values, round)`` gives round ``round``'s fakes; values that lose a clash (by
    HMAC order, so the outcome depends on the set, not on row order) try the next round."""
    out = candidates(values, 0)
    order = pl.DataFrame({"v": values}).select(P.hmac_int(pl.col("v"), "order", "o")).to_series()
    settled = pl.Series([False] * values.len())
    for round_ in range(1, ROUNDS + 6):
        f = pl.DataFrame({"m": out, "s": settled, "o": order})
        f = f.with_row_index("r").sort(["s", "o"], descending=[True, False])
        bad = f.filter(~pl.col("m").is_first_distinct() | pl.col("m").is_in(avoid.implode()))["r"]
        if bad.len() == 0:
            return out
        settled = pl.Series([True] * values.len()).scatter(bad, False)
        if round_ > ROUNDS:  # the last resort: a counter (suffixes taken by then are counted on)
            start = 2 + (round_ - ROUNDS - 1) * values.len()
            fixed = out.gather(bad) + pl.Series(range(start, start + bad.len())).cast(pl.String)
        else:
            fixed = candidates(values.gather(bad), round_)
        out = out.scatter(bad, fixed)
    raise AssertionError("resolve: no unique fakes after the counter rounds")  # pragma: no cover


def _salted(salt: str, round_: int) -> str:
    return salt if round_ == 0 else f"{salt}#{round_}"


# --- Chinese ---------------------------------------------------------------------------------------


@cache
def _zh_faker() -> tuple[pl.DataFrame, str]:
    from faker.providers.person.zh_CN import Provider

    surnames = pl.DataFrame(
        {"s": list(Provider.last_names), "w": [float(w) for w in Provider.last_names.values()]},
        schema={"s": pl.String, "w": pl.Float64},
    )
    chars = "".join(sorted(set("".join(Provider.first_names))))
    return surnames, chars


def zh_surnames(values: pl.Series, salt: str) -> pl.Series:
    """Distinct surnames → distinct real surnames: a weighted sample without replacement of
    Faker's zh_CN list (Efraimidis-Spirakis keys), never the original itself."""
    surnames, _ = _zh_faker()
    if values.len() > surnames.height - 1:  # more surnames than the list: the rest by characters
        extra = P.zh_chars(values, salt, "zh_sur_extra", pl.Series([2] * values.len()), _zh_faker()[1])
        surnames = pl.concat([surnames, pl.DataFrame({"s": extra, "w": [0.01] * extra.len()})]).unique("s")
    u = (P.hmac_int(pl.col("s"), salt, "zh_sur") + 1).cast(pl.Float64) / float(2**48 + 1)
    pool = surnames.with_columns((u.log() / pl.col("w")).alias("k")).sort("k", descending=True)["s"]
    order = (
        pl.DataFrame({"v": values}).with_row_index("r").with_columns(P.hmac_int(pl.col("v"), salt, "zh_o").alias("o"))
    )
    order = order.sort("o").with_columns(pool.head(values.len() + 1).head(values.len()).alias("m"))
    # never the original: swap a self-mapped value with its neighbour (or the spare pool entry)
    m = order["m"].to_list()
    vs = order["v"].to_list()
    spare = pool.gather([min(values.len(), pool.len() - 1)]).to_list()[0]
    for i, (v, fake) in enumerate(zip(vs, m)):
        if v == fake:
            j = i + 1 if i + 1 < len(m) else i - 1
            if j >= 0 and m[j] != vs[i] and vs[j] != m[i]:
                m[i], m[j] = m[j], m[i]
            else:
                m[i] = spare
    return order.with_columns(pl.Series("m", m)).sort("r")["m"].alias(values.name)


#: two-character surnames (the rest of a Chinese full name is the given name)
ZH_COMPOUND = (
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "皇甫",
    "尉迟",
    "公孙",
    "慕容",
    "长孙",
    "宇文",
    "司徒",
    "夏侯",
    "令狐",
)


def zh_split(names: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(surname, given name) of Chinese full names: a compound surname takes two characters."""
    n = pl.select(pl.when(names.str.slice(0, 2).is_in(ZH_COMPOUND)).then(2).otherwise(1)).to_series()
    return names.str.slice(0, n), names.str.slice(n)


# --- the lexicon ------------------------------------------------------------------------------------


class Lexicon:
    """First names and surnames of a run, each distinct token with its own fake."""

    def __init__(self, salt: str, first: pl.Series, last: pl.Series) -> None:
        self.salt = salt
        self.maps = {
            "first": self._map(first.drop_nulls().unique(), "first"),
            "last": self._map(last.drop_nulls().unique(), "last"),
        }

    def _map(self, tokens: pl.Series, role: str) -> pl.DataFrame:
        tokens = tokens.sort()
        cjk = tokens.str.contains(f"^{P.CJK}+$")
        zh, latin = tokens.filter(cjk), tokens.filter(~cjk)
        lat = resolve(latin, lambda v, r: P.pick(v, _salted(self.salt, r), role, P.LATIN), latin)
        if role == "last":
            zh_m = zh_surnames(zh, self.salt)
        else:
            chars = _zh_faker()[1]
            lens = lambda v, r: v.str.len_chars() + (0 if r < 4 else 1)  # noqa: E731
            zh_m = resolve(zh, lambda v, r: P.zh_chars(v, _salted(self.salt, r), "zh_given", lens(v, r), chars), zh)
        return pl.DataFrame({"v": pl.concat([latin, zh]), "m": pl.concat([lat, zh_m])})

    def token(self, values: pl.Series, role: str) -> pl.Series:
        m = self.maps[role]
        return values.replace_strict(m["v"], m["m"], default=None, return_dtype=pl.String).alias(values.name)

    def full_name(self, values: pl.Series) -> pl.Series:
        """'First [Middle] Last' token by token; Chinese names as surname (one character, two for 欧阳...) + given name."""
        f = pl.DataFrame({"v": values}).with_row_index("r")
        cjk = f["v"].str.contains(f"^{P.CJK}+$").fill_null(False)
        zh = f.filter(cjk)
        sur, given = zh_split(zh["v"])
        zh_out = self.token(sur, "last") + self.token(given, "first")
        toks = split_latin(f.filter(~cjk & f["v"].is_not_null()))
        last = (toks["pos"] == toks["n"] - 1) & (toks["n"] > 1)
        masked = pl.select(pl.when(last).then(self.token(toks["v"], "last")).otherwise(self.token(toks["v"], "first")))
        latin = (
            toks.with_columns(masked.to_series().alias("v"))
            .group_by("r", maintain_order=True)
            .agg(pl.col("v").str.join(" "))
        )
        out = pl.concat([zh.select("r", zh_out.alias("v")), latin.select("r", "v")])
        return f.select("r").join(out, on="r", how="left").sort("r")["v"].alias(values.name)


def split_latin(f: pl.DataFrame) -> pl.DataFrame:
    """One row per token of each name (column ``v``), with its position and the name's length."""
    return (
        f.with_columns(pl.col("v").str.split(" "))
        .explode("v")
        .with_columns(pl.int_range(pl.len()).over("r").alias("pos"), pl.len().over("r").alias("n"))
    )


def name_tokens(values: pl.Series, kind: str) -> tuple[pl.Series, pl.Series]:
    """The (first-name tokens, surname tokens) of a column of ``kind``."""
    v = values.drop_nulls()
    empty = pl.Series([], dtype=pl.String)
    if kind == "first_name":
        return v, empty
    if kind == "last_name":
        return empty, v
    cjk = v.str.contains(f"^{P.CJK}+$")
    zh, latin = v.filter(cjk), v.filter(~cjk)
    toks = split_latin(pl.DataFrame({"v": latin}).with_row_index("r"))
    last = (toks["pos"] == toks["n"] - 1) & (toks["n"] > 1)
    sur, given = zh_split(zh)
    return pl.concat([toks.filter(~last)["v"], given]), pl.concat([toks.filter(last)["v"], sur])
