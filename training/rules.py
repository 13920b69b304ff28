"""Masking rules (docs/training-masking.md): per table and column, how each value is masked.

Every column the schema flags personal (:mod:`crmkit.schema.vocabulary`) and every date
column must have a rule (``keep`` to copy it as it is, deliberately), so a new column is
never copied unmasked by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from crmkit.config import Strict, expand_env, load_model
from crmkit.errors import ConfigError
from crmkit.schema.target import entities
from crmkit.schema.vocabulary import personal_data

SALT_ENV = "CRMKIT_MASK_SALT"
Kind = Literal[
    "first_name",
    "last_name",
    "full_name",
    "company",
    "address",
    "email",
    "phone",
    "shift_date",
    "text",
    "scrub",
    "clear",
    "keep",
]
STRING_KINDS = {"first_name", "last_name", "full_name", "company", "address", "email", "phone", "text", "scrub"}
NAME_KINDS = {"first_name", "last_name", "full_name"}


class Subset(Strict):
    """Keep one department and/or a sample of accounts (a share 0-1, or a count)."""

    department: str | None = None
    accounts: float | None = Field(None, gt=0)


class Rules(Strict):
    version: Literal[1]
    salt: SecretStr
    max_shift_days: int = Field(180, ge=1, le=3650)
    columns: dict[str, dict[str, Kind]]
    persons: Any = None  # replaced by account clusters: refused below with how to fix it
    subset: Subset | None = None

    @field_validator("salt", mode="before")
    @classmethod
    def _from_env(cls, v: Any) -> SecretStr:
        text = str(v)
        if "${" not in text:
            raise ValueError(f'the salt must come from the environment: write salt: "${{{SALT_ENV}}}"')
        try:
            value = expand_env(text, "salt")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("salt: ")) from None
        if len(value) < 8:
            raise ValueError("the salt is shorter than 8 characters: use a long random secret")
        return SecretStr(value)

    @field_validator("persons")
    @classmethod
    def _no_persons(cls, v: Any) -> None:
        if v is not None:
            raise ValueError(
                "dates now move together per account (its contacts, opportunities, cases and "
                "activities): remove `persons:` (docs/training-masking.md)"
            )

    @model_validator(mode="after")
    def _known(self) -> Rules:
        targets = entities()
        for table, cols in self.columns.items():
            if table not in targets:
                raise ValueError(f"columns: unknown table '{table}' (tables: {', '.join(targets)})")
            for col, kind in cols.items():
                f = targets[table].fields.get(col)
                if f is None:
                    raise ValueError(
                        f"columns.{table}: unknown column '{col}' (columns: {', '.join(targets[table].fields)})"
                    )
                if kind == "shift_date" and f.kind not in ("date", "datetime"):
                    raise ValueError(f"columns.{table}.{col}: shift_date needs a date column, {col} is {f.kind}")
                if kind in STRING_KINDS and f.kind != "string":
                    raise ValueError(f"columns.{table}.{col}: {kind} needs a text column, {col} is {f.kind}")
        for table, personal in personal_data().items():
            for col in personal:
                if col not in self.columns.get(table, {}):
                    raise ValueError(
                        f"{table}.{col} holds personal data and has no rule: add it under "
                        f"columns.{table} (or `{col}: keep` to copy it deliberately)"
                    )
        for table, entity in targets.items():
            for col, f in entity.fields.items():
                if f.kind in ("date", "datetime") and col not in self.columns.get(table, {}):
                    raise ValueError(
                        f"{table}.{col} is a date and has no rule: unshifted dates link the copy to its "
                        f"source; add `{col}: shift_date` under columns.{table} (or `{col}: keep`)"
                    )
        return self


def load_rules(path: Path) -> Rules:
    return load_model(path, Rules)[0]
