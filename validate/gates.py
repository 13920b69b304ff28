"""Gates: thresholds the validation results must meet before a load (or a go-live).

:func:`evaluate_gates` reads checked frames (the output of :func:`validate.check_frame`,
one per entity feed) and measures each gate of the rules.  A migration counts a row as
rejected when it has a validation error *or* a pipeline error (``__errors``), so gates see
the same rejects the run would produce.  Without gates in the rules, one default gate
applies: no row may have an error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

from crmkit.validate.engine import ERRORS, WARNINGS
from crmkit.validate.rules import GateSpec, ValidationRules
from crmkit.validate.schema import raw_col

PIPELINE_ERRORS = "__errors"  # migrate.fields.ERRORS
DEFAULT_GATE = GateSpec(name="no row with an error", metric="rejected_rows", max="0")


@dataclass
class Checked:
    """One checked frame: an entity's rows (from one source), after :func:`validate.check_frame`."""

    entity: str
    frame: pl.DataFrame
    source: str | None = None


@dataclass
class GateResult:
    name: str
    measured: float | None  # in the unit of the threshold: a percentage when it ends in %, else a count
    required: str  # e.g. "<= 0.5%"
    passed: bool
    inconclusive: bool
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def gates_of(rules: ValidationRules | None, default: GateSpec | None = DEFAULT_GATE) -> list[GateSpec]:
    if rules and rules.gates:
        return list(rules.gates)
    return [default] if default is not None else []


def evaluate_gates(
    rules: ValidationRules | None, results: list[Checked], default: GateSpec | None = DEFAULT_GATE
) -> list[GateResult]:
    """Measure every gate of ``rules`` over ``results``; ``default`` when the rules have none.

    A gate that names an entity applies only when that entity is among the results.
    """
    present = {c.entity for c in results}
    return [
        _gate(g, [c for c in results if g.entity in (None, c.entity)])
        for g in gates_of(rules, default)
        if g.entity is None or g.entity in present
    ]


def _rows_with(frame: pl.DataFrame, cols: list[str]) -> int:
    present = [pl.col(c).list.len() > 0 for c in cols if c in frame.columns]
    if not present or frame.height == 0:
        return 0
    return int(frame.select(pl.any_horizontal(present).sum()).item())


def _rule_failures(frame: pl.DataFrame, rule: str) -> int:
    tag = f"[rule {rule}]"
    cols = [c for c in (ERRORS, WARNINGS) if c in frame.columns]
    if not cols or frame.height == 0:
        return 0
    return int(
        frame.select(
            pl.sum_horizontal([pl.col(c).list.eval(pl.element().str.ends_with(tag)).list.sum() for c in cols]).sum()
        ).item()
    )


def _present(frame: pl.DataFrame, field: str) -> pl.Expr:
    """A value is there, even when it failed to cast to the field's type (its text is kept)."""
    there = pl.col(field).is_not_null()
    return there | pl.col(raw_col(field)).is_not_null() if raw_col(field) in frame.columns else there


def _measure(g: GateSpec, scope: list[Checked]) -> tuple[int, int, str]:
    """(count, out of how many, what was counted) for the gate's metric."""
    if g.metric == "completeness":
        field = g.field or ""
        have = [c.frame for c in scope if field in c.frame.columns]
        total = sum(f.height for f in have)
        present = sum(int(f.select(_present(f, field).sum()).item()) for f in have)
        return present, total, f"rows with {field}"
    rows = sum(c.frame.height for c in scope)
    if g.metric == "rejected_rows":
        return sum(_rows_with(c.frame, [ERRORS, PIPELINE_ERRORS]) for c in scope), rows, "rows with an error"
    if g.metric == "warned_rows":
        return sum(_rows_with(c.frame, [WARNINGS]) for c in scope), rows, "rows with a warning"
    return sum(_rule_failures(c.frame, g.rule or "") for c in scope), rows, f"failures of {g.rule}"


def _gate(g: GateSpec, scope: list[Checked]) -> GateResult:
    count, total, what = _measure(g, scope)
    bound = g.min if g.min is not None else g.max
    assert bound is not None
    share = bound.endswith("%")
    required = (">= " if g.min is not None else "<= ") + bound
    if share and total == 0:
        why = f"no rows with {g.field}" if g.metric == "completeness" else "no rows"
        return GateResult(g.label, None, required, g.when_inconclusive == "pass", True, f"{why}: nothing to measure")
    measured = 100.0 * count / total if share else float(count)
    limit = float(bound.rstrip("%"))
    passed = measured >= limit if g.min is not None else measured <= limit
    shown = f"{measured:.2f}%" if share else f"{count}"
    return GateResult(
        g.label,
        round(measured, 4) if share else measured,
        required,
        passed,
        False,
        f"{shown}: {count} {what} of {total}",
    )
