"""Run an entity's rules over a frame, lazily: every failure of every rule is collected.

:func:`evaluate` computes one Boolean "fails" column per rule in a single polars
``select`` (polars runs the expressions in parallel).  Reasons are text only for the rows
that fail something, so a clean million rows costs the checks and nothing more.

Two engines decide which rows fail which rule, from the same :class:`~validate.schema.Rule`
list: ``polars`` (the expressions themselves; the default, and the fast one) and
``pandera`` (the DataFrameModel of :mod:`validate.pandera_model`, validated with
``lazy=True``).  ``tests/unit/test_validate_engines.py`` checks that they agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from crmkit.schema.target import entities
from crmkit.validate import checks as C
from crmkit.validate.rules import ValidationRules
from crmkit.validate.schema import KEY, ROW, SOURCE, Rule, entity_rules, personal_fields

ERRORS = "__v_errors"
WARNINGS = "__v_warnings"
Engine = Literal["polars", "pandera"]
_LIST = pl.List(pl.String)
SHOWN_CHARS = 60


def _m(rule: Rule) -> str:
    return f"__m_{rule.name}"


@dataclass
class Evaluation:
    """Which rows of ``frame`` fail which rule."""

    entity: str
    frame: pl.DataFrame
    rules: list[Rule]
    skipped: list[Rule]
    masks: pl.DataFrame  # one Boolean column __m_<rule> per rule: True where the row fails
    personal: set[str] = field(default_factory=set)
    masked: bool = True

    def counts(self) -> dict[str, int]:
        if not self.rules:
            return {}
        row = self.masks.select(pl.all().sum()).row(0)
        return {r.name: int(n) for r, n in zip(self.rules, row)}

    def failing(self, severity: str) -> pl.Series:
        """Per row: does it fail any rule of this severity?"""
        cols = [pl.col(_m(r)) for r in self.rules if r.severity == severity]
        if not cols:
            return pl.Series(severity, [False], dtype=pl.Boolean).new_from_index(0, self.frame.height)
        return self.masks.select(pl.any_horizontal(cols).alias(severity)).to_series()

    def reasons(self, severity: str) -> pl.Series:
        """Per row, the reasons it fails the rules of this severity (an empty list when none)."""
        name = ERRORS if severity == "error" else WARNINGS
        empty = pl.lit([], dtype=_LIST)
        long = self._long([r for r in self.rules if r.severity == severity])
        if long.height == 0:
            return pl.select(empty.alias(name)).to_series().new_from_index(0, self.frame.height)
        lists = long.sort("__i", "__o").group_by("__i", maintain_order=True).agg(pl.col("reason"))
        # put each failing row's list back at its position; every other row gets []
        pos = pl.Series([None], dtype=pl.UInt32).new_from_index(0, self.frame.height)
        pos = pos.scatter(lists["__i"], pl.int_range(0, lists.height, dtype=pl.UInt32, eager=True))
        return pl.select(
            pl.when(pos.is_not_null()).then(lists["reason"].gather(pos)).otherwise(empty).alias(name)
        ).to_series()

    def _long(self, rules: list[Rule]) -> pl.DataFrame:
        """One row per failure of ``rules``: row position ``__i``, rule order ``__o``, reason."""
        parts = []
        for o, r in enumerate(rules):
            sub = self._failing_rows(r)
            if sub is not None:
                parts.append(
                    sub.select(pl.col("__i"), pl.lit(o, pl.UInt32).alias("__o"), self._reason(r).alias("reason"))
                )
        if not parts:
            return pl.DataFrame(schema={"__i": pl.UInt32, "__o": pl.UInt32, "reason": pl.String})
        return pl.concat(parts)

    def _failing_rows(self, r: Rule) -> pl.DataFrame | None:
        """The rows failing ``r`` (only the columns it needs), their positions in ``__i``."""
        idx = self.masks[_m(r)].arg_true()
        if len(idx) == 0:
            return None
        cols = sorted(
            r.needs
            | ({r.value} if r.value else set())
            | set(r.first_row_of)
            | {c for c in (ROW, KEY, SOURCE) if c in self.frame.columns}
        )
        sub = self.frame.select(cols)[idx].with_columns(idx.alias("__i"))
        return self._first_rows(sub, r) if r.first_row_of else sub

    def _first_rows(self, sub: pl.DataFrame, r: Rule) -> pl.DataFrame:
        part = list(r.first_row_of)
        hashes = sub.select(_hashed(part).alias("h"))["h"].unique().implode()
        row = pl.col(ROW) if ROW in self.frame.columns else pl.int_range(1, pl.len() + 1).alias(ROW)
        rows = self.frame.select(*part, row, _hashed(part).alias("__h")).filter(pl.col("__h").is_in(hashes))
        first = rows.group_by(part).agg(pl.col(ROW).min().alias(f"__first_{r.name}"))
        return sub.join(first, on=part, how="left", maintain_order="left", nulls_equal=True)

    def shown(self, r: Rule) -> pl.Expr:
        """The value a reason or report shows for a rule."""
        assert r.value is not None
        return self.shown_value(r.field, pl.col(r.value))

    def shown_value(self, field: str, value: pl.Expr) -> pl.Expr:
        """A value as text, cut short, masked when ``field`` holds personal data."""
        v = value.cast(pl.String)
        v = pl.when(v.str.len_chars() > SHOWN_CHARS).then(v.str.slice(0, SHOWN_CHARS) + "…").otherwise(v)
        return C.mask(v) if self.masked and field in self.personal else v

    def _reason(self, r: Rule) -> pl.Expr:
        tail = f" [rule {r.name}]"
        plain = pl.lit(f"{r.field}: {r.text}")
        if r.value is None:
            base = plain
        else:
            v = self.shown(r)
            base = (
                pl.when(v.is_null())
                .then(plain)
                .otherwise(pl.concat_str([pl.lit(f"{r.field}: '"), v, pl.lit(f"' {r.text}")]))
            )
        if r.first_row_of:
            where = pl.concat_str([pl.lit(" (first at row "), pl.col(f"__first_{r.name}").cast(pl.String), pl.lit(")")])
            return pl.concat_str([base, where, pl.lit(tail)], ignore_nulls=True)
        return pl.concat_str([base, pl.lit(tail)])

    def failure_cases(self) -> pl.DataFrame:
        """One row per (row, rule) failure: source, row, key, field, rule, severity, value, reason."""
        parts = []
        for r in self.rules:
            sub = self._failing_rows(r)
            if sub is None:
                continue
            parts.append(
                sub.select(
                    (pl.col(SOURCE) if SOURCE in sub.columns else pl.lit(None, pl.String)).alias("source"),
                    (pl.col(ROW) if ROW in sub.columns else pl.col("__i") + 1).cast(pl.Int64).alias("row"),
                    (pl.col(KEY) if KEY in sub.columns else pl.lit(None, pl.String)).alias("key"),
                    pl.lit(r.field).alias("field"),
                    pl.lit(r.name).alias("rule"),
                    pl.lit(r.severity).alias("severity"),
                    (self.shown(r) if r.value is not None else pl.lit(None, pl.String)).alias("value"),
                    self._reason(r).alias("reason"),
                )
            )
        if not parts:
            return empty_failures()
        return pl.concat(parts).sort(["row", "rule"], nulls_last=True, maintain_order=True)


def empty_failures() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "source": pl.String,
            "row": pl.Int64,
            "key": pl.String,
            "field": pl.String,
            "rule": pl.String,
            "severity": pl.String,
            "value": pl.String,
            "reason": pl.String,
        }
    )


def conform(entity: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Check target columns have the target's dtypes (all-null columns are cast)."""
    fields = entities()[entity].fields
    fixes = []
    for name, dtype in frame.schema.items():
        tf = fields.get(name)
        if tf is None or dtype == tf.dtype:
            continue
        if dtype == pl.Null:
            fixes.append(pl.col(name).cast(tf.dtype))
        else:
            raise TypeError(
                f"{entity}.{name} is {dtype}, not {tf.dtype}: type the frame first "
                f"(validate.inputs.typed does it for text)"
            )
    return frame.with_columns(fixes) if fixes else frame


def evaluate(
    entity: str,
    frame: pl.DataFrame,
    rules: ValidationRules | None,
    engine: Engine = "polars",
    mask: bool = True,
    today: dt.date | None = None,
    skip: Collection[str] = (),
) -> Evaluation:
    """Every rule of ``entity`` that its columns allow, over every row of ``frame``.

    ``skip``: names or kinds of rules not to run (e.g. ``{"required", "unique"}`` where the
    caller checks required fields and legacy keys itself).
    """
    frame = conform(entity, frame)
    ready, skipped = entity_rules(entity, frame.columns, rules, today)
    ready = [r for r in ready if r.name not in skip and r.kind not in skip]
    if engine == "pandera":
        from crmkit.validate.pandera_model import failure_masks

        masks = failure_masks(entity, frame, ready)
        for r in ready:
            if r.first_row_of:
                masks = masks.with_columns(exact_unique(frame, r, masks[_m(r)]))
    else:
        masks = polars_masks(frame, ready)
    return Evaluation(entity, frame, ready, skipped, masks, personal_fields(entity, rules), mask)


def polars_masks(frame: pl.DataFrame, rules: list[Rule]) -> pl.DataFrame:
    """The rules' failure masks, in one parallel ``select``, made exact afterwards.

    A rule with a ``quick`` condition is first checked with it; its full expression then
    runs only on the rows the quick one could not clear.  A uniqueness rule compares
    hashes; the rows it flags are re-checked on their values (:func:`exact_unique`).
    """
    if not rules:
        return pl.DataFrame()
    first = frame.select([(~r.quick.fill_null(True) if r.quick is not None else r.fails).alias(_m(r)) for r in rules])
    cols = {r.name: first[_m(r)] for r in rules}
    for r in rules:
        if r.quick is not None and cols[r.name].any():
            idx = cols[r.name].arg_true()
            cols[r.name] = cols[r.name].scatter(idx, frame[idx].select(r.fails).to_series())
        elif r.first_row_of:
            cols[r.name] = exact_unique(frame, r, cols[r.name])
    return pl.DataFrame([cols[r.name] for r in rules])


def _hashed(part: list[str]) -> pl.Expr:
    return pl.struct(part).hash() if len(part) > 1 else pl.col(part[0]).hash()


def exact_unique(frame: pl.DataFrame, r: Rule, mask: pl.Series) -> pl.Series:
    """Re-check the rows a hashed uniqueness rule flagged, on their real values."""
    return _exact_later(frame, list(r.first_row_of), mask)


def _exact_later(frame: pl.DataFrame, part: list[str], mask: pl.Series) -> pl.Series:
    """``mask`` (rows whose hash was seen before) made exact: only rows whose values were."""
    if not mask.any():
        return mask
    flagged = frame.filter(mask).select(_hashed(part).alias("h"))["h"].unique()
    idx = frame.select(_hashed(part).is_in(flagged.implode()).alias("c"))["c"].arg_true()
    real = frame[idx].select(~pl.struct(part).is_first_distinct() & pl.col(part[-1]).is_not_null()).to_series()
    return mask.scatter(idx, real)


def later_copies(frame: pl.DataFrame, part: list[str]) -> pl.Series:
    """True where the values of ``part`` were already seen in an earlier row (exact; nulls never repeat)."""
    there = pl.col(part[-1]).is_not_null()
    distinct, present = frame.select(_hashed(part).filter(there).n_unique().alias("d"), there.sum().alias("n")).row(0)
    if distinct == present:  # every hash differs: no value repeats
        return pl.Series([False], dtype=pl.Boolean).new_from_index(0, frame.height)
    mask = frame.select(~_hashed(part).is_first_distinct() & there).to_series()
    return _exact_later(frame, part, mask)


def check_frame(
    entity: str,
    frame: pl.DataFrame,
    rules: ValidationRules | None,
    engine: Engine = "polars",
    mask: bool = True,
    skip: Collection[str] = (),
) -> pl.DataFrame:
    """``frame`` with ``__v_errors`` and ``__v_warnings`` (List[String]) added, rows unchanged.

    ``frame`` has ``__row``, ``__key`` and target-field columns of the target's dtypes
    (only the fields a feed maps: rules on missing columns are skipped).  Each reason
    reads ``email: 'x***' is not an email address [rule email_syntax]``; values of
    personal-data columns are masked unless ``mask=False``.  ``skip``: rule names or kinds
    not to run (see :func:`evaluate`).
    """
    ev = evaluate(entity, frame, rules, engine, mask, skip=skip)
    return frame.with_columns(ev.reasons("error"), ev.reasons("warning"))


__all__ = ["ERRORS", "WARNINGS", "Evaluation", "check_frame", "evaluate", "conform"]
