"""Generate a coherent CRM world, column-wise, from a scenario and a seed.

Every column is built at once: numpy's ``Generator(PCG64)`` draws indices into the
locale's vocabulary (:mod:`training.vocab`) and polars assembles strings, dates and keys
(:mod:`training.columns`, entity by entity in :mod:`training.builder`).  Each entity has its
own random stream (seeded from the seed and the entity's name), so the same seed always
gives the same world, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from crmkit.training.builder import Builder
from crmkit.training.columns import EMAIL_NUMBERS
from crmkit.training.errors import ScenarioError
from crmkit.training.scenario import Scenario
from crmkit.training.vocab import Vocab, vocab


@dataclass
class World:
    """A generated world: one frame per CRM entity, in the target schema's columns."""

    scenario: Scenario
    seed: int
    tables: dict[str, pl.DataFrame]
    exercises: list[dict[str, Any]] = field(default_factory=list)

    @property
    def source_name(self) -> str:
        return f"training:{self.scenario.name}"[:100]

    def counts(self) -> dict[str, int]:
        return {t: f.height for t, f in self.tables.items()}


# --- capacity of unique fields ----------------------------------------------------------------


def company_space(v: Vocab) -> int:
    cities = v.cities.len() if v.locale == "zh_CN" else 1
    return v.company_space * cities


def capacity(field_name: str, v: Vocab) -> int:
    """How many distinct values the vocabulary can give ``entity.field``."""
    if field_name == "accounts.name":
        return company_space(v)
    if field_name.endswith(".email"):
        return v.person_space * EMAIL_NUMBERS
    return v.person_space


def _size(scenario: Scenario, entity: str) -> int:
    if entity == "users":
        return sum(d.users.total for d in scenario.departments)
    return sum(getattr(d, entity) for d in scenario.departments)


def check_capacity(scenario: Scenario, where: str) -> None:
    """Before anything is generated: every unique field can take enough distinct values."""
    v = vocab(scenario.locale, 0)
    for name in scenario.unique:
        entity = name.split(".")[0]
        n, cap = _size(scenario, entity), capacity(name, v)
        if n > cap:
            raise ScenarioError(
                f"{where}: unique: {name} cannot be unique for {n:,} {entity}: the {scenario.locale} vocabulary "
                f"forms at most {cap:,} distinct values (lower the count, or take {name} out of unique)"
            )


def generate(scenario: Scenario, seed: int, where: str = "scenario") -> World:
    """The world of ``scenario`` for ``seed``: same seed, same world."""
    check_capacity(scenario, where)
    tables = Builder(scenario, seed).build()
    world = World(scenario, seed, tables)
    from crmkit.training.exercises import plant

    plant(world)
    return world
