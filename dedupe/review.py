"""The review queue: doubtful pairs out to CSV side by side, decisions back in.

``review.csv`` has one row per pair in the review band: both records' ids, the match
probability, one ``sim.<compare>`` column per compare, the records' values side by side
(``left.<column>``, ``right.<column>``) and an empty ``decision`` column.  A person writes
``match`` or ``not a match`` there; the file (or several) is then given back with
``--decisions`` or named under ``decisions:`` in the rules, and every later run honours it.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from crmkit.dedupe.engine import DECISION_SCHEMA, Result
from crmkit.dedupe.rules import DedupeError
from crmkit.dedupe.survive import KEY, RID, SOURCE

ID_COLUMNS = ["left_source", "left_key", "right_source", "right_key"]
MATCH_WORDS = {"match", "yes", "y", "same", "duplicate"}
NON_MATCH_WORDS = {"not a match", "not_a_match", "no match", "no", "n", "different", "distinct"}


def review_frame(result: Result) -> pl.DataFrame:
    """The review-band pairs, strongest first, ready to write."""
    pairs = result.review()
    cols = list(dict.fromkeys(c for f in result.rules.fields.values() for c in f.inputs))
    recs = result.records.select(RID, SOURCE, KEY, *cols)
    left = recs.rename({RID: "l", SOURCE: "left_source", KEY: "left_key", **{c: f"left.{c}" for c in cols}})
    right = recs.rename({RID: "r", SOURCE: "right_source", KEY: "right_key", **{c: f"right.{c}" for c in cols}})
    joined = pairs.join(left, on="l", how="left").join(right, on="r", how="left")
    sims = [c for c in pairs.columns if c.startswith("sim.")]
    side = [x for c in cols for x in (f"left.{c}", f"right.{c}")]
    return joined.select(
        pl.lit(result.rules.name).alias("rules"),
        *ID_COLUMNS,
        pl.col("probability").round(4),
        pl.lit("").alias("decision"),
        *(pl.col(s).round(3) for s in sims),
        *side,
    )


def write_review(result: Result, path: Path) -> int:
    frame = review_frame(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return frame.height


def read_decisions(paths: list[Path]) -> pl.DataFrame:
    """Decided pairs of one or more review files (later files win); undecided rows are skipped."""
    frames = [_read_one(p) for p in paths]
    if not frames:
        return pl.DataFrame(schema=DECISION_SCHEMA)
    return pl.concat(frames)


def _read_one(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise DedupeError(f"{path}: no such decisions file")
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except Exception as exc:
        raise DedupeError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    missing = [c for c in [*ID_COLUMNS, "decision"] if c not in frame.columns]
    if missing:
        raise DedupeError(
            f"{path}: no column {', '.join(missing)} (a decisions file is a review file "
            f"written by --review, with its decision column filled in)"
        )
    word = pl.col("decision").fill_null("").str.strip_chars().str.to_lowercase().str.replace_all(r"\s+", " ")
    frame = frame.with_row_index("__line", offset=2).with_columns(word.alias("decision"))
    bad = frame.filter((pl.col("decision") != "") & ~pl.col("decision").is_in(sorted(MATCH_WORDS | NON_MATCH_WORDS)))
    if bad.height:
        row = bad.row(0, named=True)
        raise DedupeError(
            f"{path}:{row['__line']}: decision '{row['decision']}' is neither 'match' nor "
            f"'not a match' (leave it empty to decide later)"
        )
    decided = frame.filter(pl.col("decision") != "")
    incomplete = decided.filter(pl.any_horizontal(pl.col(c).is_null() for c in ID_COLUMNS))
    if incomplete.height:
        raise DedupeError(f"{path}:{incomplete['__line'][0]}: a decided pair needs both records' source and key")
    return decided.select(
        *ID_COLUMNS,
        pl.when(pl.col("decision").is_in(sorted(MATCH_WORDS)))
        .then(pl.lit("match"))
        .otherwise(pl.lit("not_a_match"))
        .alias("decision"),
    )
