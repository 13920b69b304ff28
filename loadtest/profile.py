"""Load profiles: YAML files under ``configs/loadtest/`` (reference: docs/loadtest-reference.md).

A profile says how many virtual users, of which personas, for how long and in which stages
(ramp, steady, spike), and the SLO thresholds each endpoint group must meet.  It loads
through :func:`crmkit.config.load_model`, so every mistake is ``file:line: where: what``;
a threshold on an unknown metric or endpoint group is such a mistake, never a silent pass.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from crmkit.config import Strict, load_model
from crmkit.errors import ConfigError
from crmkit.loadtest.groups import GROUPS
from crmkit.loadtest.personas import PERSONAS

PROFILE_DIR = Path("configs") / "loadtest"
#: the profiles shipped with crmkit (used when the working directory has no configs/loadtest)
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "configs" / "loadtest"  # crmkit/configs when installed
MAX_DURATION_S = 24 * 3600
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_seconds(value: Any) -> float:
    """``90``, ``"90s"``, ``"1m30s"``, ``"1.5h"``, ``"250ms"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 2m or 1h")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().replace(" ", "")
    if not text or _PART.sub("", text):
        raise ValueError(f"{value!r} is not a duration: write e.g. 30s, 2m, 1m30s or 250ms")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in _PART.findall(text))


def _ms(value: Any) -> float:
    return parse_seconds(value) * 1000.0 if isinstance(value, str) else float(value)


def _rate(value: Any) -> float:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage such as 1% or 0.5%") from None
    return float(value)


def _positive(v: float) -> float:
    if not math.isfinite(v) or v <= 0:
        raise ValueError("must be more than zero")
    return v


def _bounded(v: float) -> float:
    if v > MAX_DURATION_S:
        raise ValueError(f"at most {MAX_DURATION_S // 3600} hours: every load test is bounded")
    return v


def _fraction(v: float) -> float:
    if not 0 <= v <= 1:
        raise ValueError("an error rate is between 0% and 100%")
    return v


def _known_group(name: str) -> str:
    if name not in GROUPS:
        raise ValueError(f"unknown endpoint group {name!r}: the groups are {', '.join(GROUPS)}")
    return name


def _known_persona(name: str) -> str:
    if name not in PERSONAS:
        raise ValueError(f"unknown persona {name!r}: the personas are {', '.join(PERSONAS)}")
    return name


Seconds = Annotated[float, BeforeValidator(parse_seconds), AfterValidator(_positive), AfterValidator(_bounded)]
Millis = Annotated[float, BeforeValidator(_ms), AfterValidator(_positive)]
Rate = Annotated[float, BeforeValidator(_rate), AfterValidator(_fraction)]
GroupName = Annotated[str, AfterValidator(_known_group)]
PersonaName = Annotated[str, AfterValidator(_known_persona)]


def _not_negative(v: float) -> float:
    if not math.isfinite(v) or v < 0:
        raise ValueError("must be zero or more")
    return v


ThinkSeconds = Annotated[float, BeforeValidator(parse_seconds), AfterValidator(_not_negative), AfterValidator(_bounded)]


class Persona(Strict):
    """How much of the load one persona makes, and how long its users think between actions."""

    weight: int = Field(1, ge=1, le=1000)
    think_time: tuple[ThinkSeconds, ThinkSeconds] = (1.0, 3.0)

    @model_validator(mode="after")
    def _ordered(self) -> Persona:
        if self.think_time[0] > self.think_time[1]:
            raise ValueError("think_time: write [shortest, longest]")
        return self


class Stage(Strict):
    """One stretch of the run: ``ramp`` to a user count, hold it (``steady``), or ``spike``."""

    kind: Literal["ramp", "steady", "spike"]
    duration: Seconds
    users: int | None = Field(None, ge=1, le=100_000)

    @model_validator(mode="after")
    def _needs_users(self) -> Stage:
        if self.kind in ("ramp", "spike") and self.users is None:
            raise ValueError(f"a {self.kind} stage needs users: the count to reach")
        return self


class GroupThresholds(Strict):
    """SLO limits of one endpoint group; every one given must hold for the run to pass."""

    p50: Millis | None = None
    p95: Millis | None = None
    p99: Millis | None = None
    error_rate: Rate | None = None
    min_rps: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _not_empty(self) -> GroupThresholds:
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("give at least one of p50, p95, p99, error_rate, min_rps")
        return self

    def limits(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.model_dump().items() if v is not None}


class Abort(Strict):
    """Stop the run as soon as a threshold is breached (after a warm-up)."""

    after: Seconds = 10.0
    min_requests: int = Field(20, ge=1)


class Profile(Strict):
    """A load profile (see docs/loadtest-reference.md)."""

    description: str = ""
    users: int | None = Field(None, ge=1, le=100_000)
    spawn_rate: float | None = Field(None, gt=0, le=10_000)
    duration: Seconds | None = None
    personas: dict[PersonaName, Persona]
    stages: list[Stage] = []
    thresholds: dict[GroupName, GroupThresholds] = {}
    abort: Abort | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if not self.personas:
            raise ValueError("personas: name at least one of " + ", ".join(PERSONAS))
        if not self.stages and (self.users is None or self.duration is None):
            raise ValueError("give users and duration, or stages")
        if self.stages and self.duration is not None and abs(self.duration - self.total_seconds()) > 0.5:
            raise ValueError(f"duration is {self.duration:g}s but the stages add up to {self.total_seconds():g}s")
        if self.stages and self.stages[0].users is None:
            raise ValueError("the first stage needs users")
        if self.total_seconds() > MAX_DURATION_S:
            raise ValueError(f"the stages last more than {MAX_DURATION_S // 3600} hours: every load test is bounded")
        return self

    @field_validator("thresholds")
    @classmethod
    def _groups_sent(cls, value: dict[str, GroupThresholds], info: ValidationInfo) -> dict[str, GroupThresholds]:
        """A threshold on a group none of the personas calls could never be judged: an error."""
        personas = info.data.get("personas") or {}
        made = {g for p in personas for g in PERSONAS.get(p).groups} | {"all"}
        for group in value:
            if group not in made:
                who = ", ".join(p for p in PERSONAS if group in PERSONAS.get(p).groups)
                raise ValueError(f"{group}: no persona of this profile sends {group} requests (add one of: {who})")
        return value

    def total_seconds(self) -> float:
        return sum(s.duration for s in self.stages) if self.stages else float(self.duration or 0)

    def peak_users(self) -> int:
        if self.stages:
            return max(s.users or 0 for s in self.stages)
        return int(self.users or 0)


def resolve(name: str) -> Path:
    """The file of profile ``name``: a path, or ``configs/loadtest/NAME.yaml``."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ConfigError(f"{path}: no such file")
        return path
    for folder in (PROFILE_DIR, BUILTIN_DIR):
        candidate = folder / f"{name}.yaml"
        if candidate.exists():
            return candidate
    known = sorted({p.stem for d in (PROFILE_DIR, BUILTIN_DIR) if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(f"no load profile {name!r} in {PROFILE_DIR}/: known profiles are {', '.join(known) or 'none'}")


def load_profile(name: str) -> tuple[Profile, Path]:
    path = resolve(name)
    profile, _ = load_model(path, Profile)
    return profile, path
