"""Every rule kind, on hand-made bad rows in real CSV files, through ``crmkit validate``.

Each case writes a file with one good row (line 2) and one bad row (line 3): the rule must
fail the bad row, with its severity and a reason naming the field and the value, and no
rule may fail the good row.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli

GOOD = {
    "contacts": {
        "legacy_key": "K1",
        "full_name": "Ann Lee",
        "email": "ann@example.com",
        "phone": "+8613812345678",
        "country": "CN",
        "birth_date": "1980-02-03",
        "created_at": "2020-01-01",
        "title": "Buyer",
        "consent_to_contact": "yes",
        "notes": "ann.alt@example.com",
    },
    "accounts": {
        "legacy_key": "A1",
        "name": "ACME",
        "country": "DE",
        "email": "info@acme.de",
        "phone": "+4930123456",
        "tier": "A",
        "website": "acme.de",
    },
    "opportunities": {
        "legacy_key": "O1",
        "name": "Deal",
        "stage": "proposal",
        "amount": "100.50",
        "currency": "CNY",
        "close_date": "2024-05-01",
        "created_at": "2024-01-01",
        "probability": "50",
    },
    "cases": {
        "legacy_key": "S1",
        "subject": "Broken",
        "status": "open",
        "priority": "high",
        "opened_at": "2024-01-01 10:00:00",
        "closed_at": "",
    },
    "activities": {"legacy_key": "T1", "type": "call", "subject": "Call back"},
    "leads": {"legacy_key": "L1", "full_name": "Lee", "status": "new", "email": "lee@example.com"},
    "users": {"legacy_key": "U1", "name": "Rep", "role": "sales", "email": "rep@acme.de"},
}


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    cols = list(dict.fromkeys(c for r in rows for c in r))
    lines = [",".join(cols)] + [",".join(_csv(r.get(c, "")) for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _csv(v: str) -> str:
    return f'"{v}"' if "," in v or '"' in v else v


def validate(tmp_path: Path, entity: str, bad: dict[str, str], *args: str) -> dict:
    good = GOOD[entity]
    src = write_csv(tmp_path / f"{entity}.csv", [good, {**good, "legacy_key": good["legacy_key"] + "b", **bad}])
    res = cli("validate", str(src), "--entity", entity, "--json", *args)
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.stdout)


def failures(tmp_path: Path, entity: str, bad: dict[str, str], *args: str) -> tuple[dict, list[dict]]:
    doc = validate(tmp_path, entity, bad, *args, "--report", str(tmp_path / "rep"))
    import csv

    with open(tmp_path / "rep" / "failures.csv", encoding="utf-8-sig") as fh:
        return doc, list(csv.DictReader(fh))


BUILTIN = [
    # entity, bad values, rule, severity, a fragment of the reason
    ("contacts", {"full_name": ""}, "full_name_required", "error", "full_name: value is missing"),
    ("contacts", {"title": "x" * 101}, "title_max_length", "error", "is longer than 100 characters"),
    ("contacts", {"birth_date": "1980-13-45"}, "birth_date_type", "error", "'1***5' is not a date"),
    ("contacts", {"consent_to_contact": "maybe"}, "consent_to_contact_type", "error", "'maybe' is not a yes/no"),
    ("contacts", {"email": "ann@"}, "email_syntax", "error", "email: 'a***@' is not an email address"),
    ("contacts", {"phone": "138 1234 5678"}, "phone_e164", "error", "is not a phone number in E.164"),
    ("contacts", {"country": "Germany"}, "country_iso3166", "error", "'Germany' is not an ISO 3166 country code"),
    ("contacts", {"birth_date": "2999-01-01"}, "birth_date_not_future", "error", "is in the future"),
    ("contacts", {"birth_date": "1850-06-01"}, "birth_date_after_1900", "warning", "is before 1900-01-01"),
    ("contacts", {"created_at": "2999-01-01"}, "created_at_not_future", "warning", "'2999-01-01' is in the future"),
    ("contacts", {"email": "", "phone": ""}, "contact_reachable", "warning", "the contact cannot be reached"),
    (
        "contacts",
        {"legacy_key": "K1"},
        "legacy_key_unique",
        "error",
        "'K1' appears more than once in its source (first at row 2)",
    ),
    ("accounts", {"country": "China"}, "country_iso3166", "error", "'China' is not an ISO 3166"),
    # an account's e-mail is personal data (the schema's vocabulary): masked like a contact's
    ("accounts", {"email": "info@@acme"}, "email_syntax", "error", "'i***e' is not an email address"),
    ("opportunities", {"currency": "RMB"}, "currency_iso4217", "error", "'RMB' is not an ISO 4217 currency"),
    ("opportunities", {"stage": "won"}, "stage_allowed", "error", "stage: 'won' is not one of prospecting"),
    ("opportunities", {"amount": "-5"}, "amount_non_negative", "error", "amount: '-5.0' is negative"),
    ("opportunities", {"amount": "lots"}, "amount_type", "error", "amount: 'lots' is not a number"),
    ("opportunities", {"probability": "150"}, "probability_range", "error", "'150' is not between 0 and 100"),
    ("opportunities", {"close_date": "2023-12-01"}, "close_date_not_before_created", "error", "is before created_at"),
    (
        "opportunities",
        {"stage": "closed_won", "amount": ""},
        "won_has_amount",
        "error",
        "amount: is missing on a won opportunity",
    ),
    ("cases", {"status": "closed"}, "closed_case_has_closed_at", "error", "closed_at: is missing on a closed case"),
    (
        "cases",
        {"status": "closed", "closed_at": "2023-01-01 00:00:00"},
        "closed_at_not_before_opened",
        "error",
        "is before opened_at",
    ),
    ("cases", {"priority": "critical"}, "priority_allowed", "error", "'critical' is not one of low, medium"),
    ("cases", {"status": "done"}, "status_allowed", "error", "'done' is not one of new, open, pending, closed"),
    ("activities", {"type": "fax"}, "type_allowed", "error", "'fax' is not one of call"),
    ("leads", {"status": "hot"}, "status_allowed", "error", "'hot' is not one of new"),
    ("users", {"role": "boss"}, "role_allowed", "error", "'boss' is not one of admin"),
]


@pytest.mark.parametrize("entity,bad,rule,severity,fragment", BUILTIN, ids=[f"{c[0]}-{c[2]}" for c in BUILTIN])
def test_builtin_rule_fails_the_bad_row_only(tmp_path, entity, bad, rule, severity, fragment):
    doc, cases = failures(tmp_path, entity, bad)
    mine = [c for c in cases if c["rule"] == rule]
    assert [int(c["row"]) for c in mine] == [3], cases
    assert mine[0]["severity"] == severity
    assert fragment in mine[0]["reason"] and mine[0]["reason"].endswith(f"[rule {rule}]")
    assert {int(c["row"]) for c in cases} == {3}, "the good row must pass every rule"
    assert doc["rows_with_errors"] == (1 if severity == "error" else 0)
    assert doc["rows_with_warnings"] >= (1 if severity == "warning" else 0)
    # without gates in the rules, a row with an error fails the run
    assert doc["status"] == ("failed" if severity == "error" else "passed")


def rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\n" + text, encoding="utf-8")
    return path


PROJECT = [
    # entity, rules YAML (entities section), bad values, rule, severity, a fragment of the reason
    (
        "accounts",
        "accounts: {checks: [{field: website, regex: '^[a-z0-9.-]+\\.[a-z]{2,}$', severity: warning}]}",
        {"website": "not a site"},
        "website_regex",
        "warning",
        "website: 'n***e' does not match",  # personal data: masked
    ),
    (
        "opportunities",
        "opportunities: {checks: [{field: amount, range: {min: 10, max: 1000000}}]}",
        {"amount": "5"},
        "amount_range",
        "error",
        "amount: '5.0' is not between 10 and 1000000",
    ),
    (
        "contacts",
        "contacts: {checks: [{field: created_at, range: {max: today}, name: created_not_future, severity: error}]}",
        {"created_at": "2999-12-31"},
        "created_not_future",
        "error",
        "created_at: '2999-12-31' is more than",
    ),
    (
        "accounts",
        "accounts: {checks: [{field: tier, allowed: [A, B, C], message: is not an ACME tier}]}",
        {"tier": "Z"},
        "tier_allowed",
        "error",
        "tier: 'Z' is not an ACME tier",
    ),
    (
        "contacts",
        "contacts: {checks: [{field: email, unique: true, severity: warning}]}",
        {"email": "ann@example.com"},
        "email_unique",
        "warning",
        "is not unique (first at row 2)",
    ),
    (
        "contacts",
        "contacts: {checks: [{field: title, not_null: true, severity: warning}]}",
        {"title": ""},
        "title_not_null",
        "warning",
        "title: value is missing",
    ),
    (
        "contacts",
        "contacts: {checks: [{field: full_name, length: {min: 3}}]}",
        {"full_name": "Al"},
        "full_name_length",
        "error",
        "is shorter than 3 characters",
    ),
    (
        "contacts",
        "contacts: {checks: [{field: notes, format: email, severity: warning}]}",
        {"notes": "call me"},
        "notes_format",
        "warning",
        "notes: 'c***e' is not an email address",  # personal data: masked
    ),
    (
        "contacts",
        "contacts: {checks: [{field: full_name, custom: no_placeholder}]}",
        {"full_name": "N/A"},
        "full_name_no_placeholder",
        "error",
        "is a placeholder, not a value",
    ),
    (
        "contacts",
        "contacts: {severity: {email_syntax: warning}}",
        {"email": "ann@"},
        "email_syntax",
        "warning",
        "is not an email address",
    ),
    (
        "contacts",
        "contacts: {checks: [{name: country_iso3166, field: country, allowed: [CN], severity: warning}]}",
        {"country": "US"},
        "country_iso3166",
        "warning",
        "'US' is not one of CN",
    ),
]


@pytest.mark.parametrize("entity,yaml,bad,rule,severity,fragment", PROJECT, ids=[c[3] for c in PROJECT])
def test_project_check_from_yaml(tmp_path, entity, yaml, bad, rule, severity, fragment):
    rules = rules_file(tmp_path, f"entities:\n  {yaml}\n")
    doc, cases = failures(tmp_path, entity, bad, "--rules", str(rules))
    mine = [c for c in cases if c["rule"] == rule]
    assert [int(c["row"]) for c in mine] == [3], cases
    assert mine[0]["severity"] == severity and fragment in mine[0]["reason"], mine[0]
    assert {int(c["row"]) for c in cases} == {3}
    listed = {r["name"]: r for r in doc["rules"]}
    assert listed[rule]["failures"] == 1 and listed[rule]["severity"] == severity


def test_a_rule_switched_off_does_not_run(tmp_path):
    rules = rules_file(tmp_path, "entities:\n  contacts: {severity: {email_syntax: 'off'}}\n")
    doc = validate(tmp_path, "contacts", {"email": "ann@"}, "--rules", str(rules))
    assert "email_syntax" not in {r["name"] for r in doc["rules"]}
    assert doc["rows_with_errors"] == 0 and doc["status"] == "passed"


def test_custom_check_registered_in_a_project_module(tmp_path, monkeypatch):
    (tmp_path / "acme_checks.py").write_text(
        "import polars as pl\n"
        "from crmkit.validate import register_check\n\n"
        "@register_check('acme_vip_has_email', 'VIP contacts need an email address')\n"
        "def vip(field, args):\n"
        "    return ~pl.col('title').is_in(args['titles']) | pl.col(field).is_not_null()\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rules = rules_file(
        tmp_path,
        "imports: [acme_checks]\nentities:\n  contacts:\n    checks:\n"
        "      - {field: email, custom: acme_vip_has_email, args: {titles: [CEO]}, "
        "severity: warning}\n",
    )
    doc, cases = failures(tmp_path, "contacts", {"title": "CEO", "email": ""}, "--rules", str(rules))
    mine = [c for c in cases if c["rule"] == "email_acme_vip_has_email"]
    assert [(int(c["row"]), c["severity"]) for c in mine] == [(3, "warning")]
    assert mine[0]["reason"] == "email: VIP contacts need an email address [rule email_acme_vip_has_email]"


def test_personal_data_is_masked_unless_asked(tmp_path):
    _, cases = failures(tmp_path, "contacts", {"email": "secret.person@"})
    assert "secret" not in (tmp_path / "rep" / "failures.csv").read_text(encoding="utf-8")
    assert "secret" not in (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert [c["value"] for c in cases] == ["s***@"]
    _, cases = failures(tmp_path, "contacts", {"email": "secret.person@"}, "--no-mask")
    assert [c["value"] for c in cases] == ["secret.person@"]
    unmasked = rules_file(tmp_path, "entities:\n  contacts: {personal_data: []}\n")
    _, cases = failures(tmp_path, "contacts", {"email": "secret.person@"}, "--rules", str(unmasked))
    assert [c["value"] for c in cases] == ["secret.person@"]


def test_every_failure_of_a_row_is_collected_with_its_source_row_and_key(tmp_path):
    _, cases = failures(
        tmp_path, "contacts", {"email": "bad@", "country": "XX", "birth_date": "2999-01-01", "phone": "12"}
    )
    assert {c["rule"] for c in cases} == {"email_syntax", "country_iso3166", "birth_date_not_future", "phone_e164"}
    assert {(c["source"], c["row"], c["key"]) for c in cases} == {("contacts.csv", "3", "K1b")}
    assert {c["field"] for c in cases} == {"email", "country", "birth_date", "phone"}
