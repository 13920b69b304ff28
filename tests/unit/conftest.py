"""Helpers for unit tests of the migration's field chains: no database, no CLI, milliseconds.

Every import of the transform registry and of the migration's stages is in this file, so a
move of those modules (the transforms registry, the pipeline's stages)
is fixed here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tests.conftest import write_case


def apply_transform(name: str, args: Any, values: list[Any]) -> tuple[list[Any], list[bool]]:
    """Run one registered transform over ``values`` as a column: its output and, per value,
    whether the step failed (a fallible step that turned a value into none)."""
    from crmkit.migrate import transforms

    step = transforms.build(name, args)
    frame = pl.DataFrame({"v": pl.Series(values, dtype=pl.String)})
    if step.frame_apply is not None:
        out = step.frame_apply(frame, "v")
    else:
        assert step.apply is not None
        out = frame.select(step.apply(pl.col("v")).alias("v")).to_series()
    if not step.fallible:
        return out.to_list(), [False] * len(values)
    failed = frame["v"].is_not_null() & out.is_null()
    if step.fails is not None:
        failed = frame.select(step.fails(pl.col("v"))).to_series().fill_null(False)
    return out.to_list(), failed.to_list()


def transform_names() -> list[str]:
    """Every registered transform."""
    from crmkit.migrate.transforms import TRANSFORMS

    return TRANSFORMS.names()


@dataclass
class Shaped:
    """One feed shaped and checked as a run would before writing: rows by legacy key."""

    rows: dict[str | None, dict[str, Any]]  # legacy key -> typed field values, ``reasons`` and ``warnings``
    filtered: int  # rows the feed's filter left out

    def reasons(self, key: str | None = "1") -> str:
        return "; ".join(self.rows[key]["reasons"])

    def value(self, field: str, key: str = "1") -> Any:
        return self.rows[key][field]


def shape_case(
    folder: Path,
    entity: str,
    fields: dict[str, str],
    header: list[str],
    rows: list[list[str | None]],
    key: str = "id",
    filter_: str | None = None,
) -> Shaped:
    """Write the case (tests/conftest.py write_case), then extract, shape and check it in memory.

    References resolve against the case's accounts as the run would: a loaded account has an
    id, a rejected one is named as rejected in this run.
    """
    from crmkit.migrate.fields import ERRORS, KEY, WARNINGS
    from crmkit.migrate.mapping import load_mapping
    from crmkit.migrate.pipeline.check import KeyMap, check
    from crmkit.migrate.pipeline.prepare import prepare

    mapping = write_case(folder, entity, fields, header, rows, key, filter_)
    prepared = prepare(load_mapping(mapping))
    parents: dict[str, KeyMap] = {}
    for feed in prepared.shaped.get("accounts", []) if entity != "accounts" else []:
        done = check(feed, {})
        bad = done[ERRORS].list.len() > 0
        ids = done.filter(~bad).select(pl.col(KEY).alias("legacy_key"), pl.int_range(pl.len()).alias("target_id"))
        rejected = done.filter(bad).select(pl.col(KEY).alias("legacy_key"))
        keymap = KeyMap("accounts", feed.source, ids.with_columns(pl.col("target_id").cast(pl.Int64) + 1), rejected)
        parents = {name: keymap for name in prepared.shaped[entity][0].refs}
    (shaped,) = prepared.shaped[entity]
    checked = check(shaped, parents)
    names = [f.name for f in shaped.fields]
    out = {
        r[KEY]: {**{n: r[n] for n in names}, "reasons": r[ERRORS], "warnings": r[WARNINGS]}
        for r in checked.iter_rows(named=True)
    }
    return Shaped(out, shaped.filtered)
