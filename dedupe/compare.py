"""Compare: for each candidate pair and each compare, a similarity in [0, 1] and its level.

Text similarities come from rapidfuzz's vectorised ``process.cpdist``, computed once per
*distinct pair of values* (names repeat, so this is far fewer than the pairs), never in a
Python loop over pairs.  Exact, email, phone, date and number compares are numpy over
dictionary codes or typed arrays.  A null on either side gives NaN and level -1 (no
evidence either way).  Level 0 is the strongest agreement; ``len(levels)`` is disagreement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from crmkit.dedupe.rules import Compare
from crmkit.registry import Registry

Sim = Callable[[pl.Series, pl.Series], np.ndarray]  # two String series of equal length -> float32 similarities
#: a compare's similarities computed from the whole typed columns: (compare, frame, left rows, right rows)
Columns = Callable[[Compare, pl.DataFrame, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Method:
    """A similarity method: its default levels, and a ``sim`` over distinct value pairs or a ``columns`` function."""

    levels: tuple[float, ...]
    sim: Sim | None = None
    columns: Columns | None = None


@dataclass
class Comparisons:
    """Similarities and levels of every candidate pair, one column per compare."""

    names: list[str]
    sims: dict[str, np.ndarray]  # float32, NaN where a side is null
    levels: np.ndarray  # int8, shape (pairs, compares), -1 where a side is null


def _rf(scorer_name: str) -> Callable[[list[str], list[str]], np.ndarray]:
    def run(a: list[str], b: list[str]) -> np.ndarray:
        from rapidfuzz import fuzz, process
        from rapidfuzz.distance import JaroWinkler, Levenshtein

        scorer = {
            "jaro_winkler": JaroWinkler.normalized_similarity,
            "levenshtein": Levenshtein.normalized_similarity,
            "token_set": fuzz.token_set_ratio,
            "token_sort": fuzz.token_sort_ratio,
        }[scorer_name]
        out = process.cpdist(a, b, scorer=scorer, workers=-1, dtype=np.float32)  # type: ignore[arg-type]
        return out / 100 if scorer_name.startswith("token") else out

    return run


def _text(scorer: str) -> Sim:
    fn = _rf(scorer)
    return lambda a, b: fn(a.to_list(), b.to_list())


def _exact_sim(a: pl.Series, b: pl.Series) -> np.ndarray:
    return (a == b).to_numpy().astype(np.float32)


def _phone_sim(a: pl.Series, b: pl.Series) -> np.ndarray:
    """1 for the same digits; 0.9 when the last 8 digits agree (country or area code written differently)."""
    same = (a == b).to_numpy()
    tail = (a.str.slice(-8) == b.str.slice(-8)).to_numpy()
    return np.where(same, 1.0, np.where(tail, 0.9, 0.0)).astype(np.float32)


def _chinese_name(a: pl.Series, b: pl.Series) -> np.ndarray:
    """Best of Jaro-Winkler on the names without spaces and token-sort (syllables in any order)."""
    jw = _rf("jaro_winkler")(a.str.replace_all(" ", "").to_list(), b.str.replace_all(" ", "").to_list())
    return np.maximum(jw, _rf("token_sort")(a.to_list(), b.to_list()))


def _canonical(c: Compare, values: pl.Series) -> pl.Series:
    """What the compare itself normalises, whatever the field's own normalisers did."""
    s = values.cast(pl.String)
    if c.method == "exact":
        return s
    from crmkit.dedupe.prepare import nfkc

    s = nfkc(s).str.strip_chars()
    if c.method == "email":
        return s.str.to_lowercase().str.replace_all(r"\s", "")
    if c.method == "phone":
        return s.str.replace_all(r"\D", "")
    if c.method == "chinese_name":
        s = s.str.to_lowercase().str.replace_all(r"\s+", " ")
        if c.pinyin:
            from crmkit.dedupe.prepare import apply_chain, build

            s = apply_chain(s, [build("pinyin", None)])
    return s


def _canonical_at(c: Compare, col: pl.Series, rows: np.ndarray) -> pl.Series:
    """Canonical values of ``col`` at ``rows``, each distinct record canonicalised once."""
    records, where = np.unique(rows, return_inverse=True)
    return _canonical(c, col.gather(records)).gather(where)


def _pair_sim(c: Compare, a: pl.Series, b: pl.Series, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Similarity of ``a[left[i]]`` and ``b[right[i]]``: 1 where equal, NaN where null, else once per distinct pair.

    Equality is decided on 64-bit hashes of the values (no dictionary of a million
    strings); only the distinct unequal pairs are gathered, canonicalised and scored.
    """
    out = np.full(len(left), np.nan, dtype=np.float32)
    ha, hb = a.hash().to_numpy(), b.hash().to_numpy()
    va, vb = a.is_not_null().to_numpy(), b.is_not_null().to_numpy()
    hl, hr = ha[left], hb[right]
    both = va[left] & vb[right]
    out[both & (hl == hr)] = 1.0
    todo = np.flatnonzero(both & (hl != hr))
    if len(todo) == 0:
        return out
    # one 64-bit code per (value, value) pair; a collision would need ~2^32 distinct pairs
    pair_code = hl[todo] ^ (hr[todo] * np.uint64(0x9E3779B97F4A7C15))
    _, first, inverse = np.unique(pair_code, return_index=True, return_inverse=True)
    rep = todo[first]
    sa, sb = _canonical_at(c, a, left[rep]), _canonical_at(c, b, right[rep])
    sim = METHODS.get(c.method).sim
    assert sim is not None, f"{c.method} compares whole columns"
    sims = sim(sa.fill_null(""), sb.fill_null(""))
    out[todo] = sims[inverse]
    return out


def _date_sim(a: pl.Series, b: pl.Series, tolerance: float | None) -> np.ndarray:
    """1 equal; 0.9 day and month swapped; 0.8 two of year/month/day equal; 0.7 within tolerance days."""

    def parts(s: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        d = s if s.dtype == pl.Date else s.cast(pl.String).str.to_date(strict=False)
        null = d.is_null().to_numpy()
        return (
            d.dt.year().fill_null(0).to_numpy(),
            d.dt.month().fill_null(0).to_numpy(),
            d.dt.day().fill_null(0).to_numpy(),
            null,
        )

    y1, m1, d1, n1 = parts(a)
    y2, m2, d2, n2 = parts(b)
    same = (y1 == y2).astype(int) + (m1 == m2) + (d1 == d2)
    out = np.zeros(len(a), dtype=np.float32)
    if tolerance:
        days = np.abs((a.cast(pl.Date) - b.cast(pl.Date)).dt.total_days().fill_null(10**9).to_numpy())
        out[days <= tolerance] = 0.7
    out[same == 2] = 0.8
    out[(y1 == y2) & (m1 == d2) & (d1 == m2)] = 0.9
    out[same == 3] = 1.0
    out[n1 | n2] = np.nan
    return out


def _number_sim(a: np.ndarray, b: np.ndarray, c: Compare) -> np.ndarray:
    diff = np.abs(a - b)
    tol = c.tolerance or 0.0
    if c.relative:
        tol = tol * np.maximum(np.abs(a), np.abs(b))
    out = np.where(diff == 0, 1.0, np.where(diff <= tol, 0.9, 0.0)).astype(np.float32)
    out[np.isnan(a) | np.isnan(b)] = np.nan
    return out


def similarity(c: Compare, frame: pl.DataFrame, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Similarities of one compare over the pairs (``left[i]``, ``right[i]`` are record indexes)."""
    columns = METHODS.get(c.method).columns
    if columns is not None:
        return columns(c, frame, left, right)
    a = frame[c.field].cast(pl.String)
    sim = _pair_sim(c, a, a, left, right)
    if c.swap_with:
        sim = _with_swap(c, sim, a, frame[c.swap_with].cast(pl.String), left, right)
    return sim


def _with_swap(
    c: Compare, sim: np.ndarray, a: pl.Series, b: pl.Series, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Where the other field agrees crosswise exactly (left's b == right's a), also score left's a
    against right's b, and keep the better: first and last name written the other way round."""
    hb, ha = b.hash().to_numpy(), a.hash().to_numpy()
    cross = (hb[left] == ha[right]) & b.is_not_null().to_numpy()[left] & ~(np.nan_to_num(sim) >= 1.0)
    rows = np.flatnonzero(cross)
    if len(rows):
        swapped = _pair_sim(c, a, b, left[rows], right[rows])
        sim = sim.copy()
        sim[rows] = np.fmax(sim[rows], swapped)
    return sim


def to_levels(sim: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """Level index per similarity: 0 for ``>= thresholds[0]``..., ``len(thresholds)`` below all, -1 for NaN."""
    lv = np.zeros(sim.shape, dtype=np.int8)
    for t in thresholds:
        lv += (~(sim >= t - 1e-6)).astype(np.int8)
    lv[np.isnan(sim)] = -1
    return lv


def compare(frame: pl.DataFrame, pairs: pl.DataFrame, compares: list[Compare]) -> Comparisons:
    """Every compare over every pair."""
    left, right = pairs["l"].to_numpy().astype(np.int64), pairs["r"].to_numpy().astype(np.int64)
    sims, levels = {}, np.empty((len(left), len(compares)), dtype=np.int8)
    for j, c in enumerate(compares):
        sims[c.name] = similarity(c, frame, left, right)
        levels[:, j] = to_levels(sims[c.name], c.levels)
    return Comparisons([c.name for c in compares], sims, levels)


# --- the methods, by the name a compare's ``method:`` gives -----------------------------------


def _date_columns(c: Compare, frame: pl.DataFrame, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    col = frame[c.field]
    return _date_sim(col.gather(left), col.gather(right), c.tolerance)


def _number_columns(c: Compare, frame: pl.DataFrame, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    num = frame[c.field].cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy()
    return _number_sim(num[left], num[right], c)


METHODS: Registry[Method] = Registry("similarity method")
METHODS.add("exact", Method((1.0,), sim=_exact_sim), summary="equal values 1, else 0")
METHODS.add(
    "jaro_winkler", Method((1.0, 0.92, 0.85), sim=_text("jaro_winkler")), summary="Jaro-Winkler similarity (rapidfuzz)"
)
METHODS.add(
    "levenshtein", Method((1.0, 0.85, 0.7), sim=_text("levenshtein")), summary="normalised Levenshtein (rapidfuzz)"
)
METHODS.add(
    "token_set",
    Method((1.0, 0.9, 0.75), sim=_text("token_set")),
    summary="token-set ratio: words in any order (rapidfuzz)",
)
METHODS.add("email", Method((1.0, 0.9), sim=_text("levenshtein")), summary="normalised e-mail addresses, Levenshtein")
METHODS.add("phone", Method((1.0, 0.9), sim=_phone_sim), summary="same digits 1, same last 8 digits 0.9")
METHODS.add(
    "date",
    Method((1.0, 0.9, 0.8), columns=_date_columns),
    summary="equal 1, day and month swapped 0.9, two of year/month/day equal 0.8, within `tolerance` days 0.7",
)
METHODS.add(
    "number",
    Method((1.0, 0.9), columns=_number_columns),
    summary="equal 1; within `tolerance` (or `tolerance × larger` with `relative: true`) 0.9",
)
METHODS.add(
    "chinese_name",
    Method((1.0, 0.9, 0.8), sim=_chinese_name),
    summary="NFKC; with `pinyin: true` Chinese characters and Latin spellings compare through pinyin, syllables in any order",
)
