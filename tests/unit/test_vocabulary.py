"""The schema is the one source of allowed values and of personal data (crmkit.schema.vocabulary).

Every text column of a CRM table says whether it holds personal data; the training mask, the
validation rules, the API's request models and the training generator read the schema's
lists instead of keeping their own.
"""

from __future__ import annotations

import typing
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Date, DateTime, String, Text

from crmkit.schema import vocabulary as V
from crmkit.schema.models import ENTITY_MODELS, Base

ROOT = Path(__file__).resolve().parents[2]
CRM_TABLES = [t for t in Base.metadata.sorted_tables if not t.name.startswith("crmkit_")]


def test_the_crm_tables_are_the_entities():
    assert {t.name for t in CRM_TABLES} == set(ENTITY_MODELS)


@pytest.mark.parametrize("table", CRM_TABLES, ids=lambda t: t.name)
def test_every_text_column_is_personal_or_public(table):
    for col in table.columns:
        personal, public = bool(col.info.get("personal")), bool(col.info.get("public"))
        assert not (personal and public), f"{table.name}.{col.name}: flagged both personal and public"
        if isinstance(col.type, (String, Text)):
            assert personal or public, (
                f"{table.name}.{col.name} is text but says nothing of personal data: "
                "add info=personal() or info=public() (or enum(...)) in crmkit/schema/models.py"
            )


@pytest.mark.parametrize("table", CRM_TABLES, ids=lambda t: t.name)
def test_every_column_says_how_a_masked_copy_treats_it(table):
    """Keys are renumbered, dates shifted (the mask's rules must cover them); every other
    column is personal (masked), public (kept: the re-identification test accepts a match on
    it) or derived (dropped)."""
    for col in table.columns:
        flags = [f for f in ("personal", "public", "derived") if col.info.get(f)]
        assert len(flags) <= 1, f"{table.name}.{col.name}: flagged {' and '.join(flags)}"
        if col.primary_key or col.foreign_keys or isinstance(col.type, (Date, DateTime)):
            continue
        assert flags, (
            f"{table.name}.{col.name} says nothing of what a masked copy does with it: add info=personal(), "
            "public() or derived() in crmkit/schema/models.py"
        )
    assert V.derived_columns(table.name) == ("row_hash", "run_id", "image_hash")


def test_enumerations_fit_their_columns():
    for (entity, column), values in V.enums().items():
        col = ENTITY_MODELS[entity].__table__.columns[column]
        assert values and len(set(values)) == len(values), f"{entity}.{column}: empty or repeated values"
        assert max(map(len, values)) <= col.type.length, f"{entity}.{column}: a value is longer than the column"
        assert V.enum_values(entity, column) == values
        assert column in V.public_columns(entity)
    assert V.enum_values("accounts", "name") is None


def test_the_vocabulary_functions():
    assert V.personal_columns("accounts") == ("name", "website", "phone", "email", "address")
    assert "birth_date" in V.personal_columns("contacts")
    assert V.personal_columns("departments") == ()
    assert "legacy_key" in V.public_columns("tags")
    assert V.enums()[("cases", "priority")] == V.PRIORITIES
    V.enums().clear()  # a copy: the schema's own map is not touched
    assert V.enum_values("cases", "priority") == V.PRIORITIES
    assert set(V.OPEN_STAGES) | set(V.CLOSED_STAGES) == set(V.STAGES)
    with pytest.raises(KeyError, match="unknown entity 'nope'"):
        V.personal_columns("nope")


# --- the readers ------------------------------------------------------------------------------


def test_validation_treats_the_schemas_personal_columns_as_personal():
    from crmkit.validate.schema import personal_fields

    for entity in ENTITY_MODELS:
        assert personal_fields(entity, None) == set(V.personal_columns(entity))
    # the lists used to disagree: validation did not hide accounts' phone and e-mail
    assert {"phone", "email"} <= personal_fields("accounts", None)


def test_validations_enum_rules_equal_the_schemas():
    from crmkit.validate.schema import entity_rules

    found = {}
    for entity in ENTITY_MODELS:
        cols = list(ENTITY_MODELS[entity].__table__.columns.keys()) + ["__key"]
        ready, _ = entity_rules(entity, cols, None)
        for rule in (r for r in ready if r.kind == "allowed"):
            values = V.enum_values(entity, rule.field)
            assert values is not None, f"{entity}.{rule.field}: an enum rule the schema does not declare"
            frame = pl.DataFrame({rule.field: [*values, "no-such-value"]})
            assert frame.select(rule.valid).to_series().to_list() == [True] * len(values) + [False]
            found[(entity, rule.field)] = values
    assert found == V.enums()


def test_the_mask_needs_a_rule_for_every_personal_column(monkeypatch, tmp_path):
    from crmkit.errors import ConfigError
    from crmkit.training.mask import load_rules

    monkeypatch.setenv("CRMKIT_MASK_SALT", "a-long-test-salt-0001")
    shipped = ROOT / "configs" / "training" / "mask.yaml"
    rules = load_rules(shipped)
    for entity, cols in V.personal_data().items():
        for col in cols:
            assert col in rules.columns.get(entity, {}), f"{shipped.name}: no rule for {entity}.{col}"
    text = shipped.read_text(encoding="utf-8").replace("website: clear", "industry: keep")
    short = tmp_path / "mask.yaml"
    short.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"accounts\.website holds personal data and has no rule"):
        load_rules(short)


def test_the_apis_request_models_take_the_schemas_values():
    from crmkit.api.resources import RESOURCES

    for name, res in RESOURCES.items():
        for column in res.table.columns.keys():
            values = V.enum_values(name, column)
            if values is None:
                continue
            annotation = res.create.model_fields[column].annotation
            literal = next(
                a for a in [annotation, *typing.get_args(annotation)] if typing.get_origin(a) is typing.Literal
            )
            assert typing.get_args(literal) == values


def test_the_training_tables_of_values_cover_the_schemas_values():
    from crmkit.training import builder, legacy, scenario

    assert set(scenario.Users.model_fields) == set(V.ROLES)
    assert set(legacy.ROLE_CODES) == set(V.ROLES)
    priority = scenario.Exercise.model_fields["priority"].annotation
    assert set(typing.get_args(typing.get_args(priority)[0])) == set(V.PRIORITIES)
    assert set(builder.ROLE_ORDER) == set(V.ROLES) and set(builder.OWNER_ROLES) <= set(V.ROLES)
    assert set(builder.PROBABILITY) == set(V.STAGES)
    assert set(builder.STAGE_AGE) == set(V.OPEN_STAGES)
    assert set(builder.SLA_HOURS) == set(builder.PRIORITY_MIX) == set(V.PRIORITIES)
    assert set(builder.LEAD_STATUS_MIX) == set(V.LEAD_STATUSES)
    assert set(builder.ACTIVITY_MIX) == set(V.ACTIVITY_TYPES)
    for codes in legacy.CODES.values():
        assert set(codes["stage"]) == set(V.STAGES)
        assert set(codes["case_status"]) == set(V.CASE_STATUSES)
        assert set(codes["priority"]) == set(V.PRIORITIES)
        assert set(codes["activity"]) == set(V.ACTIVITY_TYPES)
        assert set(codes["lead_status"]) == set(V.LEAD_STATUSES)


def test_every_declared_value_fits_its_column() -> None:
    """An enumerated value longer than its column is refused by PostgreSQL (not by SQLite): a run over
    its reject threshold crashed on PostgreSQL with 'rejects_over_threshold' in a varchar(20)."""
    from sqlalchemy import String

    from crmkit.schema.models import Base

    too_long = [
        f"{table.name}.{col.name}: {value!r} ({len(value)} > {col.type.length})"
        for table in Base.metadata.tables.values()
        for col in table.columns
        if "enum" in col.info and isinstance(col.type, String) and col.type.length
        for value in col.info["enum"]
        if len(value) > col.type.length
    ]
    assert not too_long, too_long


def test_the_run_statuses_the_pipeline_writes_are_the_schemas() -> None:
    from typing import get_args

    from crmkit.migrate.pipeline.result import RunStatus
    from crmkit.schema.vocabulary import RUN_STATUSES

    assert set(get_args(RunStatus)) == set(RUN_STATUSES)
