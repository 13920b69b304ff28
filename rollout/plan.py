"""The rollout plan (YAML): mappings, target, waves in order with their scope and gates.

See docs/rollout-reference.md.  Paths are relative to the plan file; the target URL may
take secrets through ``${VAR}``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, create_model, field_validator, model_validator

from crmkit.config import Strict, expand_url, load_model
from crmkit.errors import ConfigError
from crmkit.rollout.gate_kinds import GATES
from crmkit.rollout.spec import RelPath, parse_age

#: a wave's ``gates:``: one optional key per registered gate kind, in the registry's order
Gates: type[Strict] = create_model(  # type: ignore[call-overload]
    "Gates",
    __base__=Strict,
    **{e.name: (e.item.spec | None, None) for e in GATES.entries()},
)

#: gates judged on the previous wave's evidence; the others on this wave's readiness
PREVIOUS_WAVE_GATES = tuple(e.name for e in GATES.entries() if e.item.previous_wave)


class Wave(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    #: entity -> SQL condition over its source columns; rows that refer to them follow
    scope: dict[str, str] = {}
    #: department codes (departments.code) whose people this wave brings on board
    departments: list[str] = []
    users: int = Field(0, ge=0)
    training_scenario: RelPath | None = None
    approvals: list[str] = []
    gates: Gates = Gates()

    @field_validator("scope")
    @classmethod
    def _scope_parses(cls, v: dict[str, str]) -> dict[str, str]:
        from crmkit.migrate.condition import ConditionError, parse_condition

        for entity, text in v.items():
            try:
                parse_condition(text)
            except ConditionError as exc:
                raise ValueError(f"{entity}: not a SQL condition crmkit allows: {exc}") from None
        return v


class Plan(Strict):
    version: Literal[1]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    target: str
    mappings: list[RelPath]
    max_evidence_age: str = "7d"
    waves: list[Wave]

    _path: Path | None = PrivateAttr(None)

    @field_validator("max_evidence_age")
    @classmethod
    def _age(cls, v: str) -> str:
        parse_age(v)
        return v

    @model_validator(mode="after")
    def _waves(self) -> Plan:
        if not self.waves:
            raise ValueError("a plan needs at least one wave (the pilot)")
        names = [w.name for w in self.waves]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"wave names repeat: {', '.join(sorted(dupes))}")
        first = self.waves[0].gates
        early = [g for g in PREVIOUS_WAVE_GATES if getattr(first, g) is not None]
        if early:
            raise ValueError(f"the first wave has no previous wave to judge: drop its {', '.join(early)} gate(s)")
        return self

    @property
    def path(self) -> Path:
        assert self._path is not None
        return self._path

    def target_url(self) -> str:
        """The target URL with ``${VAR}`` expanded; a relative SQLite path is relative to the plan."""
        from sqlalchemy.engine import make_url

        url = expand_url(self.target, f"{self.path}: target")
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).is_absolute():
            db = (self.path.parent / parsed.database).resolve()
            db.parent.mkdir(parents=True, exist_ok=True)
            return parsed.set(database=str(db)).render_as_string(hide_password=False)
        return url

    def wave(self, name: str) -> Wave:
        for w in self.waves:
            if w.name == name:
                return w
        raise ConfigError(f"plan {self.name} has no wave {name!r} (waves: {', '.join(w.name for w in self.waves)})")

    def cumulative_users(self, upto: str) -> int:
        total = 0
        for w in self.waves:
            total += w.users
            if w.name == upto:
                break
        return total

    def cumulative_scope(self, upto: str) -> dict[str, str]:
        """The union of the waves' scopes up to and including ``upto`` (what should be in the target)."""
        waves = self.waves[: [w.name for w in self.waves].index(upto) + 1]
        entities = {e for w in waves for e in w.scope}
        # an entity some wave up to here takes without a condition is no longer restricted
        return {
            e: " OR ".join(f"({w.scope[e]})" for w in waves)
            for e in sorted(entities)
            if all(e in w.scope for w in waves)
        }

    def age(self, gate: Any) -> dt.timedelta:
        return parse_age(gate.max_age or self.max_evidence_age)


def load_plan(path: str | Path) -> Plan:
    plan, _ = load_model(Path(path), Plan)
    plan._path = Path(path)
    return plan
