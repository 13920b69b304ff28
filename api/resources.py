"""The API's resources and their request/response models, derived from the target schema.

Every request model is generated from the SQLAlchemy table, so its limits are the
database's: string lengths, integer ranges, ``Numeric(18, 2)``, the vocabularies of stage,
status, priority and activity type.  Whatever passes validation can be stored on SQLite and
on PostgreSQL alike (no NUL characters, no lone surrogates, no out-of-range ids), so bad
input is a 422 and never a 500.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal, Optional

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    create_model,
)
from pydantic import (
    Strict as StrictValue,
)
from sqlalchemy import Boolean, Column, Date, DateTime, Integer, Numeric, String, Table, Text

from crmkit.schema.models import Account, Activity, Case, Contact, Opportunity, User
from crmkit.schema.vocabulary import enum_values

MAX_ID = 2**31 - 1
MAX_TEXT = 20_000
NO_NUL = r"^[^\x00]*$"


#: columns a client never writes: identity, migration provenance, and what the server sets (created_at)
READ_ONLY = frozenset({"id", "source_name", "legacy_key", "row_hash", "run_id", "image_hash", "created_at"})
#: columns not shown in responses
HIDDEN = frozenset({"row_hash", "run_id", "image_hash"})
#: per-resource defaults for NOT NULL columns a client may leave out on create
DEFAULTS: dict[str, dict[str, Any]] = {
    "accounts": {"active": True},
    "contacts": {"active": True},
    "cases": {"status": "new", "priority": "medium"},
}


def _unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValueError("datetime out of range") from None


def _iso_text(value: Any) -> Any:
    """Dates and times come as ISO 8601 text (pydantic would read a number as seconds since 1970)."""
    if isinstance(value, (int, float, bool)):
        raise ValueError("must be an ISO 8601 date or date-time string, e.g. 2026-03-31")
    return value


def text_type(max_length: int) -> Any:
    """A string the database can store: bounded, no NUL, valid Unicode."""
    return Annotated[str, StringConstraints(max_length=max_length, pattern=NO_NUL), AfterValidator(_unicode)]


def _python_type(resource: str, col: Column[Any]) -> Any:
    vocab = enum_values(resource, col.name)
    if vocab:
        return Literal[vocab]  # type: ignore[valid-type]
    t = col.type
    if isinstance(t, String) and t.length:
        return text_type(t.length)
    if isinstance(t, (Text, String)):
        return text_type(MAX_TEXT)
    if isinstance(t, Boolean):
        return StrictBool  # 0 and 1 are numbers, not answers: a schema-violating body is 422
    if isinstance(t, DateTime):  # an ISO 8601 string, not a number of seconds
        return Annotated[dt.datetime, BeforeValidator(_iso_text), AfterValidator(_naive_utc)]
    if isinstance(t, Date):
        return Annotated[dt.date, BeforeValidator(_iso_text)]
    if isinstance(t, Numeric):
        digits, scale = t.precision or 18, t.scale or 2
        return Annotated[Decimal, Field(max_digits=digits, decimal_places=scale, allow_inf_nan=False)]
    if isinstance(t, Integer):
        if col.foreign_keys:  # strict: true is not 1, nor 1.0 an id
            return Annotated[int, StrictValue(), Field(ge=1, le=MAX_ID)]
        if col.name == "probability":
            return Annotated[int, StrictValue(), Field(ge=0, le=100)]
        return Annotated[int, StrictValue(), Field(ge=-MAX_ID, le=MAX_ID)]
    raise TypeError(f"no API type for {resource}.{col.name} ({t!r})")  # a schema change needs a mapping here


#: timestamps are stored without a time zone and returned as stored: ISO 8601 without an offset
OutDateTime = Annotated[
    dt.datetime,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$",
            "description": "Date and time as stored, without a time zone offset (ISO 8601).",
        }
    ),
]


def _out_type(col: Column[Any]) -> Any:
    t = col.type
    if isinstance(t, (String, Text)):
        return str
    if isinstance(t, Boolean):
        return bool
    if isinstance(t, DateTime):
        return OutDateTime
    if isinstance(t, Date):
        return dt.date
    if isinstance(t, Numeric):
        return Decimal
    return int


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _models(resource: str, singular: str, table: Table) -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
    out: dict[str, Any] = {}
    create: dict[str, Any] = {}
    update: dict[str, Any] = {}
    defaults = DEFAULTS.get(resource, {})
    columns = sorted(table.columns, key=lambda c: (c.name != "id", c.name in READ_ONLY))  # id first, provenance last
    for col in columns:
        if col.name not in HIDDEN:
            out[col.name] = (_out_type(col), ...) if col.name == "id" else (Optional[_out_type(col)], None)  # noqa: UP045
        if col.name in READ_ONLY:
            continue
        typ = _python_type(resource, col)
        required = not col.nullable and col.name not in defaults
        create[col.name] = (typ, ...) if required else (Optional[typ] if col.nullable else typ, defaults.get(col.name))  # noqa: UP045
        # an update may leave a field out, but may set to null only what the database allows
        update[col.name] = (Optional[typ], None) if col.nullable else (typ, None)  # noqa: UP045
    return (
        create_model(singular, **out),
        create_model(f"{singular}Create", __base__=Strict, **create),
        create_model(f"{singular}Update", __base__=Strict, **update),
    )


@dataclass(frozen=True)
class Resource:
    """One CRM entity served by the API."""

    name: str
    table: Table
    out: type[BaseModel]
    create: type[BaseModel]
    update: type[BaseModel]
    #: text columns a ``q`` search looks in (case-insensitive substring)
    search: tuple[str, ...] = ()
    #: phone columns a digits-only ``q`` also looks in
    phones: tuple[str, ...] = ()
    #: foreign keys through which a record inherits its department when it has none itself
    department_via: tuple[str, ...] = ()
    #: column -> resource it references (checked against the caller's scope on writes)
    refs: dict[str, str] = field(default_factory=dict)
    #: references whose record must belong to this record's account (when both are set)
    same_account: tuple[str, ...] = ()

    @property
    def singular(self) -> str:
        """``case``, ``opportunity``...: the name of one record, for messages."""
        return self.out.__name__.lower()

    @property
    def has_department(self) -> bool:
        return "department_id" in self.table.columns


def _resource(name: str, singular: str, model: Any, **kw: Any) -> Resource:
    table = model.__table__
    out, create, update = _models(name, singular, table)
    return Resource(name, table, out, create, update, **kw)


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        _resource(
            "accounts", "Account", Account, search=("name", "email"), phones=("phone",), refs={"owner_id": "users"}
        ),
        _resource(
            "contacts",
            "Contact",
            Contact,
            search=("full_name", "email"),
            phones=("phone", "mobile"),
            department_via=("account_id",),
            refs={"account_id": "accounts", "owner_id": "users"},
        ),
        _resource(
            "opportunities",
            "Opportunity",
            Opportunity,
            search=("name",),
            department_via=("account_id",),
            refs={"account_id": "accounts", "owner_id": "users"},
        ),
        _resource(
            "cases",
            "Case",
            Case,
            search=("subject",),
            department_via=("account_id",),
            refs={"account_id": "accounts", "contact_id": "contacts", "owner_id": "users"},
            same_account=("contact_id",),
        ),
        _resource(
            "activities",
            "Activity",
            Activity,
            search=("subject",),
            department_via=("account_id", "opportunity_id", "owner_id"),
            refs={
                "account_id": "accounts",
                "contact_id": "contacts",
                "opportunity_id": "opportunities",
                "owner_id": "users",
            },
            same_account=("contact_id", "opportunity_id"),
        ),
    )
}
USERS: Table = User.__table__  # type: ignore[assignment]
