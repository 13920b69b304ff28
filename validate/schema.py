"""The rules of each CRM entity, as one list of :class:`Rule` objects.

Rules come from three places, in this order:

1. the target model (:mod:`crmkit.schema.target`): required fields must be present,
   text must fit its column, and (for files and tables read as text) values must have the
   column's type;
2. the built-in business rules of :func:`_business` (email syntax, E.164 phones, ISO 3166
   countries, ISO 4217 currencies, dates in range, enumerations, amounts, cross-field
   rules, unique legacy keys per source);
3. the project's YAML (:mod:`validate.rules`): new checks, replaced checks (same name),
   severities changed or switched off.

Each rule is a polars expression that is True where a row is valid.  The same list drives
both engines: plain polars (:mod:`validate.engine`) and the pandera DataFrameModel built
from it (:mod:`validate.pandera_model`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from crmkit.schema.target import TargetField, entities
from crmkit.schema.vocabulary import enums, personal_columns
from crmkit.validate import checks as C
from crmkit.validate.rules import CheckSpec, EntityRules, ValidationRules, coerce_value

ROW, KEY, SOURCE = "__row", "__key", "__source"
KEY_FIELD = "legacy_key"  # how the legacy key is named in reasons and reports

PHONE_FIELDS = ("phone", "mobile")
EARLIEST_BIRTH_DATE = dt.date(1900, 1, 1)
TYPE_TEXT = {
    "integer": "is not a whole number",
    "decimal": "is not a number",
    "date": "is not a date (YYYY-MM-DD)",
    "datetime": "is not a date-time (YYYY-MM-DD HH:MM:SS)",
    "boolean": "is not a yes/no value",
    "string": "is not text",
}


def raw_col(field: str) -> str:
    """Where the text of a value that did not cast to the field's type is kept."""
    return f"__t_{field}"


def ref_col(field: str) -> str:
    """Where the migration keeps the legacy key a reference points at (migrate.fields)."""
    return f"__ref_{field}"


@dataclass(frozen=True)
class Rule:
    """One rule of one entity: ``valid`` is True where a row passes (null passes too)."""

    name: str
    entity: str
    field: str  # the field reasons and reports name
    kind: str
    severity: str  # error | warning
    valid: pl.Expr
    text: str  # what is wrong with a failing value: "is not an email address"
    value: str | None  # the column whose value a reason shows (None: no value shown)
    builtin: bool = True
    first_row_of: tuple[str, ...] = ()  # uniqueness: say where the value was first seen
    quick: pl.Expr | None = None  # a cheap condition under which a row surely passes (engine shortcut)

    @property
    def fails(self) -> pl.Expr:
        return ~self.valid.fill_null(True)

    @property
    def needs(self) -> set[str]:
        return set(self.valid.meta.root_names())

    def describe(self) -> dict[str, str]:
        return {
            "name": self.name,
            "field": self.field,
            "kind": self.kind,
            "severity": self.severity,
            "text": self.text,
            "origin": "built-in" if self.builtin else "project",
        }


# --- rules from the target model ----------------------------------------------------


def _model_rules(entity: str, cols: set[str]) -> list[Rule]:
    out: list[Rule] = []
    for tf in entities()[entity].fields.values():
        out += _field_rules(entity, tf, cols)
    return out


def _field_rules(entity: str, tf: TargetField, cols: set[str]) -> list[Rule]:
    f, out = tf.name, []
    if tf.required:
        present = pl.col(f).is_not_null()
        for other in (ref_col(f), raw_col(f)):  # a pending reference, or a value of the wrong type
            if other in cols:
                present = present | pl.col(other).is_not_null()
        out.append(Rule(f"{f}_required", entity, f, "required", "error", present, "value is missing", None))
    if tf.kind == "string" and tf.max_length:
        # no more bytes than the limit is surely no more characters: counting characters is 20x dearer
        out.append(
            Rule(
                f"{f}_max_length",
                entity,
                f,
                "max_length",
                "error",
                pl.col(f).str.len_chars() <= tf.max_length,
                f"is longer than {tf.max_length} characters",
                f,
                quick=pl.col(f).str.len_bytes() <= tf.max_length,
            )
        )
    if raw_col(f) in cols:
        out.append(
            Rule(f"{f}_type", entity, f, "type", "error", pl.col(raw_col(f)).is_null(), TYPE_TEXT[tf.kind], raw_col(f))
        )
    return out


# --- built-in business rules -------------------------------------------------------------


def _format_rule(entity: str, field: str, name: str, fmt: str) -> Rule:
    valid, text = C.format_valid(fmt, pl.col(field))
    return Rule(name, entity, field, "format", "error", valid, text, field)


def _formats(entity: str, fields: dict[str, TargetField]) -> list[Rule]:
    out = []
    for f in fields:
        if f == "email" or f.endswith("_email"):
            out.append(_format_rule(entity, f, "email_syntax" if f == "email" else f"{f}_syntax", "email"))
        elif f in PHONE_FIELDS:
            out.append(_format_rule(entity, f, f"{f}_e164", "e164"))
        elif f == "country":
            out.append(_format_rule(entity, f, "country_iso3166", "iso3166"))
        elif f == "currency":
            out.append(_format_rule(entity, f, "currency_iso4217", "iso4217"))
    return out


def _enums(entity: str) -> list[Rule]:
    out = []
    for (e, f), values in enums().items():
        if e == entity:
            out.append(
                Rule(
                    f"{f}_allowed",
                    entity,
                    f,
                    "allowed",
                    "error",
                    pl.col(f).is_in(values),
                    f"is not one of {', '.join(values)}",
                    f,
                )
            )
    return out


def _dates(entity: str, fields: dict[str, TargetField], today: dt.date) -> list[Rule]:
    out = []
    if "birth_date" in fields:
        out.append(
            Rule(
                "birth_date_not_future",
                entity,
                "birth_date",
                "range",
                "error",
                pl.col("birth_date") <= today,
                "is in the future",
                "birth_date",
            )
        )
        out.append(
            Rule(
                "birth_date_after_1900",
                entity,
                "birth_date",
                "range",
                "warning",
                pl.col("birth_date") >= EARLIEST_BIRTH_DATE,
                "is before 1900-01-01",
                "birth_date",
            )
        )
    if "created_at" in fields:
        out.append(
            Rule(
                "created_at_not_future",
                entity,
                "created_at",
                "range",
                "warning",
                pl.col("created_at") <= today,
                "is in the future",
                "created_at",
            )
        )
    if {"close_date", "created_at"} <= set(fields):
        out.append(
            Rule(
                "close_date_not_before_created",
                entity,
                "close_date",
                "cross_field",
                "error",
                pl.col("close_date") >= pl.col("created_at"),
                "is before created_at",
                "close_date",
            )
        )
    if {"closed_at", "opened_at"} <= set(fields):
        out.append(
            Rule(
                "closed_at_not_before_opened",
                entity,
                "closed_at",
                "cross_field",
                "error",
                pl.col("closed_at") >= pl.col("opened_at"),
                "is before opened_at",
                "closed_at",
            )
        )
    return out


def _amounts(entity: str, fields: dict[str, TargetField]) -> list[Rule]:
    out = []
    if "amount" in fields:
        out.append(
            Rule(
                "amount_non_negative",
                entity,
                "amount",
                "range",
                "error",
                pl.col("amount") >= 0,
                "is negative",
                "amount",
            )
        )
    if "probability" in fields:
        out.append(
            Rule(
                "probability_range",
                entity,
                "probability",
                "range",
                "error",
                pl.col("probability").is_between(0, 100),
                "is not between 0 and 100",
                "probability",
            )
        )
    return out


def _cross_field(entity: str, cols: set[str]) -> list[Rule]:
    out = []
    if entity == "contacts":
        ways = [c for c in ("email", "phone", "mobile") if c in cols]
        if ways:
            reach = pl.any_horizontal([pl.col(c).is_not_null() for c in ways])
            out.append(
                Rule(
                    "contact_reachable",
                    entity,
                    ways[0],
                    "cross_field",
                    "warning",
                    reach,
                    f"no {' and no '.join(ways)}: the contact cannot be reached",
                    None,
                )
            )
    if entity == "opportunities":
        out.append(
            Rule(
                "won_has_amount",
                entity,
                "amount",
                "cross_field",
                "error",
                (pl.col("stage") != "closed_won") | pl.col("amount").is_not_null(),
                "is missing on a won opportunity",
                None,
            )
        )
    if entity == "cases":
        out.append(
            Rule(
                "closed_case_has_closed_at",
                entity,
                "closed_at",
                "cross_field",
                "error",
                (pl.col("status") != "closed") | pl.col("closed_at").is_not_null(),
                "is missing on a closed case",
                None,
            )
        )
    return out


def first_seen(part: tuple[str, ...]) -> pl.Expr:
    """True where the values of ``part`` are seen for the first time, compared by 64-bit hash.

    Hashing makes a million-row check about twice as fast; a hash collision could only
    flag a row too many, and :func:`validate.engine.exact_unique` re-checks flagged rows
    on their real values, so the outcome is exact.
    """
    h = pl.col(part[0]).hash() if len(part) == 1 else pl.struct(list(part)).hash()
    return h.is_first_distinct()


def _unique_key(entity: str, cols: set[str]) -> Rule:
    part = (SOURCE, KEY) if SOURCE in cols else (KEY,)
    text = "appears more than once in its source" if len(part) > 1 else "appears more than once"
    return Rule(
        "legacy_key_unique",
        entity,
        KEY_FIELD,
        "unique",
        "error",
        pl.col(KEY).is_null() | first_seen(part),
        text,
        KEY,
        first_row_of=part,
    )


def _business(entity: str, cols: set[str], today: dt.date) -> list[Rule]:
    fields = entities()[entity].fields
    out = _formats(entity, fields) + _enums(entity) + _dates(entity, fields, today) + _amounts(entity, fields)
    return out + _cross_field(entity, cols) + [_unique_key(entity, cols)]


def _all_columns(entity: str) -> set[str]:
    return set(entities()[entity].fields) | {KEY}


def builtin_rule_names(entity: str) -> list[str]:
    """Every built-in rule an entity can have (with every column present, text input)."""
    cols = _all_columns(entity) | {raw_col(f.name) for f in entities()[entity].fields.values() if f.kind != "string"}
    rules = _model_rules(entity, cols) + _business(entity, cols, dt.date.today())
    return [r.name for r in rules]


# --- project rules from YAML ---------------------------------------------------------------


def _shown_list(values: list[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:8])
    return shown + (f" (and {len(values) - 8} more)" if len(values) > 8 else "")


def _bound(tf: TargetField, value: Any, today: dt.date) -> Any:
    v = coerce_value(tf, value, allow_today=True)
    if v == "today":
        return today if tf.kind == "date" else dt.datetime.combine(today, dt.time.max)
    return v


def _range(col: pl.Expr, lo: Any, hi: Any, shown: tuple[Any, Any]) -> tuple[pl.Expr, str]:
    """``shown``: the bounds as the YAML wrote them (``today`` stays ``today``)."""
    if lo is not None and hi is not None:
        return (col >= lo) & (col <= hi), f"is not between {shown[0]} and {shown[1]}"
    if lo is not None:
        return col >= lo, f"is less than {shown[0]}"
    return col <= hi, f"is more than {shown[1]}"


def _length(col: pl.Expr, lo: int | None, hi: int | None) -> tuple[pl.Expr, str]:
    n = col.str.len_chars()
    if lo is not None and hi is not None:
        return n.is_between(lo, hi), f"is not {lo} to {hi} characters long"
    if lo is not None:
        return n >= lo, f"is shorter than {lo} characters"
    return n <= hi, f"is longer than {hi} characters"


def project_rule(entity: str, spec: CheckSpec, today: dt.date) -> Rule:
    """The rule a YAML check describes."""
    tf = entities()[entity].fields[spec.field]
    col, kind = pl.col(spec.field), spec.kind
    value: str | None = spec.field
    first: tuple[str, ...] = ()
    if spec.regex is not None:
        valid, text = col.str.contains(spec.regex), f"does not match {spec.regex}"
    elif spec.range is not None:
        lo = None if spec.range.min is None else _bound(tf, spec.range.min, today)
        hi = None if spec.range.max is None else _bound(tf, spec.range.max, today)
        valid, text = _range(col, lo, hi, (spec.range.min, spec.range.max))
    elif spec.allowed is not None:
        values = [coerce_value(tf, v) for v in spec.allowed]
        valid, text = col.is_in(values), f"is not one of {_shown_list(values)}"
    elif spec.unique:
        valid, text, first = col.is_null() | first_seen((spec.field,)), "is not unique", (spec.field,)
    elif spec.not_null:
        valid, text, value = col.is_not_null(), "value is missing", None
    elif spec.length is not None:
        valid, text = _length(col, spec.length.min, spec.length.max)
    elif spec.format is not None:
        valid, text = C.format_valid(spec.format, col)
    else:
        assert spec.custom is not None
        check = C.CHECKS.get(spec.custom)
        fn, text = check.fn, check.message
        valid = fn(spec.field, spec.args)
    return Rule(
        spec.rule_name,
        entity,
        spec.field,
        spec.custom and "custom" or kind,
        spec.severity,
        valid,
        spec.message or text,
        value,
        builtin=False,
        first_row_of=first,
    )


# --- all rules of an entity --------------------------------------------------------------------


def entity_rules(
    entity: str, columns: list[str] | set[str], rules: ValidationRules | None, today: dt.date | None = None
) -> tuple[list[Rule], list[Rule]]:
    """The rules that apply to a frame with ``columns``, and those skipped for missing columns."""
    if entity not in entities():
        raise ValueError(f"unknown entity {entity}")
    cols, today = set(columns), today or dt.date.today()
    er = (rules.entities.get(entity) if rules else None) or EntityRules()
    found = _model_rules(entity, cols) + _business(entity, cols, today)
    overrides = {c.rule_name: project_rule(entity, c, today) for c in er.checks}
    merged: list[Rule] = []
    for r in found:
        sev = er.severity.get(r.name, r.severity)
        if r.name in overrides:
            merged.append(overrides.pop(r.name))
        elif sev != "off":
            merged.append(replace(r, severity=sev))
    merged += overrides.values()
    ready = [r for r in merged if r.needs <= cols]
    return ready, [r for r in merged if not r.needs <= cols]


def personal_fields(entity: str, rules: ValidationRules | None) -> set[str]:
    er = rules.entities.get(entity) if rules else None
    if er is not None and er.personal_data is not None:
        return set(er.personal_data)
    return set(personal_columns(entity))
