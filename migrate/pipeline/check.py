"""Check: what the target itself demands of a shaped row, before anything is written.

A row is rejected, with every reason found, when its legacy key is missing or repeated,
a required field is empty, or a reference does not resolve through the id map (a
reference that does not resolve is a reject, never a silent NULL).  The full business
rules (pandera) live in ``validate/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from crmkit.migrate.fields import ERRORS, KEY, Shaped, reason_list, ref_col
from crmkit.migrate.sources import ROW
from crmkit.schema.models import LEGACY_KEY_LENGTH


@dataclass
class KeyMap:
    """Legacy keys of one entity and source → target ids, plus the keys rejected this run."""

    entity: str
    source: str
    ids: pl.DataFrame  # legacy_key, target_id
    rejected: pl.DataFrame  # legacy_key
    #: keys the parent's filter or scope left out: rows pointing at them are out of scope, not rejects
    left_out: pl.DataFrame | None = None


OUT_OF_SCOPE = "__out_of_scope"


def check(shaped: Shaped, parents: dict[str, KeyMap]) -> pl.DataFrame:
    """The shaped frame with references resolved, ``__errors`` completed, and ``__out_of_scope``
    set on rows whose parent the filter or a rollout wave's scope left out (they follow it)."""
    frame = _key_reasons(shaped.frame.with_columns(pl.lit(False).alias(OUT_OF_SCOPE)))
    extra: list[pl.Expr] = [pl.col("__rk_key")]
    extra += [
        pl.when(pl.col(f.name).is_null()).then(pl.lit(f"{f.name}: required value is missing"))
        for f in shaped.fields
        if f.required and f.name not in shaped.refs
    ]
    for fname in shaped.refs:
        frame = _resolve(frame, fname, parents[fname], required=_required(shaped, fname))
        extra.append(pl.col(f"__rk_reason_{fname}"))
    frame = _add_reasons(frame, extra)
    return frame.drop([c for c in frame.columns if c.startswith("__rk_")])


def _add_reasons(frame: pl.DataFrame, extra: list[pl.Expr]) -> pl.DataFrame:
    """Append the non-null texts of ``extra`` to ``__errors``, on the rows that have any."""
    has = frame.select(pl.any_horizontal([e.is_not_null() for e in extra]).fill_null(False)).to_series()
    if not has.any():
        return frame
    idx = "__rk_row"
    frame = frame.with_row_index(idx)
    more = frame.filter(has).select(idx, pl.concat_list([pl.col(ERRORS), reason_list(extra)]).alias("__rk_more"))
    return (
        frame.join(more, on=idx, how="left", maintain_order="left")
        .with_columns(pl.coalesce("__rk_more", ERRORS).alias(ERRORS))
        .drop(idx, "__rk_more")
    )


def _required(shaped: Shaped, fname: str) -> bool:
    return any(f.name == fname and f.required for f in shaped.fields)


def _key_reasons(frame: pl.DataFrame) -> pl.DataFrame:
    """``__rk_key``: a missing legacy key, or a repeated one with the row it first appeared at
    (that row computed only for the repeated keys)."""
    key = pl.col(KEY)
    repeated = frame.select((~key.is_first_distinct() & key.is_not_null()).alias("r")).to_series()
    first = pl.lit(None, dtype=pl.Int64)
    if repeated.any():
        keys = frame.filter(repeated).select(KEY).unique()
        firsts = frame.join(keys, on=KEY, how="semi").group_by(KEY).agg(pl.col(ROW).min().alias("__rk_first"))
        frame = frame.join(firsts, on=KEY, how="left", maintain_order="left")
        first = pl.col("__rk_first")
    reason = (
        pl.when(key.is_null())
        .then(pl.lit("missing legacy key"))
        .when(key.str.len_chars() > LEGACY_KEY_LENGTH)
        .then(
            pl.concat_str(
                [
                    pl.lit("legacy key is "),
                    key.str.len_chars().cast(pl.String),
                    pl.lit(f" characters long (at most {LEGACY_KEY_LENGTH})"),
                ]
            )
        )
        .when(pl.lit(repeated))
        .then(
            pl.concat_str(
                [pl.lit("duplicate legacy key '"), key, pl.lit("' (first at row "), first.cast(pl.String), pl.lit(")")]
            )
        )
    )
    return frame.with_columns(reason.alias("__rk_key"))


def _resolve(frame: pl.DataFrame, fname: str, parent: KeyMap, required: bool) -> pl.DataFrame:
    """Replace the field by the parent's target id; add ``__rk_reason_<field>`` where it fails."""
    ref = ref_col(fname)
    ids = parent.ids.rename({"legacy_key": ref, "target_id": "__rk_id"})
    frame = (
        frame.drop(fname)
        .join(ids, on=ref, how="left", maintain_order="left")
        .with_columns(
            pl.col("__rk_id").alias(fname), pl.col(ref).is_in(parent.rejected["legacy_key"].implode()).alias("__rk_rej")
        )
    )
    missing = pl.col(ref).is_not_null() & pl.col(fname).is_null()
    if parent.left_out is not None and parent.left_out.height:
        left = parent.left_out.rename({"legacy_key": ref}).unique(ref).with_columns(pl.lit(True).alias("__rk_out"))
        frame = (
            frame.join(left, on=ref, how="left", maintain_order="left")
            .with_columns((pl.col(OUT_OF_SCOPE) | (missing & pl.col("__rk_out").fill_null(False))).alias(OUT_OF_SCOPE))
            .drop("__rk_out")
        )
    where = f"{parent.entity} (source {parent.source})"
    reason: pl.Expr = (
        pl.when(missing & pl.col("__rk_rej").fill_null(False))
        .then(pl.concat_str([pl.lit(f"{fname}: '"), pl.col(ref), pl.lit(f"' of {where} was rejected in this run")]))
        .when(missing)
        .then(pl.concat_str([pl.lit(f"{fname}: '"), pl.col(ref), pl.lit(f"' not found in {where}")]))
    )
    if required:
        reason = (
            pl.when(pl.col(ref).is_null()).then(pl.lit(f"{fname}: required reference is missing")).otherwise(reason)
        )
    return frame.with_columns(reason.alias(f"__rk_reason_{fname}")).drop("__rk_id", "__rk_rej")
