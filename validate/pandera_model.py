"""pandera DataFrameModels (polars backend) of the CRM entities, built from the same rules.

:func:`entity_model` writes, for an entity, the class one would write by hand::

    class ContactsModel(pa.DataFrameModel):
        full_name: Optional[pl.String] = pa.Field(nullable=False)   # required in the target model
        email: Optional[pl.String] = pa.Field(nullable=True)
        ...
        @pa.check("email", name="email_syntax")
        def email_syntax(cls, data: pa.PolarsData) -> pl.LazyFrame: ...

Dtypes and nullability come from the target model, every other rule becomes a named column
check (on the field it reports).  Fields are ``Optional`` (a feed need not map them all).
:func:`failure_masks` validates with ``lazy=True`` and turns pandera's failure cases back
into one Boolean column per rule, for :class:`validate.engine.Evaluation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import pandera.polars as pa
import polars as pl

from crmkit.schema.target import entities
from crmkit.validate.schema import Rule

_NULLABLE = "not_nullable"


def _attr(column: str) -> str:
    """A Python attribute name for a column (``__key`` becomes ``col___key``)."""
    return column if column.isidentifier() and not column.startswith("_") else f"col_{column}"


def _check_fn(rule: Rule) -> Callable[..., pl.LazyFrame]:
    valid = rule.valid.fill_null(True)

    def fn(cls: Any, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(valid)

    fn.__name__ = f"check_{rule.name}"
    return fn


def _attach_to(rule: Rule) -> str:
    """The column a rule's failure cases are reported on: the shown value, else the field."""
    return rule.value or rule.field


def _plain_required(rule: Rule) -> bool:
    return rule.kind == "required" and rule.needs == {rule.field}


def entity_model(
    entity: str, rules: list[Rule], schema: dict[str, pl.DataType] | None = None
) -> type[pa.DataFrameModel]:
    """The DataFrameModel of ``entity`` holding ``rules`` (``schema``: dtypes of helper columns)."""
    fields = entities()[entity].fields
    plain_required = {r.field for r in rules if _plain_required(r)}
    notes: dict[str, Any] = {}
    ns: dict[str, Any] = {"__module__": __name__}
    for name, tf in fields.items():
        notes[name] = Optional[tf.dtype.__class__]  # noqa: UP045 - pandera reads typing.Optional
        ns[name] = pa.Field(nullable=name not in plain_required)
    for col in sorted({_attach_to(r) for r in rules} - set(fields)):
        attr = _attr(col)
        notes[attr] = Optional[(schema or {}).get(col, pl.String()).__class__]  # noqa: UP045
        ns[attr] = pa.Field(nullable=True, alias=col) if attr != col else pa.Field(nullable=True)
    for r in rules:
        if not _plain_required(r):
            ns[f"rule_{r.name}"] = pa.check(_attach_to(r), name=r.name)(classmethod(_check_fn(r)))
    ns["__annotations__"] = notes
    ns["Config"] = type("Config", (), {"strict": False, "coerce": False, "name": entity})
    model = type(f"{entity.title().replace('_', '')}Model", (pa.DataFrameModel,), ns)
    return model


def failure_masks(entity: str, frame: pl.DataFrame, rules: list[Rule]) -> pl.DataFrame:
    """One Boolean column ``__m_<rule>`` per rule, from pandera's lazy validation."""
    if not rules:
        return pl.DataFrame()
    model = entity_model(entity, rules, dict(frame.schema))
    try:
        model.validate(frame, lazy=True)
        cases = None
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    by_rule = _failing_rows(cases, rules)
    n = frame.height
    cols = []
    for r in rules:
        idx = by_rule.get(r.name)
        mask = pl.Series(f"__m_{r.name}", [False], dtype=pl.Boolean).new_from_index(0, n)
        if idx is not None and len(idx):
            mask = mask.scatter(idx, True)
        cols.append(mask)
    return pl.DataFrame(cols)


def _failing_rows(cases: pl.DataFrame | None, rules: list[Rule]) -> dict[str, pl.Series]:
    if cases is None or cases.height == 0:
        return {}
    schema_level = cases.filter(pl.col("index").is_null())
    if schema_level.height:
        first = schema_level.row(0, named=True)
        raise TypeError(f"pandera: column {first['column']} failed {first['check']} ({first['failure_case']})")
    named = {r.name for r in rules}
    required = {r.field: r.name for r in rules if _plain_required(r)}
    cases = cases.with_columns(
        pl.when(pl.col("check") == _NULLABLE)
        .then(pl.col("column").replace_strict(required, default=None))
        .otherwise(pl.col("check"))
        .alias("rule")
    )
    out = {}
    for (rule,), part in cases.filter(pl.col("rule").is_in(named)).group_by("rule"):
        out[str(rule)] = part["index"].cast(pl.UInt32).unique()
    return out
