"""Who may see and change what: roles, department scopes, and the errors the API answers with.

Four roles.  ``admin`` sees and changes everything.  ``manager`` and ``sales`` see only the
records of their own department (a record's department is its own ``department_id``, else
that of its account; see :mod:`api.queries`); managers may change every kind of record of
their department, sales reps everything but cases.  ``service`` agents serve every customer:
they read all accounts and contacts, work all cases and log activities, but see no
opportunities and no pipeline.  The scope is applied inside the SQL of every query, never
by filtering rows after fetching them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["all", "department"]
RESOURCES = ("accounts", "contacts", "opportunities", "cases", "activities")

_DEPT: dict[str, Scope] = {r: "department" for r in RESOURCES}
_ALL: dict[str, Scope] = {r: "all" for r in RESOURCES}

#: read scope of each role on each resource; a resource missing from a role's map is forbidden
READ: dict[str, dict[str, Scope]] = {
    "admin": _ALL,
    "manager": _DEPT,
    "sales": _DEPT,
    "service": {"accounts": "all", "contacts": "all", "cases": "all", "activities": "all"},
}
#: resources each role may create and update (always within its read scope)
WRITE: dict[str, frozenset[str]] = {
    "admin": frozenset(RESOURCES),
    "manager": frozenset(RESOURCES),
    "sales": frozenset({"accounts", "contacts", "opportunities", "activities"}),
    "service": frozenset({"contacts", "cases", "activities"}),
}
#: scope of the pipeline report per role (missing: forbidden)
REPORT: dict[str, Scope] = {"admin": "all", "manager": "department", "sales": "department"}


class ApiError(Exception):
    """An error the API answers with an HTTP status and a one-line ``detail``."""

    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field


class Unauthorized(ApiError):
    """No token, or a token that is unknown, revoked, expired, or whose user is inactive."""

    status = 401


class Forbidden(ApiError):
    """The caller's role may not do this at all."""

    status = 403


class NotFound(ApiError):
    """No such record, or not one the caller may see (the API does not tell the two apart)."""

    status = 404


class Invalid(ApiError):
    """The request is well-formed but cannot be applied (a reference the caller cannot see...)."""

    status = 422


class TooManyAttempts(ApiError):
    """Too many failed authentications from this client address: wait ``retry_after`` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ApiError):
    """The database is busy or unreachable; the client may retry."""

    status = 503


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    name: str
    email: str | None
    role: str
    department_id: int | None
    #: the token the caller authenticated with, and what it may do (``api`` or ``metrics``)
    token_id: int | None = None
    scope: str = "api"
    #: the client's address (set per request; audited with every write)
    client: str | None = None

    def read_scope(self, resource: str) -> Scope:
        scope = READ.get(self.role, {}).get(resource)
        if scope is None:
            raise Forbidden(f"role {self.role} may not access {resource}")
        return scope

    def write_scope(self, resource: str) -> Scope:
        scope = self.read_scope(resource)
        if resource not in WRITE.get(self.role, frozenset()):
            raise Forbidden(f"role {self.role} may not change {resource}")
        return scope

    def report_scope(self) -> Scope:
        scope = REPORT.get(self.role)
        if scope is None:
            raise Forbidden(f"role {self.role} may not see the pipeline report")
        return scope
