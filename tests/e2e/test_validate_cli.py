"""``crmkit validate``: inputs, gates, odd files and bad input, through the real CLI."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli
from tests.e2e.test_bad_input import assert_one_line_error
from tests.e2e.test_validate_rules import GOOD, write_csv

DOC = ROOT / "docs" / "validation-reference.md"


def run_json(*args: str) -> tuple[int, dict]:
    res = cli("validate", *args, "--json")
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, json.loads(res.stdout)


def contacts_csv(tmp_path: Path, rows: list[dict[str, str]], name: str = "contacts.csv") -> Path:
    return write_csv(tmp_path / name, rows)


def test_help_has_an_example():
    res = cli("validate", "--help")
    assert res.exit_code == 0 and "Example:" in res.output and "crmkit validate" in res.output


# --- odd files: a clear result, never a traceback ------------------------------------------


def test_a_file_where_every_row_is_bad(tmp_path):
    rows = [
        {
            "legacy_key": "K",
            "full_name": "",
            "email": f"bad{i}@",
            "phone": "0",
            "country": "ZZ",
            "birth_date": "2999-01-01",
        }
        for i in range(50)
    ]
    code, doc = run_json(str(contacts_csv(tmp_path, rows)), "--entity", "contacts")
    assert code == 1 and doc["status"] == "failed"
    assert doc["rows"] == doc["rows_with_errors"] == 50 and doc["clean_rows"] == 0
    counts = {r["name"]: r["failures"] for r in doc["rules"]}
    assert counts["email_syntax"] == counts["full_name_required"] == counts["country_iso3166"] == 50
    assert counts["legacy_key_unique"] == 49
    email = next(c for c in doc["profile"]["columns"] if c["field"] == "email")
    assert email["invalid"] == 50 and email["conformance"] == 0.0 and len(email["top_invalid"]) == 5
    assert doc["profile"]["key"] == {"present": True, "missing": 0, "duplicate_rows": 49, "duplicated_keys": 1}


def test_an_empty_file(tmp_path):
    empty = tmp_path / "contacts.csv"
    empty.write_bytes(b"")
    res = cli("validate", str(empty), "--entity", "contacts")
    assert_one_line_error(res, "contacts.csv", "the file is empty: expected a header line")


def test_a_file_with_only_a_header(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text("legacy_key,full_name,email\n", encoding="utf-8")
    code, doc = run_json(str(path), "--entity", "contacts")
    assert code == 0 and doc["rows"] == 0 and doc["status"] == "passed"
    assert doc["input"]["note"] == "the input has a header but no rows"
    res = cli("validate", str(path), "--entity", "contacts")
    assert "note: the input has a header but no rows" in res.output and res.exit_code == 0


def test_a_file_with_200_columns(tmp_path):
    extra = {f"LEGACY_COL_{i:03d}": f"v{i}" for i in range(192)}
    rows = [{**GOOD["contacts"], "legacy_key": f"K{n}", **extra} for n in range(20)]
    rows[3]["email"] = "nope"
    path = contacts_csv(tmp_path, rows)
    assert len(path.read_text(encoding="utf-8").splitlines()[0].split(",")) == 202
    code, doc = run_json(str(path), "--entity", "contacts")
    assert code == 1 and doc["rows"] == 20 and doc["rows_with_errors"] == 1
    assert len(doc["input"]["unchecked_columns"]) == 192
    res = cli("validate", str(path), "--entity", "contacts")
    assert "192 column(s) are no field of contacts and were not checked" in res.output


def test_a_file_with_no_column_of_the_entity(tmp_path):
    path = write_csv(tmp_path / "legacy.csv", [{"KUNDE": "1", "NAME": "x"}])
    assert_one_line_error(
        cli("validate", str(path), "--entity", "contacts"),
        "no column is named like a field of contacts",
        "rename the header",
    )


# --- inputs ----------------------------------------------------------------------------------


def test_xlsx_rows_are_spreadsheet_rows(tmp_path):
    import xlsxwriter

    path = tmp_path / "accounts.xlsx"
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet("Kunden")
    sheet.write_row(0, 0, ["legacy_key", "name", "country"])
    sheet.write_row(1, 0, ["A1", "ACME", "DE"])
    sheet.write_row(2, 0, ["A2", "Foo", "Deutschland"])
    book.close()
    cases = tmp_path / "rep"
    code, doc = run_json(str(path), "--entity", "accounts", "--sheet", "Kunden", "--report", str(cases))
    assert code == 1 and doc["rows"] == 2
    text = (cases / "failures.csv").read_text(encoding="utf-8-sig")
    assert "accounts.xlsx,3,A2,country,country_iso3166,error,Deutschland" in text


def test_a_table_of_a_legacy_database(tmp_path):
    db = tmp_path / "legacy.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE crm_contacts (legacy_key TEXT, full_name TEXT, email TEXT)")
        conn.executemany(
            "INSERT INTO crm_contacts VALUES (?, ?, ?)",
            [("K1", "Ann", "ann@example.com"), ("K2", "Bob", "bob@example")],
        )
    code, doc = run_json(f"sqlite:///{db}", "--table", "crm_contacts", "--entity", "contacts")
    assert code == 1 and doc["rows"] == 2 and doc["input"]["kind"] == "table"
    assert {r["name"]: r["failures"] for r in doc["rules"]}["email_syntax"] == 1


def test_target_url_reads_variables_from_the_environment(tmp_path):
    from crmkit.schema.versions import ensure_schema

    ensure_schema(f"sqlite:///{tmp_path / 'crm.db'}")
    res = cli(
        "validate",
        "--target",
        "sqlite:///${CRMKIT_TEST_CRM}",
        "--entity",
        "contacts",
        "--json",
        env={"CRMKIT_TEST_CRM": str(tmp_path / "crm.db")},
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["input"]["label"] == f"sqlite:///{tmp_path / 'crm.db'} table contacts"


def test_engines_agree_from_the_cli(tmp_path):
    rows = [
        GOOD["contacts"],
        {**GOOD["contacts"], "email": "x@", "birth_date": "2999-01-01"},
        {**GOOD["contacts"], "legacy_key": "K9", "phone": "", "email": ""},
    ]
    path = contacts_csv(tmp_path, rows)
    _, fast = run_json(str(path), "--entity", "contacts")
    _, pandera = run_json(str(path), "--entity", "contacts", "--engine", "pandera")
    assert pandera["engine"] == "pandera"
    strip = ("engine", "seconds")
    assert {k: v for k, v in fast.items() if k not in strip} == {k: v for k, v in pandera.items() if k not in strip}


# --- gates -------------------------------------------------------------------------------------


def test_gates_from_the_project_rules_decide_the_exit_code(tmp_path):
    rules = ROOT / "configs" / "validation.yaml"
    good = [{**GOOD["contacts"], "legacy_key": f"K{i}", "email": f"p{i}@example.com"} for i in range(300)]
    code, doc = run_json(str(contacts_csv(tmp_path, good)), "--entity", "contacts", "--rules", str(rules))
    assert code == 0 and all(g["passed"] for g in doc["gates"])
    assert [g["name"] for g in doc["gates"]] == ["rejects at most 0.5% of rows", "contact emails at least 90% complete"]
    # one reject in 300 rows is 0.33%: still within 0.5%
    one_bad = [dict(r) for r in good]
    one_bad[5]["country"] = "XX"
    code, doc = run_json(str(contacts_csv(tmp_path, one_bad)), "--entity", "contacts", "--rules", str(rules))
    assert code == 0 and doc["rows_with_errors"] == 1
    # 40 rows without email: completeness 86.7% < 90%
    for r in one_bad[:40]:
        r["email"] = ""
    code, doc = run_json(str(contacts_csv(tmp_path, one_bad)), "--entity", "contacts", "--rules", str(rules))
    assert code == 1
    gate = {g["name"]: g for g in doc["gates"]}["contact emails at least 90% complete"]
    assert gate["passed"] is False and gate["measured"] == pytest.approx(86.6667)
    res = cli("validate", str(tmp_path / "contacts.csv"), "--entity", "contacts", "--rules", str(rules))
    assert res.exit_code == 1 and "FAILED" in res.output and "status: failed" in res.output


# --- bad input: one line, exit 2 -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--entity", "kontakte", "x.csv"], ["unknown entity 'kontakte'", "contacts"]),
        (["--entity", "contacts"], ["give either PATH_OR_URL", "neither"]),
        (["x.csv", "--entity", "contacts", "--target", "sqlite:///crm.db"], ["not both"]),
        (["x.csv", "--entity", "contacts", "--table", "T"], ["--table applies to a database URL"]),
        (["{tmp}/nope.csv", "--entity", "contacts"], ["nope.csv", "no such file"]),
        (["{tmp}/c.json", "--entity", "contacts"], ["cannot tell the format", ".json"]),
        (
            ["--target", "postgresql+psycopg://postgres@127.0.0.1:1/crm", "--entity", "contacts"],
            ["cannot connect to target", "127.0.0.1:1"],
        ),
        (
            ["--target", "sqlite:///{tmp}/empty.db", "--entity", "contacts"],
            ["cannot read table contacts", "crmkit db upgrade"],
        ),
        (["sqlite:///{tmp}/empty.db", "--table", "T", "--entity", "contacts"], ["no such table"]),
        (["x.csv", "--entity", "contacts", "--encoding", "klingon"], ["unknown encoding 'klingon'"]),
        (
            ["--target", "sqlite:///${CRMKIT_SURELY_UNSET}", "--entity", "contacts"],
            ["environment variable CRMKIT_SURELY_UNSET is not set"],
        ),
        (["mysql+pymysql://root:hunter2@127.0.0.1/x", "--entity", "contacts"], ["holds a password", "${VAR}"]),
    ],
    ids=[
        "unknown-entity",
        "no-input",
        "two-inputs",
        "table-with-file",
        "missing-file",
        "unknown-format",
        "unreachable-target",
        "not-a-crmkit-target",
        "missing-table",
        "bad-encoding",
        "unset-variable",
        "literal-password",
    ],
)
def test_bad_input_is_one_line(tmp_path, args, fragments):
    (tmp_path / "c.json").write_text("{}", encoding="utf-8")
    sqlite3.connect(tmp_path / "empty.db").close()
    res = cli("validate", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert "hunter2" not in assert_one_line_error(res, *fragments)


@pytest.mark.parametrize(
    "yaml,line,fragments",
    [
        ("entities:\n  contacts: [oops\n", 4, ["invalid YAML"]),
        ("entities:\n  kontakte: {}\n", 3, ["entities.kontakte", "unknown entity"]),
        (
            "entities:\n  contacts:\n    checks:\n      - {field: email, regex: '(', severity: error}\n",
            5,
            ["invalid regular expression"],
        ),
        (
            "entities:\n  contacts:\n    checks:\n      - {field: email, regex: x, allowed: [a]}\n",
            5,
            ["exactly one check kind", "regex and allowed"],
        ),
        (
            "entities:\n  contacts:\n    checks:\n      - {field: birth_date, range: {min: yesterday}}\n",
            5,
            ["'yesterday' is not a date like 2024-01-31 or today"],
        ),
        (
            "entities:\n  contacts:\n    checks:\n      - {field: birth_date, regex: x}\n",
            5,
            ["regex applies to text, and birth_date is a date"],
        ),
        (
            "entities:\n  contacts:\n    checks:\n      - {field: email, custom: nope}\n",
            5,
            ["unknown custom check 'nope'", "register_check"],
        ),
        (
            "entities:\n  contacts:\n    severity: {emial_syntax: warning}\n",
            4,
            ["no built-in rule 'emial_syntax' for contacts", "email_syntax"],
        ),
        ("entities:\n  contacts:\n    severity: {email_syntax: fatal}\n", 4, ["severity.email_syntax"]),
        ("imports: [no_such_module_anywhere]\n", 1, ["cannot import no_such_module_anywhere"]),
        ("gates:\n  - {metric: completeness, field: email, min: 90}\n", 3, ["min percentage"]),
        ("gates:\n  - {metric: rejected_rows}\n", 3, ["exactly one of min or max"]),
        ("gates:\n  - {metric: rule_failures, rule: no_such_rule, max: 0}\n", 3, ["no rule named 'no_such_rule'"]),
        ("gates:\n  - {metric: rejected_rows, max: lots}\n", 3, ["'lots' is neither a count"]),
    ],
    ids=[
        "yaml-syntax",
        "unknown-entity",
        "bad-regex",
        "two-kinds",
        "bad-date",
        "regex-on-date",
        "unknown-custom",
        "unknown-builtin",
        "bad-severity",
        "bad-import",
        "completeness-needs-percent",
        "gate-without-bound",
        "gate-unknown-rule",
        "gate-bad-threshold",
    ],
)
def test_bad_rules_name_file_and_line(tmp_path, yaml, line, fragments):
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\n" + yaml, encoding="utf-8")
    path = contacts_csv(tmp_path, [GOOD["contacts"]])
    err = assert_one_line_error(cli("validate", str(path), "--entity", "contacts", "--rules", str(rules)), *fragments)
    assert f"{rules}:{line}:" in err


# --- docs ----------------------------------------------------------------------------------------


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_reference_pages_examples_load_and_run(tmp_path, monkeypatch):
    [module] = [b for b in blocks("python") if "register_check" in b]
    (tmp_path / "acme_checks.py").write_text(module, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    [yaml] = blocks("yaml")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml, encoding="utf-8")
    rows = [{**GOOD["contacts"], "title": "CEO", "email": ""}, {**GOOD["contacts"], "legacy_key": "K2"}]
    code, doc = run_json(str(contacts_csv(tmp_path, rows)), "--entity", "contacts", "--rules", str(rules))
    names = {r["name"]: r for r in doc["rules"]}
    assert names["email_acme_vip_has_email"]["failures"] == 1
    assert names["email_syntax"]["origin"] == "project" and "birth_date_after_1900" not in names
    assert {g["name"] for g in doc["gates"]} >= {"rejects at most 0.5%"}
    # and the project's own rules file loads
    code, _ = run_json(
        str(contacts_csv(tmp_path, rows)), "--entity", "contacts", "--rules", str(ROOT / "configs" / "validation.yaml")
    )
