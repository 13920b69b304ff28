"""Post-load validation: the same rules over the CRM target's tables, SQLite and PostgreSQL.

The example estate is migrated (the migration rejects its bad rows, so what loaded is
clean), then hand-made bad rows are written straight into the target — as another tool or
a later edit in the CRM would — and ``crmkit validate --target`` must find exactly them,
with their source, id and legacy key, in both severities.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert

from crmkit.schema.models import ENTITY_MODELS
from tests.conftest import MAPPINGS, cli

ENTITIES = ["departments", "users", "accounts", "contacts", "opportunities", "cases"]
NOW = dt.datetime(2024, 3, 1, 9, 30)

HANDMADE = {
    "contacts": [
        # key, values, {rule: severity}
        ("H1", {"full_name": "Bad Mail", "email": "bad@mail", "phone": "+8613812345678"}, {"email_syntax": "error"}),
        ("H2", {"full_name": "No Way", "country": "CN"}, {"contact_reachable": "warning"}),
        (
            "H3",
            {"full_name": "Future", "email": "f@example.com", "birth_date": dt.date(2999, 1, 1)},
            {"birth_date_not_future": "error"},
        ),
        (
            "H3",
            {"full_name": "Twice", "email": "t@example.com", "country": "ZZ"},
            {"legacy_key_unique": "error", "country_iso3166": "error"},
        ),
        (
            "H5",
            {"full_name": "Old", "email": "o@example.com", "birth_date": dt.date(1850, 5, 5)},
            {"birth_date_after_1900": "warning"},
        ),
    ],
    "opportunities": [
        ("HO1", {"name": "Won, no amount", "stage": "closed_won", "currency": "CNY"}, {"won_has_amount": "error"}),
        (
            "HO2",
            {"name": "Odd", "stage": "maybe", "amount": -3, "currency": "XYZ"},
            {"stage_allowed": "error", "amount_non_negative": "error", "currency_iso4217": "error"},
        ),
    ],
    "cases": [
        (
            "HC1",
            {"subject": "Closed, no time", "status": "closed", "priority": "high", "opened_at": NOW},
            {"closed_case_has_closed_at": "error"},
        ),
        (
            "HC2",
            {
                "subject": "Backwards",
                "status": "closed",
                "priority": "urgent",
                "opened_at": NOW,
                "closed_at": NOW - dt.timedelta(days=1),
            },
            {"closed_at_not_before_opened": "error"},
        ),
    ],
}


def target_url(request: pytest.FixtureRequest, backend: str) -> str:
    return request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")


def validate_target(url: str, entity: str, report: Path | None = None) -> tuple[int, dict]:
    args = ["validate", "--target", url, "--entity", entity, "--json"]
    res = cli(*args, *(["--report", str(report)] if report else []))
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.stdout)


def write_handmade(url: str) -> dict[str, dict[str, int]]:
    """Insert the hand-made rows; returns entity -> legacy key -> id (the last id of a key)."""
    engine = create_engine(url)
    ids: dict[str, dict[str, int]] = {}
    with engine.begin() as conn:
        account = conn.exec_driver_sql("SELECT min(id) FROM accounts").scalar()
        for entity, rows in HANDMADE.items():
            table = ENTITY_MODELS[entity].__table__  # type: ignore[attr-defined]
            for key, values, _ in rows:
                extra = {"account_id": account} if entity == "opportunities" else {}
                new_id = conn.execute(
                    insert(table)
                    .values(source_name="handmade", legacy_key=key, **extra, **values)
                    .returning(table.c.id)
                ).scalar_one()
                ids.setdefault(entity, {})[key] = new_id
    engine.dispose()
    return ids


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_post_load_finds_exactly_the_hand_made_bad_rows(request, backend, tmp_path):
    url = target_url(request, backend)
    assert cli("migrate", "run", str(MAPPINGS / "acme-legacy.yaml"), "--target", url).exit_code == 0
    clean = {}
    for entity in ENTITIES:
        code, doc = validate_target(url, entity)
        clean[entity] = doc["rows"]
        assert (code, doc["rows_with_errors"], doc["rows_with_warnings"]) == (0, 0, 0), (entity, doc["rules"])
        assert doc["rows"] > 0 and doc["input"]["kind"] == "target"
    ids = write_handmade(url)
    for entity, rows in HANDMADE.items():
        code, doc = validate_target(url, entity, tmp_path / entity)
        assert doc["rows"] == clean[entity] + len(rows)
        with open(tmp_path / entity / "failures.csv", encoding="utf-8-sig") as fh:
            found = {(c["source"], c["key"], int(c["row"]), c["rule"], c["severity"]) for c in csv.DictReader(fh)}
        expected = set()
        for i, (key, _, rules) in enumerate(rows):
            row_id = ids[entity][key] if i == len(rows) - 1 or rows[i + 1][0] != key else ids[entity][key] - 1
            expected |= {("handmade", key, row_id, rule, sev) for rule, sev in rules.items()}
        assert found == expected, entity
        errors = sum(1 for _, _, rules in rows if "error" in rules.values())
        assert doc["rows_with_errors"] == errors and code == (1 if errors else 0)


def test_a_key_repeated_in_another_source_is_not_a_duplicate(sqlite_url):
    from crmkit.schema.versions import ensure_schema

    ensure_schema(sqlite_url)
    engine = create_engine(sqlite_url)
    table = ENTITY_MODELS["tags"].__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(
            insert(table),
            [
                {"name": "vip", "source_name": "erp", "legacy_key": "T1"},
                {"name": "vip", "source_name": "sheet", "legacy_key": "T1"},
                {"name": "gold", "source_name": "erp", "legacy_key": "T1"},
            ],
        )
    engine.dispose()
    code, doc = validate_target(sqlite_url, "tags")
    assert code == 1 and {r["name"]: r["failures"] for r in doc["rules"]}["legacy_key_unique"] == 1
    assert doc["profile"]["key"]["duplicate_rows"] == 1


def test_post_load_profile_of_the_example_estate(sqlite_url):
    assert cli("migrate", "run", str(MAPPINGS / "acme-legacy.yaml"), "--target", sqlite_url).exit_code == 0
    code, doc = validate_target(sqlite_url, "contacts")
    cols = {c["field"]: c for c in doc["profile"]["columns"]}
    assert cols["full_name"]["completeness"] == cols["email"]["completeness"] == 1.0
    assert 0 < cols["phone"]["completeness"] < 1 and cols["country"]["completeness"] == 0
    assert cols["birth_date"]["valid"] + cols["birth_date"]["missing"] == doc["rows"]
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        distinct = conn.exec_driver_sql("SELECT count(DISTINCT email), count(DISTINCT phone) FROM contacts").one()
    engine.dispose()
    assert (cols["email"]["distinct"], cols["phone"]["distinct"]) == tuple(distinct)


PROJECT_RULES = """version: 1
entities:
  contacts:
    checks:
      - {field: title, regex: '^[A-Z]', severity: warning}
      - {field: title, length: {max: 20}, name: title_short}
      - {field: notes, not_null: true, severity: warning}
      - {field: mobile, unique: true}
      - {field: full_name, custom: no_placeholder, severity: warning}
      - {field: country, allowed: [CN, DE], severity: warning}
      - {field: created_at, range: {min: 2000-01-01}}
"""
PROJECT_ROWS = [
    # key, values, {rule: severity}
    (
        "Y1",
        {
            "full_name": "Fine",
            "email": "f@example.com",
            "title": "Buyer",
            "notes": "n",
            "mobile": "+8613900000001",
            "country": "CN",
            "created_at": dt.date(2020, 1, 1),
        },
        {},
    ),
    (
        "Y2",
        {"full_name": "Lower", "email": "l@example.com", "title": "buyer", "notes": "n"},
        {"title_regex": "warning"},
    ),
    (
        "Y3",
        {"full_name": "Long", "email": "g@example.com", "title": "Head of Everything Important", "notes": "n"},
        {"title_short": "error"},
    ),
    ("Y4", {"full_name": "No notes", "email": "o@example.com"}, {"notes_not_null": "warning"}),
    (
        "Y5",
        {"full_name": "Same mobile", "email": "s@example.com", "notes": "n", "mobile": "+8613900000001"},
        {"mobile_unique": "error"},
    ),
    ("Y6", {"full_name": "n/a", "email": "x@example.com", "notes": "n"}, {"full_name_no_placeholder": "warning"}),
    (
        "Y7",
        {"full_name": "Abroad", "email": "a@example.com", "notes": "n", "country": "US"},
        {"country_allowed": "warning"},
    ),
    (
        "Y8",
        {"full_name": "Ancient", "email": "e@example.com", "notes": "n", "created_at": dt.date(1990, 1, 1)},
        {"created_at_range": "error"},
    ),
]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_project_rules_post_load(request, backend, tmp_path):
    from crmkit.schema.versions import ensure_schema

    url = target_url(request, backend)
    ensure_schema(url)
    engine = create_engine(url)
    table = ENTITY_MODELS["contacts"].__table__  # type: ignore[attr-defined]
    ids = {}
    with engine.begin() as conn:
        for key, values, _ in PROJECT_ROWS:
            ids[key] = conn.execute(
                insert(table).values(source_name="yaml", legacy_key=key, **values).returning(table.c.id)
            ).scalar_one()
    engine.dispose()
    rules = tmp_path / "rules.yaml"
    rules.write_text(PROJECT_RULES, encoding="utf-8")
    res = cli(
        "validate",
        "--target",
        url,
        "--entity",
        "contacts",
        "--rules",
        str(rules),
        "--json",
        "--report",
        str(tmp_path / "rep"),
    )
    assert res.exit_code == 1, res.output
    with open(tmp_path / "rep" / "failures.csv", encoding="utf-8-sig") as fh:
        found = {
            (c["key"], int(c["row"]), c["rule"], c["severity"]) for c in csv.DictReader(fh) if c["source"] == "yaml"
        }
    expected = {(key, ids[key], rule, sev) for key, _, rules_ in PROJECT_ROWS for rule, sev in rules_.items()}
    assert found == expected


def test_text_in_a_typed_sqlite_column_fails_its_type(sqlite_url):
    from crmkit.schema.versions import ensure_schema

    ensure_schema(sqlite_url)
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:  # SQLite stores whatever it is given
        conn.exec_driver_sql(
            "INSERT INTO contacts (full_name, email, birth_date, active, source_name, legacy_key) "
            "VALUES ('Ann', 'ann@example.com', 'last spring', 1, 'sheet', 'K1')"
        )
    engine.dispose()
    code, doc = validate_target(sqlite_url, "contacts")
    assert code == 1 and {r["name"]: r["failures"] for r in doc["rules"]}["birth_date_type"] == 1
