"""Deduplication and merge: matching rules, blocking, comparison, clustering, golden records.

The stages, each a function over frames (docs/dedupe-reference.md):
:mod:`dedupe.prepare` (normalise fields) → :mod:`dedupe.blocking` (candidate pairs) →
:mod:`dedupe.compare` (similarities, levels) → :mod:`dedupe.score` (Fellegi-Sunter / rules)
→ :mod:`dedupe.cluster` (components with a chaining guard) → :mod:`dedupe.survive` and
:mod:`dedupe.merge` (golden records, lineage) → :mod:`dedupe.store` (the target: merge,
decisions) and :mod:`dedupe.unmerge`.  :func:`dedupe_inputs` is what ``crmkit dedupe INPUT...`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from crmkit.csvout import write_people_csv
from crmkit.dedupe.engine import Result, find_duplicates
from crmkit.dedupe.merge import MergePlan, merge_plan, plan_from
from crmkit.dedupe.rules import DedupeError, Rules, load_rules
from crmkit.dedupe.survive import KEY, SOURCE

__all__ = [
    "DedupeError",
    "DedupeRun",
    "MergePlan",
    "Result",
    "Rules",
    "dedupe_inputs",
    "find_duplicates",
    "load_rules",
    "merge_plan",
]


@dataclass
class DedupeRun:
    result: Result
    written: dict[str, str] = field(default_factory=dict)  # what -> path
    review_rows: int = 0

    def to_json(self) -> dict[str, object]:
        st = self.result.stats
        return {
            "rules": self.result.rules.name,
            "stats": vars(st),
            "written": self.written,
            "review_rows": self.review_rows,
            "model": self.result.model.to_json() if self.result.model else None,
        }


def golden_frame(result: Result) -> pl.DataFrame:
    """One row per cluster: the golden record of a cluster, or the record itself when alone."""
    cols = [c for c in result.records.columns if not c.startswith("__") and c != "cluster_id"]
    plan = plan_from(result, cols)
    ids = result.records.select(SOURCE, KEY, "cluster_id")
    merged = plan.golden.join(ids, on=[SOURCE, KEY], how="left")
    alone = result.records.filter(pl.len().over("__cluster") == 1).select(SOURCE, KEY, "cluster_id", *cols)
    out = pl.concat([merged.select(SOURCE, KEY, "cluster_id", *cols), alone], how="diagonal_relaxed")
    return out.rename({SOURCE: "source", KEY: "record_id"}).sort("cluster_id")


def dedupe_inputs(
    inputs: list[str],
    rules_path: str | Path,
    out: Path,
    review: Path | None = None,
    decisions: list[Path] | None = None,
    golden: Path | None = None,
) -> DedupeRun:
    """``crmkit dedupe``: read the inputs, find duplicates, write clusters (and review, golden)."""
    from crmkit.dedupe.inputs import read_input, records
    from crmkit.dedupe.review import read_decisions, review_frame

    paths = [p.resolve() for p in (out, review, golden) if p is not None]
    if len(set(paths)) < len(paths):
        raise DedupeError("--out, --review and --golden must be different files")
    rules = load_rules(rules_path)
    decided = read_decisions(list(rules.decisions) + list(decisions or []))
    recs = records([read_input(i, rules) for i in inputs], rules)
    from crmkit.dedupe.engine import check_records

    check_records(recs, rules, ", ".join(inputs))
    result = find_duplicates(recs, rules, decided)
    run = DedupeRun(result)
    frames = [("clusters", result.clusters(), out)]
    if review is not None:
        rf = review_frame(result)
        run.review_rows = rf.height
        frames.append(("review", rf, review))
    if golden is not None:
        frames.append(("golden", golden_frame(result), golden))
    for what, frame, path in frames:
        write_people_csv(frame, path)  # each written whole or not at all
        run.written[what] = str(path)
    return run
