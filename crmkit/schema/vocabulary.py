"""The schema's vocabulary: allowed values and personal data, declared once on the models.

Every text column of a CRM entity says what it holds through its ``info`` (no DDL change):

* ``personal()``: personal or identifying data: validation reports hide it, the training
  mask must have a rule for it;
* ``enum(VALUES)``: one of a fixed set of values (validation, the API's request models and
  the training generator read the set from here); an enumeration is public;
* ``public()``: neither (industries, cities, codes...; also amounts, flags, probabilities):
  a masked copy keeps it as it is, and its re-identification test accepts a match on it;
* ``derived()``: computed from the row's original values or from the run that wrote it
  (``row_hash``, ``run_id``): a masked copy drops it, since it would link the copy back.

``tests/unit/test_vocabulary.py`` fails when a text column of a CRM table declares none of
them, so a new column cannot slip past masking unnoticed.  The value tuples below are the
only lists of allowed values in the code; the functions read the models' columns.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for annotations only
    from sqlalchemy import Column
    from sqlalchemy.sql.base import ReadOnlyColumnCollection

ROLES = ("admin", "manager", "sales", "service")
LEAD_STATUSES = ("new", "working", "qualified", "lost", "converted")
STAGES = ("prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost")
CLOSED_STAGES = ("closed_won", "closed_lost")
OPEN_STAGES = tuple(s for s in STAGES if s not in CLOSED_STAGES)
ACTIVITY_TYPES = ("call", "meeting", "email", "note", "task")
CASE_STATUSES = ("new", "open", "pending", "closed")
OPEN_CASE_STATUSES = tuple(s for s in CASE_STATUSES if s != "closed")
PRIORITIES = ("low", "medium", "high", "urgent")
#: an account's tier (the generator sets A, B, C from the segment; VIP by hand)
TIERS = ("A", "B", "C", "VIP")
#: what an API token may do: the CRM resources, or only read /metrics
TOKEN_SCOPES = ("api", "metrics")
#: crmkit_runs: what a run row records and how it ended (pipeline.result.RunStatus is the same list)
RUN_KINDS = ("run", "dry_run", "generate")
RUN_STATUSES = (
    "running",
    "succeeded",
    "rejects_over_threshold",
    "gates_failed",
    "failed",
    "interrupted",  # found dead by a later run (killed: its lock's process is gone)
    "abandoned",  # a resume started over (--resume --restart)
    "rolled_back",
)
#: crmkit_rejects.severity: a row that did not load (error), or loaded with a value left empty (warning)
SEVERITIES = ("error", "warning")


def personal() -> dict[str, Any]:
    """``info`` of a column that holds personal or identifying data."""
    return {"personal": True}


def public() -> dict[str, Any]:
    """``info`` of a text column that holds no personal data."""
    return {"public": True}


def derived() -> dict[str, Any]:
    """``info`` of a column computed from the row's original values or its writing run."""
    return {"derived": True}


def enum(values: tuple[str, ...]) -> dict[str, Any]:
    """``info`` of a column restricted to ``values`` (public: a code, not a person's data)."""
    return {"enum": values, "public": True}


def _columns(entity: str) -> ReadOnlyColumnCollection[str, Column[Any]]:
    from crmkit.schema.models import ENTITY_MODELS, table_of

    if entity not in ENTITY_MODELS:
        raise KeyError(f"unknown entity '{entity}' (entities: {', '.join(ENTITY_MODELS)})")
    return table_of(ENTITY_MODELS[entity]).columns


@cache
def personal_columns(entity: str) -> tuple[str, ...]:
    """Columns of ``entity`` that hold personal data, in model order."""
    return tuple(c.name for c in _columns(entity) if c.info.get("personal"))


@cache
def public_columns(entity: str) -> tuple[str, ...]:
    """Columns of ``entity`` declared free of personal data (enumerations included): a masked
    copy keeps them, the only columns on which it may be joined to its source."""
    return tuple(c.name for c in _columns(entity) if c.info.get("public"))


@cache
def derived_columns(entity: str) -> tuple[str, ...]:
    """Columns of ``entity`` derived from original values (a masked copy drops them)."""
    return tuple(c.name for c in _columns(entity) if c.info.get("derived"))


def enum_values(entity: str, column: str) -> tuple[str, ...] | None:
    """The values ``entity.column`` may take, or None when it is not an enumeration."""
    return _enums().get((entity, column))


def enums() -> dict[tuple[str, str], tuple[str, ...]]:
    """Every enumerated column of every CRM entity, parents first, with its values."""
    return dict(_enums())


@cache
def _enums() -> dict[tuple[str, str], tuple[str, ...]]:
    from crmkit.schema.models import ENTITY_MODELS, table_of

    return {
        (entity, c.name): c.info["enum"]
        for entity, model in ENTITY_MODELS.items()
        for c in table_of(model).columns
        if "enum" in c.info
    }


def personal_data() -> dict[str, tuple[str, ...]]:
    """Every CRM entity with personal data, with its personal columns."""
    from crmkit.schema.models import ENTITY_MODELS

    return {e: personal_columns(e) for e in ENTITY_MODELS if personal_columns(e)}
