"""Gates: each reads evidence the toolkit itself produced and says pass, fail or inconclusive.

Evidence that is missing, or older than the gate's ``max_age``, makes a gate
``inconclusive``: the plan pauses and the gate says what to produce.  A gate never passes
by default.  Gate kinds register in :data:`GATES`
(their definitions: crmkit.rollout.gate_kinds).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from crmkit.audit import now
from crmkit.db.loader import open_loader
from crmkit.registry import Registry
from crmkit.rollout.spec import GateSpec

if TYPE_CHECKING:
    from crmkit.rollout.plan import Plan, Wave

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass
class GateResult:
    gate: str
    subject: str  # the wave whose evidence it judges
    status: str  # pass | fail | inconclusive
    measured: str
    required: str
    hint: str = ""  # what to do about it

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def to_json(self) -> dict[str, str]:
        return self.__dict__.copy()


#: folder of the sandbox registry when neither the plan nor the caller names one (as crmkit.settings)
DEFAULT_SANDBOX_HOME = Path(".crmkit")


@dataclass
class WaveState:
    """What the target records of a wave."""

    name: str
    status: str  # pending | migrated | rolled_back
    run_ids: list[int]
    migrated_at: dt.datetime | None


@dataclass
class Context:
    plan: Plan
    wave: Wave  # the wave to advance to
    previous: Wave | None
    states: dict[str, WaveState]
    target: str
    #: folder of the sandbox registry (the CLI's CRMKIT_HOME), where a plan names none
    sandbox_home: Path = DEFAULT_SANDBOX_HOME

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> pl.DataFrame:
        """One query on a short-lived connection: gates call code (verify, validate) that opens its
        own, and two SQLite library copies in one process must never hold the same file open."""
        loader = open_loader(self.target)
        try:
            return loader.query(sql, params)
        finally:
            loader.close()

    def runs(self, run_ids: list[int]) -> pl.DataFrame:
        """id, status, counts_json of the given migration runs (on a short-lived connection)."""
        from crmkit.migrate.safety.store import RunStore

        loader = open_loader(self.target)
        try:
            return RunStore(loader).run_outcomes(run_ids)
        finally:
            loader.close()

    @property
    def previous_state(self) -> WaveState | None:
        return self.states.get(self.previous.name) if self.previous else None


Gate = Callable[[Context, Any], GateResult]


@dataclass(frozen=True)
class GateKind:
    """A gate: the keys it takes under a wave's ``gates:`` and the check that judges them."""

    check: Gate
    spec: type[GateSpec]
    previous_wave: bool  # judged on the previous wave's evidence (else on this wave's readiness)


#: every gate kind by its key under a wave's ``gates:``, in the order they are judged
GATES: Registry[GateKind] = Registry("gate")


def gate(name: str, spec: type[GateSpec], *, previous_wave: bool, summary: str) -> Callable[[Gate], Gate]:
    """Register a gate: ``@gate("name", NameGate, previous_wave=True, summary="...")`` on its check."""

    def add(check: Gate) -> Gate:
        GATES.add(name, GateKind(check, spec, previous_wave), summary=summary)
        return check

    return add


def _file_age(path: Path) -> dt.timedelta:
    return now() - dt.datetime.fromtimestamp(os.path.getmtime(path), dt.UTC).replace(tzinfo=None)


def _stale(ctx: Context, spec: Any, age: dt.timedelta) -> str | None:
    limit = ctx.plan.age(spec)
    if age > limit:
        return f"evidence is {age.days}d {age.seconds // 3600}h old (older than {spec.max_age or ctx.plan.max_evidence_age})"
    return None


def _needs_previous(ctx: Context, name: str) -> GateResult | None:
    prev = ctx.previous_state
    if ctx.previous is None:
        return GateResult(name, "-", INCONCLUSIVE, "no previous wave", "-", "this gate judges the previous wave")
    if prev is None or prev.status != "migrated":
        return GateResult(
            name,
            ctx.previous.name,
            INCONCLUSIVE,
            "not migrated",
            "migrated",
            f"migrate wave {ctx.previous.name} first (crmkit rollout advance)",
        )
    return None


def approvals(ctx: Context, given: dict[str, tuple[str, dt.datetime]]) -> list[GateResult]:
    out = []
    for name in ctx.wave.approvals:
        if name in given:
            by, at = given[name]
            out.append(GateResult(f"approval:{name}", ctx.wave.name, PASS, f"by {by} at {at:%Y-%m-%d %H:%M}", "given"))
        else:
            out.append(
                GateResult(
                    f"approval:{name}",
                    ctx.wave.name,
                    INCONCLUSIVE,
                    "not given",
                    "given",
                    f"crmkit rollout approve {ctx.plan.path} {ctx.wave.name} --approval {name} --by NAME",
                )
            )
    return out


def evaluate(ctx: Context, given: dict[str, tuple[str, dt.datetime]]) -> list[GateResult]:
    """Every gate of the wave to advance to, in the plan's order, then its approvals."""
    results = []
    for name in type(ctx.wave.gates).model_fields:
        spec = getattr(ctx.wave.gates, name, None)
        if spec is not None:
            results.append(GATES.get(name).check(ctx, spec))
    return results + approvals(ctx, given)
