"""Endpoint groups, personas and threshold metrics: the vocabulary profiles are checked against.

Every request the personas send is named ``"<group> <what>"``; the group is the first word.
``all`` is every request together.
"""

from __future__ import annotations

from dataclasses import dataclass

from crmkit.registry import Registry

#: endpoint groups a threshold may name
GROUPS = ("search", "read", "write", "report", "all")


@dataclass(frozen=True)
class PersonaKind:
    """A persona (a Locust user class of ``locustfile.py``): the CRM role it acts as and the groups it sends."""

    role: str
    groups: tuple[str, ...]


#: the personas a profile may name
PERSONAS: Registry[PersonaKind] = Registry("persona")
PERSONAS.add(
    "sales",
    PersonaKind("sales", ("search", "read", "write")),
    summary="acts as `sales`: `search` accounts and contacts; `read` an account with its contacts and "
    "opportunities; `write`: move an opportunity's stage, change an account's tier, log a call",
)
PERSONAS.add(
    "service",
    PersonaKind("service", ("search", "read", "write")),
    summary="acts as `service`: `search` contacts by phone or e-mail; `read` the open-case queue and a case; "
    "`write`: move a case along new → open → pending → closed (and reopen it), log a note",
)
PERSONAS.add(
    "manager",
    PersonaKind("manager", ("search", "read", "report")),
    summary="acts as `manager`: `report` the pipeline; `read` deals in negotiation and accounts; `search` accounts",
)
#: threshold metrics: name -> (unit, kind) where kind "max" is a ceiling and "min" a floor
METRICS: dict[str, tuple[str, str]] = {
    "p50": ("ms", "max"),
    "p95": ("ms", "max"),
    "p99": ("ms", "max"),
    "error_rate": ("%", "max"),
    "min_rps": ("req/s", "min"),
}


def group_of(request_name: str) -> str:
    """The endpoint group of a request name such as ``"search /accounts?q"``."""
    return request_name.split(" ", 1)[0]
