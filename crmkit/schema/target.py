"""What the mapping engine needs to know of the target schema, read off the models."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import polars as pl
from sqlalchemy import Boolean, Date, DateTime, Integer, Numeric, String
from sqlalchemy.sql.schema import Column, ScalarElementColumnDefault

from crmkit.schema.models import ENTITY_MODELS, PROVENANCE_COLUMNS, table_of


@dataclass(frozen=True)
class TargetField:
    """One column of a CRM entity that a mapping may fill."""

    name: str
    kind: str  # string | integer | decimal | date | datetime | boolean
    required: bool
    max_length: int | None = None
    references: str | None = None  # entity the foreign key points at
    default: object = None

    @property
    def dtype(self) -> pl.DataType:
        return _DTYPES[self.kind]


_DTYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "integer": pl.Int64(),
    "decimal": pl.Float64(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us"),
    "boolean": pl.Boolean(),
}


def _kind(col: Column[object]) -> str:
    t = col.type
    for cls, kind in (
        (Boolean, "boolean"),
        (DateTime, "datetime"),
        (Date, "date"),
        (Numeric, "decimal"),
        (Integer, "integer"),
        (String, "string"),
    ):
        if isinstance(t, cls):
            return kind
    raise TypeError(f"{col}: no kind for {t!r}")  # pragma: no cover - schema bug


def _field(col: Column[object]) -> TargetField:
    fk = next(iter(col.foreign_keys), None)
    default = col.default.arg if isinstance(col.default, ScalarElementColumnDefault) else None
    return TargetField(
        name=col.name,
        kind=_kind(col),
        required=not col.nullable and default is None,
        max_length=getattr(col.type, "length", None),
        references=fk.column.table.name if fk is not None else None,
        default=default,
    )


@dataclass(frozen=True)
class TargetEntity:
    name: str
    fields: dict[str, TargetField]

    def field(self, name: str) -> TargetField | None:
        """A field by column name, or by relation name (``owner`` for ``owner_id``)."""
        return self.fields.get(name) or self.fields.get(f"{name}_id")


@cache
def entities() -> dict[str, TargetEntity]:
    """Every CRM entity, parents first, with the fields a mapping may fill."""
    out = {}
    for name, model in ENTITY_MODELS.items():
        cols = table_of(model).columns
        fields = {c.name: _field(c) for c in cols if c.name not in PROVENANCE_COLUMNS}
        out[name] = TargetEntity(name, fields)
    return out
