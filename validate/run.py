"""``crmkit validate``: read a file, a table or the target, check it, profile it, gate it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from crmkit.errors import CrmkitError
from crmkit.schema.target import entities
from crmkit.validate.engine import ERRORS, WARNINGS, Engine, Evaluation, evaluate
from crmkit.validate.gates import Checked, GateResult, evaluate_gates
from crmkit.validate.inputs import Input, is_url, read_file, read_table, read_target
from crmkit.validate.profile import Profile, profile
from crmkit.validate.rules import ValidationRules, load_rules


class UsageError(CrmkitError):
    """Options that contradict each other, or an entity crmkit does not know."""


@dataclass
class Request:
    """What to validate and how (the CLI's options, already parsed)."""

    entity: str
    source: str | None = None  # a file path or a database URL
    target: str | None = None  # the CRM target (post-load)
    table: str | None = None
    rules: Path | None = None
    sheet: str | None = None
    encoding: str | None = None
    key: list[str] | None = None
    engine: Engine = "polars"
    mask: bool = True


@dataclass
class ValidationResult:
    entity: str
    input: Input
    evaluation: Evaluation
    checked: pl.DataFrame  # the input rows with __v_errors and __v_warnings
    profile: Profile
    gates: list[GateResult]
    engine: str
    seconds: float
    rules_file: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def rows_with(self, column: str) -> int:
        if self.checked.height == 0:
            return 0
        return int(self.checked.select((pl.col(column).list.len() > 0).sum()).item())

    def to_json(self) -> dict[str, object]:
        rows = self.checked.height
        errors, warnings = self.rows_with(ERRORS), self.rows_with(WARNINGS)
        clean = (
            int(
                self.checked.select(
                    ((pl.col(ERRORS).list.len() == 0) & (pl.col(WARNINGS).list.len() == 0)).sum()
                ).item()
            )
            if rows
            else 0
        )
        return {
            "entity": self.entity,
            "status": "passed" if self.passed else "failed",
            "engine": self.engine,
            "input": {
                "label": self.input.label,
                "kind": self.input.kind,
                "note": self.input.note,
                "unchecked_columns": self.input.unchecked_columns,
                "missing_fields": self.input.missing_fields,
            },
            "rules_file": self.rules_file,
            "seconds": round(self.seconds, 3),
            "rows": rows,
            "rows_with_errors": errors,
            "rows_with_warnings": warnings,
            "clean_rows": clean,
            "rules": [{**r.describe(), "failures": self.counts.get(r.name, 0)} for r in self.evaluation.rules],
            "skipped_rules": [
                {"name": r.name, "needs": sorted(r.needs - set(self.input.frame.columns))}
                for r in self.evaluation.skipped
            ],
            "profile": self.profile.to_json(),
            "gates": [g.to_json() for g in self.gates],
        }


def _check_request(req: Request) -> None:
    if req.entity not in entities():
        raise UsageError(f"unknown entity '{req.entity}' (known: {', '.join(entities())})")
    if (req.source is None) == (req.target is None):
        raise UsageError(
            "give either PATH_OR_URL (a file or a database table) or --target URL (the CRM), not "
            + ("both" if req.source else "neither")
        )
    if req.target is not None and req.table is not None:
        raise UsageError(
            "--table reads a table of a database given as PATH_OR_URL; with --target the table is the entity's own"
        )
    if req.source is not None and not is_url(req.source) and req.table is not None:
        raise UsageError("--table applies to a database URL, not to a file")


def read(req: Request) -> Input:
    if req.target is not None:
        return read_target(req.target, req.entity)
    assert req.source is not None
    if is_url(req.source):
        return read_table(req.source, req.table or req.entity, req.entity, req.key)
    return read_file(Path(req.source), req.entity, req.sheet, req.encoding, req.key)


def run(req: Request) -> ValidationResult:
    """Validate what ``req`` names; raises CrmkitError for bad input (exit 2)."""
    _check_request(req)
    rules = load_rules(req.rules) if req.rules else None
    inp = read(req)
    return validate_input(inp, req.entity, rules, req.engine, req.mask, str(req.rules) if req.rules else None)


def validate_input(
    inp: Input,
    entity: str,
    rules: ValidationRules | None,
    engine: Engine = "polars",
    mask: bool = True,
    rules_file: str | None = None,
) -> ValidationResult:
    start = time.perf_counter()
    ev = evaluate(entity, inp.frame, rules, engine, mask)
    checked = inp.frame.with_columns(ev.reasons("error"), ev.reasons("warning"))
    prof = profile(ev)
    gates = evaluate_gates(rules, [Checked(entity, checked, inp.label)])
    return ValidationResult(
        entity, inp, ev, checked, prof, gates, engine, time.perf_counter() - start, rules_file, ev.counts()
    )
