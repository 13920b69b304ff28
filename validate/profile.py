"""Quality profile of an evaluated frame: per column completeness, distinct values,
valid / invalid / missing counts, format conformance and the most common invalid values;
duplicates on the legacy key (per source).

Distinct values are counted by 64-bit hash (a million strings in a tenth of the time);
two different values would have to collide for a count to be one short.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from dataclasses import field as dc_field

import polars as pl

from crmkit.schema.target import entities
from crmkit.validate.engine import Evaluation, later_copies
from crmkit.validate.schema import KEY, SOURCE, raw_col

TOP_INVALID = 5


@dataclass
class ColumnProfile:
    field: str
    rows: int
    missing: int
    invalid: int
    distinct: int
    rules: list[str]
    top_invalid: list[tuple[str, int]] = dc_field(default_factory=list)

    @property
    def valid(self) -> int:
        return self.rows - self.missing - self.invalid

    @property
    def completeness(self) -> float | None:
        return None if self.rows == 0 else (self.rows - self.missing) / self.rows

    @property
    def conformance(self) -> float | None:
        present = self.rows - self.missing
        return None if present == 0 else self.valid / present

    def to_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "valid": self.valid,
            "completeness": self.completeness,
            "conformance": self.conformance,
            "top_invalid": [list(t) for t in self.top_invalid],
        }


@dataclass
class KeyProfile:
    present: bool
    missing: int = 0
    duplicate_rows: int = 0  # rows whose key was already seen (per source)
    duplicated_keys: int = 0  # distinct keys seen more than once


@dataclass
class Profile:
    rows: int
    columns: list[ColumnProfile]
    key: KeyProfile

    def to_json(self) -> dict[str, object]:
        return {"rows": self.rows, "columns": [c.to_json() for c in self.columns], "key": asdict(self.key)}


def _missing(frame: pl.DataFrame, f: str) -> pl.Expr:
    miss = pl.col(f).is_null()
    return miss & pl.col(raw_col(f)).is_null() if raw_col(f) in frame.columns else miss


def profile(ev: Evaluation) -> Profile:
    frame, fields = ev.frame, [f for f in entities()[ev.entity].fields if f in ev.frame.columns]
    joined = pl.concat([frame, ev.masks], how="horizontal") if ev.rules else frame
    invalid: dict[str, pl.Expr] = {}
    for f in fields:
        masks = [pl.col(f"__m_{r.name}") for r in ev.rules if r.field == f]
        bad = pl.any_horizontal(masks) if masks else pl.lit(False)
        invalid[f] = ~_missing(frame, f) & bad
    stats = (
        joined.select(
            *[_missing(frame, f).sum().alias(f"m_{f}") for f in fields],
            *[invalid[f].sum().alias(f"i_{f}") for f in fields],
            *[pl.col(f).drop_nulls().hash().n_unique().alias(f"d_{f}") for f in fields],
        ).row(0, named=True)
        if fields
        else {}
    )
    cols = []
    for f in fields:
        cp = ColumnProfile(
            f,
            frame.height,
            int(stats[f"m_{f}"]),
            int(stats[f"i_{f}"]),
            int(stats[f"d_{f}"]),
            [r.name for r in ev.rules if r.field == f],
        )
        if cp.invalid:
            cp.top_invalid = _top_invalid(ev, joined, f, invalid[f])
        cols.append(cp)
    return Profile(frame.height, cols, _key(ev))


def _top_invalid(ev: Evaluation, joined: pl.DataFrame, f: str, invalid: pl.Expr) -> list[tuple[str, int]]:
    """The most common values that fail a rule of ``f`` (masked when personal)."""
    value = (
        pl.coalesce(pl.col(raw_col(f)), pl.col(f).cast(pl.String))
        if raw_col(f) in joined.columns
        else pl.col(f).cast(pl.String)
    )
    top = (
        joined.filter(invalid)
        .group_by(value.alias("v"))
        .len()
        .sort(["len", "v"], descending=[True, False])
        .head(TOP_INVALID)
    )
    shown = top.with_columns(ev.shown_value(f, pl.col("v")).alias("v"))
    return [(str(v), int(n)) for v, n in shown.iter_rows()]


def _key(ev: Evaluation) -> KeyProfile:
    frame = ev.frame
    if KEY not in frame.columns:
        return KeyProfile(present=False)
    part = [c for c in (SOURCE, KEY) if c in frame.columns]
    later = later_copies(frame, part)
    missing = int(frame[KEY].null_count())
    if not later.any():
        return KeyProfile(True, missing)
    return KeyProfile(True, missing, int(later.sum()), frame.filter(later).select(part).n_unique())
