"""Training scenarios: the YAML that says what world to generate (docs/training-scenarios.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from crmkit.config import Strict, load_model
from crmkit.schema.vocabulary import STAGES
from crmkit.training.vocab import LOCALES

#: fields a scenario may ask to be unique (others are drawn freely)
UNIQUE_FIELDS = (
    "users.name",
    "users.email",
    "accounts.name",
    "contacts.full_name",
    "contacts.email",
    "leads.full_name",
    "leads.email",
)
EXERCISE_KINDS = ("largest_open_pipeline", "merge_duplicate_contact", "close_case")

Mix = dict[str, float]


def _check_mix(v: Mix, known: tuple[str, ...] | None = None) -> Mix:
    if not v:
        raise ValueError("give at least one value with its weight")
    for k, w in v.items():
        if known is not None and k not in known:
            raise ValueError(f"unknown value '{k}' (known: {', '.join(known)})")
        if w < 0:
            raise ValueError(f"weight of '{k}' is negative")
    if sum(v.values()) <= 0:
        raise ValueError("the weights add up to zero")
    return v


class Users(Strict):
    """How many users of each role a department has."""

    admin: int = Field(0, ge=0)
    manager: int = Field(1, ge=0)
    sales: int = Field(3, ge=0)
    service: int = Field(1, ge=0)

    @property
    def total(self) -> int:
        return self.admin + self.manager + self.sales + self.service


class Department(Strict):
    """One department and the size of its world."""

    code: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,50}$")
    name: str
    region: str | None = None
    users: Users = Users()
    accounts: int = Field(0, ge=0)
    contacts: int = Field(0, ge=0)
    leads: int = Field(0, ge=0)
    opportunities: int = Field(0, ge=0)
    activities: int = Field(0, ge=0)
    cases: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _parents_exist(self) -> Department:
        children = {"contacts": self.contacts, "opportunities": self.opportunities, "cases": self.cases}
        for what, n in children.items():
            if n and not self.accounts:
                raise ValueError(f"{self.code} has {what} but no accounts: set accounts: N")
        if self.activities and not (self.opportunities or self.contacts):
            raise ValueError(f"{self.code} has activities but neither opportunities nor contacts")
        if (self.accounts or self.leads or self.opportunities) and not (self.users.sales or self.users.manager):
            raise ValueError(f"{self.code} has customers but no sales users or managers: set users: {{sales: N}}")
        return self


class Dates(Strict):
    """The period the world covers; ``end`` is 'today' for open pipeline and cases."""

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Dates:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class TagSpec(Strict):
    name: str
    category: str | None = None


class Exercise(Strict):
    """A task whose answer the generator computes from the data it made."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,30}$")
    kind: Literal["largest_open_pipeline", "merge_duplicate_contact", "close_case"]
    department: str | None = None
    priority: Literal["low", "medium", "high", "urgent"] | None = None
    points: int = Field(1, ge=1)


class Rates(Strict):
    """Share of legacy rows that get each injected problem."""

    duplicates: float = Field(0.03, ge=0, le=0.5)
    swapped_names: float = Field(0.02, ge=0, le=0.5)
    mixed_dates: float = Field(0.2, ge=0, le=1)
    mixed_phones: float = Field(0.2, ge=0, le=1)
    missing_required: float = Field(0.01, ge=0, le=0.2)
    orphans: float = Field(0.01, ge=0, le=0.2)
    fullwidth: float = Field(0.03, ge=0, le=0.5)


class Legacy(Strict):
    """How ``crmkit training legacy`` exports the world."""

    headers: Literal["zh", "en"] | None = None  # default: zh for zh_CN, en otherwise
    rates: Rates = Rates()


class Scenario(Strict):
    """A whole scenario file."""

    version: Literal[1]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,60}$")
    description: str | None = None
    locale: Literal["en_US", "zh_CN", "de_DE"] = "en_US"
    organisation: str = "ACME"
    email_domain: str | None = None
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    dates: Dates
    departments: list[Department] = Field(min_length=1)
    industries: Mix = {"Software": 3, "Manufacturing": 2, "Retail": 2, "Healthcare": 1, "Finance": 1}
    segments: Mix = {"enterprise": 1, "mid_market": 3, "smb": 6}
    pipeline: Mix = {
        "prospecting": 25,
        "qualification": 20,
        "proposal": 15,
        "negotiation": 10,
        "closed_won": 18,
        "closed_lost": 12,
    }
    unique: list[str] = []
    tags: list[TagSpec] = [
        TagSpec(name="VIP", category="priority"),
        TagSpec(name="Newsletter", category="marketing"),
        TagSpec(name="Partner", category="relationship"),
        TagSpec(name="At risk", category="health"),
    ]
    exercises: list[Exercise] = []
    legacy: Legacy = Legacy()

    @field_validator("industries", "segments")
    @classmethod
    def _mix(cls, v: Mix) -> Mix:
        return _check_mix(v)

    @field_validator("pipeline")
    @classmethod
    def _stages(cls, v: Mix) -> Mix:
        return _check_mix(v, STAGES)

    @field_validator("unique")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        for f in v:
            if f not in UNIQUE_FIELDS:
                raise ValueError(f"'{f}' cannot be asked unique (fields: {', '.join(UNIQUE_FIELDS)})")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        codes = [d.code for d in self.departments]
        dup = {c for c in codes if codes.count(c) > 1}
        if dup:
            raise ValueError(f"department code(s) used twice: {', '.join(sorted(dup))}")
        ids = [e.id for e in self.exercises]
        if len(set(ids)) != len(ids):
            raise ValueError("exercise ids must be distinct")
        for e in self.exercises:
            if e.department is not None and e.department not in codes:
                raise ValueError(
                    f"exercise {e.id}: unknown department '{e.department}' (departments: {', '.join(codes)})"
                )
        return self

    @property
    def currency_code(self) -> str:
        from crmkit.training.vocab import CURRENCY

        return self.currency or CURRENCY[self.locale]

    @property
    def headers(self) -> str:
        return self.legacy.headers or ("zh" if self.locale == "zh_CN" else "en")

    @property
    def domain(self) -> str:
        from crmkit.training.vocab import TLD, ascii_slug

        return self.email_domain or f"{ascii_slug(self.organisation, self.locale) or 'acme'}.{TLD[self.locale]}"

    def only(self, department: str) -> Scenario:
        """The same scenario with one department (its exercises too)."""
        codes = [d.code for d in self.departments]
        if department not in codes:
            from crmkit.training.errors import ScenarioError

            raise ScenarioError(f"scenario {self.name}: no department '{department}' (departments: {', '.join(codes)})")
        deps = [d for d in self.departments if d.code == department]
        exercises = [e for e in self.exercises if e.department in (None, department)]
        return self.model_copy(update={"departments": deps, "exercises": exercises})


assert set(LOCALES) == {"en_US", "zh_CN", "de_DE"}


def load_scenario(path: str | Path) -> tuple[Scenario, str]:
    """The scenario in ``path`` and the sha256 of its bytes (errors name file and line)."""
    scenario, _ = load_model(path, Scenario)
    return scenario, hashlib.sha256(Path(path).read_bytes()).hexdigest()
