"""The dedupe pipeline over a frame of records: prepare → block → compare → decide → cluster.

``records`` has ``__source`` and ``__key`` (together a record's identity) and the columns
the rules' fields read.  :func:`find_duplicates` returns every pair's outcome, the review
queue and one cluster per record; :func:`dedupe.merge.merge_plan` builds golden records
from it.  Decisions a person made (``match`` / ``not_a_match`` on a pair of records) are
honoured over anything the rules say.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from crmkit.dedupe import blocking, score
from crmkit.dedupe import cluster as clustering
from crmkit.dedupe import compare as comparing
from crmkit.dedupe.prepare import apply_chain, build
from crmkit.dedupe.rules import DedupeError, Logic, Rules
from crmkit.dedupe.survive import CLUSTER, KEY, RID, SOURCE, Context, _pick

MATCH, REVIEW, NON_MATCH = "match", "review", "non_match"
SURVIVOR = "__survivor"
DECIDED_MATCH, DECIDED_NON_MATCH = "decided_match", "decided_non_match"
DECISION_SCHEMA = {
    "left_source": pl.String,
    "left_key": pl.String,
    "right_source": pl.String,
    "right_key": pl.String,
    "decision": pl.String,
}


@dataclass
class Stats:
    records: int = 0
    sources: int = 0
    candidate_pairs: int = 0
    blocking: list[dict[str, object]] = field(default_factory=list)
    matches: int = 0
    review: int = 0
    non_matches: int = 0
    decided_match: int = 0
    decided_non_match: int = 0
    decisions_unknown_records: int = 0
    clusters: int = 0  # clusters of two or more records
    records_in_clusters: int = 0
    duplicates: int = 0  # records that merge into another (records_in_clusters - clusters)
    guard_rounds: int = 0
    guard_dropped_links: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Result:
    rules: Rules
    records: pl.DataFrame  # __rid, __source, __key, ..., __cluster, cluster_id
    pairs: pl.DataFrame  # l, r, probability, outcome, one similarity column per compare
    model: score.Model | None
    stats: Stats

    @property
    def single_source(self) -> bool:
        return self.stats.sources <= 1

    def clusters(self) -> pl.DataFrame:
        """One row per record: source, record_id, cluster_id (the survivor's id), survivor."""
        return self.records.select(
            pl.col(SOURCE).alias("source"),
            pl.col(KEY).alias("record_id"),
            "cluster_id",
            (pl.col(SURVIVOR) == pl.col(RID)).alias("survivor"),
        )

    def review(self) -> pl.DataFrame:
        """Pairs to review: in the review band, or links the chaining guard cut."""
        return self.pairs.filter(pl.col("outcome") == REVIEW).sort("probability", descending=True)

    def matched_pairs(self) -> pl.DataFrame:
        """Every pair of records that ended in one cluster (l < r, record indexes)."""
        members = self.records.filter(pl.len().over(CLUSTER) > 1).select(RID, CLUSTER)
        pairs = members.join(members, on=CLUSTER, suffix="_r").filter(pl.col(RID) < pl.col(f"{RID}_r"))
        return pairs.select(pl.col(RID).alias("l"), pl.col(f"{RID}_r").alias("r"))


def _record_id(single_source: bool) -> pl.Expr:
    return pl.col(KEY) if single_source else pl.concat_str([pl.col(SOURCE), pl.lit(":"), pl.col(KEY)])


def prepare_fields(records: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """``__rid`` and one normalised column per field of the rules."""
    out = {RID: records[RID]}
    for name, spec in rules.fields.items():
        if spec.column is not None:
            col = records[spec.column].cast(pl.String)
        else:
            parts = [pl.col(c).cast(pl.String).str.strip_chars() for c in spec.inputs]
            col = records.select(pl.concat_str(parts, separator=spec.sep, ignore_nulls=True))[spec.inputs[0]]
        out[name] = apply_chain(col, [build(s.name, s.args) for s in spec.normalise]).alias(name)
    return pl.DataFrame(out)


def _random_pairs(n: int, size: int, seed: int = 42) -> pl.DataFrame:
    if n < 2:
        return pl.DataFrame(schema=blocking.PAIR_SCHEMA)
    if n * (n - 1) // 2 <= size:
        lft, rgt = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        lft, rgt = rng.integers(0, n, size), rng.integers(0, n, size)
        keep = lft != rgt
        lft, rgt = np.minimum(lft[keep], rgt[keep]), np.maximum(lft[keep], rgt[keep])
    return pl.DataFrame({"l": lft, "r": rgt}).cast(blocking.PAIR_SCHEMA)  # type: ignore[arg-type]


def decided_pairs(records: pl.DataFrame, decisions: pl.DataFrame | None) -> tuple[pl.DataFrame, int]:
    """Decisions as record-index pairs (l < r, decision); and how many name records not in the input."""
    if decisions is None or decisions.height == 0:
        return pl.DataFrame(schema={"l": pl.UInt32, "r": pl.UInt32, "decision": pl.String}), 0
    ids = records.select(RID, SOURCE, KEY)
    d = decisions.join(
        ids.rename({RID: "a", SOURCE: "left_source", KEY: "left_key"}), on=["left_source", "left_key"], how="left"
    ).join(
        ids.rename({RID: "b", SOURCE: "right_source", KEY: "right_key"}), on=["right_source", "right_key"], how="left"
    )
    unknown = d.filter(pl.col("a").is_null() | pl.col("b").is_null()).height
    d = d.drop_nulls(["a", "b"]).filter(pl.col("a") != pl.col("b"))
    d = d.select(pl.min_horizontal("a", "b").alias("l"), pl.max_horizontal("a", "b").alias("r"), "decision")
    # the last decision on a pair wins
    return d.unique(["l", "r"], keep="last", maintain_order=True).cast({"l": pl.UInt32, "r": pl.UInt32}), unknown


def _sessions(pairs: pl.DataFrame, blocked: blocking.Blocked) -> list[score.Session]:
    """Each blocking pass's pairs as rows of ``pairs``, for EM."""
    indexed = pairs.with_row_index("__i")
    out = []
    for st, own in zip(blocked.passes, blocked.by_pass):
        rows = indexed.join(own.unique(), on=["l", "r"], how="semi")["__i"].to_numpy()
        out.append(score.Session(rows, set(st.fields)))
    return out


def _decide(
    rules: Rules, comps: comparing.Comparisons, rnd: comparing.Comparisons, n: int, sessions: list[score.Session]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, score.Model | None]:
    """(probability, is match, is review) per pair."""
    d = rules.decision
    if d.method == "score":
        model = score.fit(comps, rnd.levels, rules.compare, d.prior, d.em_iterations, sessions)
        prob = score.probabilities(comps, model)
        assert isinstance(d.match, float)
        match = prob >= d.match - 1e-12
        review = (prob >= d.review) & ~match if isinstance(d.review, float) else np.zeros(n, bool)
        return prob, match, review, model
    assert isinstance(d.match, Logic)
    match = score.holds(d.match, comps.sims, n)
    review = score.holds(d.review, comps.sims, n) & ~match if isinstance(d.review, Logic) else np.zeros(n, bool)
    prob = np.where(match, 1.0, np.where(review, 0.5, 0.0))
    return prob, match, review, None


def find_duplicates(records: pl.DataFrame, rules: Rules, decisions: pl.DataFrame | None = None) -> Result:
    """Cluster ``records`` (with ``__source``, ``__key``) under ``rules``, honouring ``decisions``."""
    st = Stats()
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        st.seconds[stage] = round(now - clock, 3)
        clock = now

    records = records.with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias(RID))
    st.records, st.sources = records.height, records[SOURCE].n_unique()
    prepared = prepare_fields(records, rules)
    lap("prepare")
    blocked = blocking.block(prepared, rules.blocking, rules.max_block_size)
    st.blocking = [dict(vars(p)) for p in blocked.passes]
    decided, st.decisions_unknown_records = decided_pairs(records, decisions)
    pairs = pl.concat([blocked.pairs, decided.select("l", "r")]).unique().sort("l", "r")
    st.candidate_pairs = pairs.height
    lap("block")
    comps = comparing.compare(prepared, pairs, rules.compare)
    u_pairs = min(rules.decision.u_sample, max(1_000, 10 * records.height))  # 10 per record is plenty
    rnd = (
        comparing.compare(prepared, _random_pairs(records.height, u_pairs), rules.compare)
        if rules.decision.method == "score"
        else comps
    )
    lap("compare")
    sessions = _sessions(pairs, blocked) if rules.decision.method == "score" else []
    prob, match, review, model = _decide(rules, comps, rnd, pairs.height, sessions)
    out = pairs.with_columns(
        pl.Series("probability", prob, dtype=pl.Float64),
        pl.Series("outcome", np.where(match, MATCH, np.where(review, REVIEW, NON_MATCH))),
        *(pl.Series(f"sim.{k}", v) for k, v in comps.sims.items()),
    )
    out = _apply_decisions(out, decided)
    lap("score")
    out, records, guard = _cluster(records, out, rules)
    st.guard_rounds, st.guard_dropped_links = guard.rounds, guard.dropped.height
    records = _cluster_ids(records, rules)
    lap("cluster")
    _count(st, out, records)
    return Result(rules, records, out, model, st)


def _apply_decisions(pairs: pl.DataFrame, decided: pl.DataFrame) -> pl.DataFrame:
    joined = pairs.join(decided, on=["l", "r"], how="left")
    outcome = (
        pl.when(pl.col("decision") == "match")
        .then(pl.lit(DECIDED_MATCH))
        .when(pl.col("decision") == "not_a_match")
        .then(pl.lit(DECIDED_NON_MATCH))
        .otherwise(pl.col("outcome"))
    )
    return joined.with_columns(outcome.alias("outcome")).drop("decision")


def _cluster(
    records: pl.DataFrame, pairs: pl.DataFrame, rules: Rules
) -> tuple[pl.DataFrame, pl.DataFrame, clustering.Clusters]:
    is_link = pl.col("outcome").is_in([MATCH, DECIDED_MATCH])
    score_expr = (
        pl.when(pl.col("outcome") == DECIDED_MATCH).then(pl.lit(clustering.CONFIRMED)).otherwise(pl.col("probability"))
    )
    links = pairs.filter(is_link).select("l", "r", score_expr.alias("score"))
    cannot = pl.col("outcome") == DECIDED_NON_MATCH
    if rules.decision.method == "score":
        cannot = cannot | ((pl.col("outcome") == NON_MATCH) & (pl.col("probability") < rules.cluster.cannot_link_below))
    result = clustering.cluster(records.height, links, pairs.filter(cannot).select("l", "r"), rules.cluster.max_size)
    if result.dropped.height:
        cut = result.dropped.select(
            pl.col("l").cast(pl.UInt32), pl.col("r").cast(pl.UInt32), pl.lit(True).alias("__cut")
        )
        pairs = (
            pairs.join(cut, on=["l", "r"], how="left")
            .with_columns(pl.when(pl.col("__cut")).then(pl.lit(REVIEW)).otherwise(pl.col("outcome")).alias("outcome"))
            .drop("__cut")
        )
    records = records.with_columns(pl.Series(CLUSTER, result.labels, dtype=pl.Int64))
    return pairs, records, result


def _cluster_ids(records: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """``__survivor`` (the record anchoring each cluster) and ``cluster_id`` (its record id)."""
    single = records[SOURCE].n_unique() <= 1
    multi = records.filter(pl.len().over(CLUSTER) > 1)
    value_cols = [c for c in records.columns if not c.startswith("__")]
    surv = rules.survivorship
    picked = (
        _pick(multi, None, surv.survivor, Context(value_cols, surv))
        if multi.height
        else pl.DataFrame(schema={CLUSTER: pl.Int64, RID: pl.UInt32})
    )
    ids = picked.join(records.select(RID, _record_id(single).alias("cluster_id")), on=RID)
    records = records.join(ids.rename({RID: SURVIVOR}), on=CLUSTER, how="left", maintain_order="left")
    return records.with_columns(
        pl.coalesce(SURVIVOR, RID).alias(SURVIVOR), pl.coalesce("cluster_id", _record_id(single)).alias("cluster_id")
    )


def _count(st: Stats, pairs: pl.DataFrame, records: pl.DataFrame) -> None:
    counts = dict(pairs.group_by("outcome").len().iter_rows())
    st.matches, st.review, st.non_matches = counts.get(MATCH, 0), counts.get(REVIEW, 0), counts.get(NON_MATCH, 0)
    st.decided_match, st.decided_non_match = counts.get(DECIDED_MATCH, 0), counts.get(DECIDED_NON_MATCH, 0)
    sizes = records.group_by(CLUSTER).len().filter(pl.col("len") > 1)
    st.clusters, st.records_in_clusters = sizes.height, int(sizes["len"].sum() or 0)
    st.duplicates = st.records_in_clusters - st.clusters


def check_records(records: pl.DataFrame, rules: Rules, where: str) -> None:
    """The records have what the rules read."""
    need = {c for f in rules.fields.values() for c in f.inputs}
    missing = sorted(need - set(records.columns))
    if missing:
        cols = ", ".join(c for c in records.columns if not c.startswith("__"))
        raise DedupeError(f"{where}: no column {', '.join(map(repr, missing))} that the rules read (columns: {cols})")
