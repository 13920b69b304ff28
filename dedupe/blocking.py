"""Blocking: which record pairs are worth comparing at all.

Each pass builds a key from prepared fields (exact values, prefixes, phonetic codes,
sorted tokens) and pairs the records that share it, or, for a sorted-neighbourhood pass,
the records within ``window`` of each other once sorted by the key.  The passes are
unioned into unique pairs ``(l, r)`` with ``l < r`` (record indexes).  All of it is polars
joins and numpy slices; a block larger than ``max_block_size`` is skipped and counted
(a key that common carries no evidence and would cost n² comparisons).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from crmkit.dedupe.prepare import soundex
from crmkit.dedupe.rules import BlockPass, KeyPart

RID = "__rid"
PAIR_SCHEMA = {"l": pl.UInt32, "r": pl.UInt32}


@dataclass
class PassStats:
    """What one blocking pass contributed."""

    name: str
    fields: list[str] = field(default_factory=list)
    pairs: int = 0
    skipped_blocks: int = 0
    skipped_records: int = 0


@dataclass
class Blocked:
    pairs: pl.DataFrame  # l, r (UInt32, l < r), unique
    passes: list[PassStats] = field(default_factory=list)
    by_pass: list[pl.DataFrame] = field(default_factory=list)  # each pass's own pairs


def part_expr(part: KeyPart, frame: pl.DataFrame, as_text: bool = True) -> pl.Expr:
    """The expression for one key part over the prepared frame (a plain value keeps its type
    unless ``as_text``: hashing a date needs no text)."""
    col = pl.col(part.field)
    if part.func == "value" and not as_text:
        return col
    if frame.schema[part.field] != pl.String:
        col = col.cast(pl.String)
    if part.func == "prefix":
        assert part.length is not None
        return col.str.slice(0, part.length)
    if part.func == "soundex":
        return soundex(col)
    if part.func == "sorted_tokens":
        return col.str.split(" ").list.sort().list.join(" ")
    if part.func == "first_token":
        return col.str.split(" ").list.first()
    if part.func == "last_token":
        return col.str.split(" ").list.last()
    if part.func == "either_order":
        assert part.other is not None
        other = pl.col(part.other).cast(pl.String)
        lo = pl.when(col <= other).then(col).otherwise(other)
        hi = pl.when(col <= other).then(other).otherwise(col)
        return pl.concat_str([lo, hi], separator="\x1f")
    return col


def _key_column(frame: pl.DataFrame, parts: list[KeyPart], hashed: bool = True) -> pl.DataFrame:
    """``__rid`` and the pass's key: a 64-bit hash of the parts for exact passes (a collision
    only adds a candidate pair, which is then compared like any other), the text for sorting."""
    exprs = []
    for i, part in enumerate(parts):
        if part.func == "metaphone":
            from crmkit.dedupe.prepare import apply_chain, build

            frame = frame.with_columns(
                apply_chain(frame[part.field].cast(pl.String), [build("metaphone", None)]).alias(f"__mp{i}")
            )
            exprs.append(pl.col(f"__mp{i}"))
        else:
            exprs.append(part_expr(part, frame, as_text=not hashed))
    exprs = [e.alias(f"__p{i}") for i, e in enumerate(exprs)]
    texts = {
        f"__p{i}"
        for i, p in enumerate(parts)
        if not (p.func == "value" and hashed and frame.schema[p.field] != pl.String)
    }
    present = pl.all_horizontal(
        [e.is_not_null() & (e != "") if e.meta.output_name() in texts else e.is_not_null() for e in exprs]
    )
    key = pl.struct(exprs).hash() if hashed else pl.concat_str(exprs, separator="\x1f")
    return frame.select(pl.col(RID), pl.when(present).then(key).alias("__k")).drop_nulls("__k")


def _describe(bp: BlockPass) -> str:
    parts = [
        p.field
        if p.func == "value"
        else f"{p.func}({p.field}{', ' + str(p.length) if p.length else ''}{', ' + p.other if p.other else ''})"
        for p in bp.parts
    ]
    kind = "sorted_neighbourhood" if bp.sorted_neighbourhood else "keys"
    return f"{kind}: {' + '.join(parts)}" + (f" (window {bp.window})" if bp.sorted_neighbourhood else "")


def exact_pairs(keys: pl.DataFrame, max_block: int, stats: PassStats) -> pl.DataFrame:
    sizes = keys.group_by("__k").len()
    big = sizes.filter(pl.col("len") > max_block)
    stats.skipped_blocks, stats.skipped_records = big.height, int(big["len"].sum() or 0)
    keep = sizes.filter((pl.col("len") >= 2) & (pl.col("len") <= max_block)).select("__k")
    keys = keys.join(keep, on="__k", how="semi")
    pairs = keys.join(keys, on="__k", suffix="_r").filter(pl.col(RID) < pl.col(f"{RID}_r"))
    return pairs.select(pl.col(RID).alias("l"), pl.col(f"{RID}_r").alias("r"))


def neighbourhood_pairs(keys: pl.DataFrame, window: int) -> pl.DataFrame:
    order = keys.sort(["__k", RID])[RID].to_numpy()
    ls, rs = [], []
    for k in range(1, min(window, len(order))):
        ls.append(order[:-k])
        rs.append(order[k:])
    if not ls:
        return pl.DataFrame(schema=PAIR_SCHEMA)
    a, b = np.concatenate(ls), np.concatenate(rs)
    return pl.DataFrame({"l": np.minimum(a, b), "r": np.maximum(a, b)}).cast(PAIR_SCHEMA)  # type: ignore[arg-type]


def block(frame: pl.DataFrame, passes: list[BlockPass], max_block_size: int) -> Blocked:
    """Candidate pairs of the prepared ``frame`` (which has ``__rid``) under every pass."""
    out, stats = [], []
    for bp in passes:
        st = PassStats(_describe(bp), sorted({f for p in bp.parts for f in (p.field, p.other) if f}))
        keys = _key_column(frame, bp.parts, hashed=not bp.sorted_neighbourhood)
        if bp.sorted_neighbourhood:
            pairs = neighbourhood_pairs(keys, bp.window)
        else:
            pairs = exact_pairs(keys, bp.max_block_size or max_block_size, st)
        st.pairs = pairs.height
        stats.append(st)
        out.append(pairs.cast(PAIR_SCHEMA))  # type: ignore[arg-type]
    pairs = pl.concat(out).unique() if out else pl.DataFrame(schema=PAIR_SCHEMA)
    return Blocked(pairs.filter(pl.col("l") != pl.col("r")), stats, out)
