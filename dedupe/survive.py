"""Survivorship: which record's value a golden record keeps, field by field.

A rule turns the records of a cluster that have a value into a sort key (lower wins);
ties go to the source priority, then the most complete record, then input order.  Rules
register by name in :data:`SURVIVORSHIP`::

    @SURVIVORSHIP.register("shortest", summary="the shortest value")
    def shortest(field, spec, ctx):
        return pl.col(field).cast(pl.String).str.len_chars()

Every pick records where the value came from (source and legacy key): field lineage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from crmkit.registry import Registry

if TYPE_CHECKING:
    from crmkit.dedupe.rules import Survive, Survivorship

SOURCE, KEY, RID, CLUSTER = "__source", "__key", "__rid", "__cluster"


@dataclass(frozen=True)
class Context:
    """What a rule may look at besides the field: the other value columns and the config."""

    value_fields: list[str]
    survivorship: Survivorship


#: field name (None when picking the survivor record), rule spec, context → sort key (lower wins)
Rule = Callable[[str | None, "Survive", Context], pl.Expr]
#: every survivorship rule by its YAML name (``survivorship: {default: NAME, fields: {F: NAME}}``)
SURVIVORSHIP: Registry[Rule] = Registry("survivorship rule")


def _source_rank(ctx: Context) -> pl.Expr:
    order = ctx.survivorship.sources
    if not order:
        return pl.lit(0)
    ranks = pl.DataFrame({"s": order, "i": list(range(len(order)))})
    return pl.col(SOURCE).replace_strict(ranks["s"], ranks["i"], default=len(order), return_dtype=pl.Int64)


def _completeness(ctx: Context) -> pl.Expr:
    return -pl.sum_horizontal([pl.col(f).is_not_null().cast(pl.Int32) for f in ctx.value_fields] or [pl.lit(0)])


@SURVIVORSHIP.register("source_priority", summary="the record from the first source in `sources`")
def _priority(field: str | None, spec: Survive, ctx: Context) -> pl.Expr:
    return _source_rank(ctx)


@SURVIVORSHIP.register("most_complete", summary="the record with the most non-empty fields")
def _complete(field: str | None, spec: Survive, ctx: Context) -> pl.Expr:
    return _completeness(ctx)


@SURVIVORSHIP.register("most_recent", summary="the record with the latest `by:` column")
def _recent(field: str | None, spec: Survive, ctx: Context) -> pl.Expr:
    assert spec.by is not None
    as_time = (
        pl.col(spec.by)
        .cast(pl.String)
        .str.slice(0, 19)
        .str.replace("T", " ")
        .str.to_datetime(strict=False, time_unit="us")
    )
    return -as_time.cast(pl.Int64)  # nulls sort last


@SURVIVORSHIP.register("longest", summary="the longest value")
def _longest(field: str | None, spec: Survive, ctx: Context) -> pl.Expr:
    if field is None:
        return _completeness(ctx)
    return -pl.col(field).cast(pl.String).str.len_chars().cast(pl.Int64)


@SURVIVORSHIP.register("most_frequent", summary="the value most records of the cluster have")
def _frequent(field: str | None, spec: Survive, ctx: Context) -> pl.Expr:
    if field is None:
        return _completeness(ctx)
    return -pl.len().over([CLUSTER, field]).cast(pl.Int64)


def _pick(frame: pl.DataFrame, field: str | None, spec: Survive, ctx: Context) -> pl.DataFrame:
    """One record per cluster: the winner under ``spec`` (ties: source priority, completeness, order)."""
    cand = frame if field is None else frame.filter(pl.col(field).is_not_null())
    keyed = cand.with_columns(
        SURVIVORSHIP.get(spec.rule)(field, spec, ctx).alias("__k1"),
        _source_rank(ctx).alias("__k2"),
        _completeness(ctx).alias("__k3"),
    )
    ranked = keyed.sort([CLUSTER, "__k1", "__k2", "__k3", RID], nulls_last=True)
    return ranked.unique(subset=CLUSTER, keep="first", maintain_order=True).select(CLUSTER, RID)


@dataclass
class Golden:
    survivors: pl.DataFrame  # __cluster, __rid of the anchoring record
    rows: pl.DataFrame  # __cluster, __source, __key (the survivor's), one column per value field
    lineage: pl.DataFrame  # __cluster, field, source_name, legacy_key


def golden(
    members: pl.DataFrame, value_fields: list[str], surv: Survivorship, survivors: pl.DataFrame | None = None
) -> Golden:
    """Golden records of ``members`` (__rid, __source, __key, __cluster, value fields...).

    ``survivors`` (__cluster, __rid) fixes the anchoring records; else the survivor rule picks them.
    """
    ctx = Context(value_fields, surv)
    if survivors is None:
        survivors = _pick(members, None, surv.survivor, ctx)
    rows = survivors.join(members.select(RID, SOURCE, KEY), on=RID, how="left")
    lineage = []
    for f in value_fields:
        spec = surv.fields.get(f, surv.default)
        won = _pick(members, f, spec, ctx).join(members.select(RID, SOURCE, KEY, f), on=RID, how="left")
        rows = rows.join(won.select(CLUSTER, f), on=CLUSTER, how="left")
        lineage.append(
            won.select(
                CLUSTER, pl.lit(f).alias("field"), pl.col(SOURCE).alias("source_name"), pl.col(KEY).alias("legacy_key")
            )
        )
    empty = pl.DataFrame(
        schema={CLUSTER: pl.Int64, "field": pl.String, "source_name": pl.String, "legacy_key": pl.String}
    )
    return Golden(survivors, rows, pl.concat(lineage) if lineage else empty)


def check_fields(surv: Survivorship, columns: list[str], where: str) -> None:
    """Survivorship names only columns the records have."""
    from crmkit.dedupe.rules import DedupeError

    for name, spec in [
        *surv.fields.items(),
        *((f"({k})", v) for k, v in (("default", surv.default), ("survivor", surv.survivor))),
    ]:
        if not name.startswith("(") and name not in columns:
            raise DedupeError(f"{where}: survivorship.fields.{name}: no such column (columns: {', '.join(columns)})")
        if spec.by and spec.by not in columns:
            raise DedupeError(f"{where}: survivorship: by: {spec.by}: no such column (columns: {', '.join(columns)})")
