"""The pandera DataFrameModels, and the two engines agreeing on every entity's rules."""

from __future__ import annotations

import datetime as dt
import itertools

import pandera.polars as pa
import polars as pl
import pytest

from crmkit.schema.target import entities
from crmkit.validate.engine import evaluate
from crmkit.validate.pandera_model import entity_model
from crmkit.validate.rules import ValidationRules
from crmkit.validate.schema import entity_rules

POOLS = {
    "string": [
        "ok",
        None,
        "x" * 400,
        "ann@example.com",
        "bad@",
        "+8613812345678",
        "123",
        "CN",
        "XX",
        "CNY",
        "RMB",
        "closed",
        "closed_won",
        "open",
        "high",
        "call",
        "fax",
        "new",
        "sales",
        "boss",
        "proposal",
    ],
    "integer": [1, None, -5, 50, 150],
    "decimal": [10.5, None, -1.0, 0.0],
    "date": [dt.date(1980, 1, 1), None, dt.date(2999, 1, 1), dt.date(1850, 1, 1), dt.date(2024, 1, 1)],
    "datetime": [dt.datetime(2024, 1, 2, 3, 4), None, dt.datetime(2023, 1, 1), dt.datetime(2999, 1, 1)],
    "boolean": [True, None, False],
}


def dirty(entity: str, n: int = 240) -> pl.DataFrame:
    """Every field filled from a pool of good, bad and missing values, deterministically mixed."""
    data: dict[str, pl.Series] = {
        "__row": pl.Series(range(2, n + 2)),
        "__key": pl.Series([f"K{i % 200}" if i % 17 else None for i in range(n)]),
    }
    for j, (name, tf) in enumerate(entities()[entity].fields.items()):
        pool = POOLS[tf.kind]
        values = list(itertools.islice(itertools.cycle(pool), j, j + n * 7, 7))[:n]
        data[name] = pl.Series(name, values, dtype=tf.dtype)
    return pl.DataFrame(data)


@pytest.mark.parametrize("entity", list(entities()))
def test_pandera_and_polars_engines_agree(entity):
    frame = dirty(entity)
    rules = ValidationRules.model_validate(
        {
            "entities": {
                entity: {
                    "checks": [
                        {"field": next(iter(entities()[entity].fields)), "not_null": True, "severity": "warning"}
                    ]
                }
            }
        }
    )
    fast = evaluate(entity, frame, rules, engine="polars")
    slow = evaluate(entity, frame, rules, engine="pandera")
    assert [r.name for r in fast.rules] == [r.name for r in slow.rules]
    assert fast.masks.equals(slow.masks)
    assert sum(fast.counts().values()) > 0, "the dirty frame must break some rules"
    assert fast.reasons("error").equals(slow.reasons("error"))


def test_the_model_is_a_pandera_model_from_the_target_types_and_nullability():
    good = pl.DataFrame(
        {"__key": ["K1"], "full_name": ["Ann"], "email": ["ann@example.com"], "birth_date": [dt.date(1980, 1, 1)]}
    )
    rules, _ = entity_rules("contacts", good.columns, None)
    model = entity_model("contacts", rules)
    assert issubclass(model, pa.DataFrameModel)
    schema = model.to_schema()
    assert schema.columns["full_name"].nullable is False  # required in the target model
    assert schema.columns["email"].nullable is True
    assert str(schema.columns["birth_date"].dtype) == "Date"
    assert {c.name for c in schema.columns["email"].checks} == {"email_max_length", "email_syntax", "contact_reachable"}
    assert {c.name for c in schema.columns["__key"].checks} == {"legacy_key_unique"}
    assert "phone" in schema.columns and not schema.columns["phone"].required  # a feed need not map it
    model.validate(good)  # no exception
    with pytest.raises(pa.errors.SchemaErrors) as err:
        model.validate(
            good.with_columns(pl.lit("ann@").alias("email"), pl.lit(None, pl.String).alias("full_name")), lazy=True
        )
    assert set(err.value.failure_cases["check"]) == {"email_syntax", "not_nullable"}


def test_the_pandera_engine_refuses_a_mistyped_frame():
    frame = pl.DataFrame({"__row": [1], "full_name": ["Ann"], "birth_date": ["1980-01-01"]})
    with pytest.raises(TypeError, match="birth_date"):
        evaluate("contacts", frame, None, engine="pandera")
