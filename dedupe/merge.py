"""Merge: clusters → golden records, with field lineage.  Pure frames, no database.

:func:`merge_plan` is what a migration calls before it loads an entity (see the report of
issue 4 for the wiring): the shaped rows of every feed of the entity, with ``__source``
and ``__key``, go in; out come the golden rows (one per cluster of two or more, under the
survivor's source and key, values chosen field by field), the merged rows (every other
member, with the survivor it now points at) and the field lineage.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from crmkit.dedupe.engine import SURVIVOR, Result, find_duplicates
from crmkit.dedupe.rules import Rules
from crmkit.dedupe.survive import CLUSTER, KEY, RID, SOURCE, check_fields, golden


@dataclass
class MergePlan:
    result: Result
    golden: pl.DataFrame  # __source, __key (the survivor's) + value fields: rows to load in place of the survivor's
    merged: pl.DataFrame  # __source, __key, survivor_source, survivor_key, probability: rows not loaded
    lineage: pl.DataFrame  # survivor_source, survivor_key, field, source_name, legacy_key
    members: pl.DataFrame  # every record of a multi-record cluster: __source, __key, survivor_source, survivor_key

    @property
    def merged_count(self) -> int:
        return self.merged.height


def merge_plan(
    frame: pl.DataFrame, rules: Rules, decisions: pl.DataFrame | None = None, value_fields: list[str] | None = None
) -> MergePlan:
    """Find duplicates among ``frame`` (``__source``, ``__key``, fields) and plan their merge.

    ``value_fields`` are the columns golden records are made of (default: every column
    not starting with ``__``).  Rows of ``frame`` that are in no cluster are in none of
    the outputs: load them as they are.
    """
    fields = value_fields or [c for c in frame.columns if not c.startswith("__")]
    check_fields(rules.survivorship, [c for c in frame.columns if not c.startswith("__")], f"rules {rules.name}")
    result = find_duplicates(frame, rules, decisions)
    return plan_from(result, fields)


def plan_from(result: Result, fields: list[str]) -> MergePlan:
    recs = result.records
    members = recs.filter(pl.len().over(CLUSTER) > 1)
    survivors = members.select(CLUSTER, pl.col(SURVIVOR).alias(RID)).unique(CLUSTER)
    surv = result.rules.survivorship
    extra = [s.by for s in (surv.default, surv.survivor, *surv.fields.values()) if s.by and s.by not in fields]
    g = golden(members.select(RID, SOURCE, KEY, CLUSTER, *fields, *dict.fromkeys(extra)), fields, surv, survivors)
    anchor = g.rows.select(CLUSTER, pl.col(SOURCE).alias("survivor_source"), pl.col(KEY).alias("survivor_key"))
    tagged = members.select(RID, SOURCE, KEY, CLUSTER).join(anchor, on=CLUSTER, how="left")
    is_survivor = (pl.col(SOURCE) == pl.col("survivor_source")) & (pl.col(KEY) == pl.col("survivor_key"))
    best = _best_link(result)
    merged = (
        tagged.filter(~is_survivor)
        .join(best, on=RID, how="left")
        .select(SOURCE, KEY, "survivor_source", "survivor_key", "probability")
        .sort(SOURCE, KEY)
    )
    lineage = g.lineage.join(anchor, on=CLUSTER, how="left").select(
        "survivor_source", "survivor_key", "field", "source_name", "legacy_key"
    )
    return MergePlan(
        result,
        g.rows.drop(CLUSTER, RID).sort(SOURCE, KEY),
        merged,
        lineage,
        tagged.select(SOURCE, KEY, "survivor_source", "survivor_key"),
    )


def _best_link(result: Result) -> pl.DataFrame:
    """Each record's strongest link probability (how sure its merge was)."""
    links = result.pairs.filter(pl.col("outcome").is_in(["match", "decided_match"]))
    both = pl.concat(
        [links.select(pl.col("l").alias(RID), "probability"), links.select(pl.col("r").alias(RID), "probability")]
    )
    return both.group_by(RID).agg(pl.col("probability").max())


# --- what a migration run needs, feed by feed (see docs/dedupe-reference.md) ------------------


def feed_rows(plan: MergePlan, source: str, ok: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """One feed's checked rows (``__key`` + fields) for loading: merged rows left out (their
    count is returned, outcome ``merged``), survivors' fields replaced by the golden values."""
    merged = plan.merged.filter(pl.col(SOURCE) == source).select(KEY)
    kept = ok.join(merged, on=KEY, how="anti")
    golden = plan.golden.filter(pl.col(SOURCE) == source).drop(SOURCE)
    fields = [c for c in golden.columns if c != KEY and c in kept.columns]
    if golden.height and fields:
        kept = kept.update(golden.select(KEY, *fields), on=KEY, how="left")
    return kept, ok.height - kept.height


def merged_keys(plan: MergePlan, survivor_ids: pl.DataFrame) -> pl.DataFrame:
    """Id-map rows for the merged records: ``source_name``, ``legacy_key``, ``target_id`` (the golden row).

    ``survivor_ids`` has ``__source``, ``__key`` and ``target_id`` of the loaded survivors.
    """
    ids = survivor_ids.select(pl.col(SOURCE).alias("survivor_source"), pl.col(KEY).alias("survivor_key"), "target_id")
    return plan.merged.join(ids, on=["survivor_source", "survivor_key"], how="inner").select(
        pl.col(SOURCE).alias("source_name"), pl.col(KEY).alias("legacy_key"), "target_id"
    )
