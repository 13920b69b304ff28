"""The review queue: doubtful pairs out to CSV side by side, decisions back in.

``review.csv`` has one row per pair in the review band: both records' ids, the match
probability, one ``sim.<compare>`` column per compare, the records' values side by side
(``left.<column>``, ``right.<column>``) and an empty ``decision`` column.  A person writes
``match`` or ``not a match`` there; the file (or several) is then given back with
``--decisions`` or named under ``decisions:`` in the rules, and every later run honours it.

The file is written as every file a person opens (``crmkit.csvout``: UTF-8 with BOM, formula
cells prefixed with ``'``, similarities that are not numbers left empty).  It is read back as
a spreadsheet gives it back: UTF-8 with or without BOM, GB18030 (Excel re-saving it as "CSV"
on a Chinese Windows), UTF-16 ("Unicode Text", tab-separated); the ``'`` csvout added to a
formula-looking value is taken off again, so the ids match the records.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import polars as pl

from crmkit.csvout import unneutralised, write_people_csv
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
    write_people_csv(frame, path)
    return frame.height


def read_decisions(paths: list[Path]) -> pl.DataFrame:
    """Decided pairs of one or more review files (later files win); undecided rows are skipped."""
    frames = [_read_one(p) for p in paths]
    if not frames:
        return pl.DataFrame(schema=DECISION_SCHEMA)
    return pl.concat(frames)


def _read_review_file(path: Path) -> pl.DataFrame:
    """The review file as text columns, whatever a spreadsheet re-saved it as (see the module)."""
    from crmkit.errors import SourceError
    from crmkit.migrate.sources.decode import choose

    data = path.read_bytes()
    sep = ","
    try:
        if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            text, sep = data.decode("utf-16"), "\t"
        else:
            text, _ = choose(path, data)
        frame = pl.read_csv(text.encode("utf-8"), separator=sep, infer_schema=False)
    except SourceError as exc:
        raise DedupeError(str(exc)) from None
    except Exception as exc:
        raise DedupeError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    frame = frame.rename(lambda c: c.strip().lstrip("\ufeff"))
    return frame.with_columns(unneutralised(pl.col(c)).alias(c) for c in frame.columns)


def _read_one(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise DedupeError(f"{path}: no such decisions file")
    frame = _read_review_file(path)
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
