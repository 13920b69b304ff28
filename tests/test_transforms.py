"""Every transform, the implicit cast and the row checks, through the real CLI into SQLite.

Each case writes a tiny CSV and a mapping, runs ``crmkit migrate run`` into a copy of an
already-upgraded SQLite target, and looks at what a user would: the row in the target,
the counts in the JSON summary and the reasons in ``rejects.csv``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import create_engine, select

from crmkit.schema.models import ENTITY_MODELS
from tests.conftest import cli

#: required fields of each entity, filled with a constant when a case does not test them
FILLERS = {
    "contacts": {"full_name": "{const: Somebody}"},
    "accounts": {"name": "{const: Acme}"},
    "opportunities": {
        "name": "{const: Deal}",
        "stage": "{const: prospecting}",
        "account": "{ref: accounts, column: acct}",
    },
    "cases": {"subject": "{const: Help}", "status": "{const: new}", "priority": "{const: low}"},
}
ACCOUNTS_CSV = "acct_no,acct_name\nA1,Acme\nA2,\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite target with the CRM schema, copied for every case (creating it costs ~1 s)."""
    db = tmp_path_factory.mktemp("template") / "crm.db"
    res = cli("db", "upgrade", "--target", f"sqlite:///{db}")
    assert res.exit_code == 0, res.output
    return db


@dataclass
class Migration:
    """What a user sees after a run: exit code, counts, rejects and the rows loaded."""

    exit_code: int
    counts: dict[str, int]  # of the entity under test
    rejects: list[dict[str, str]]  # rejects.csv rows of the entity under test
    rows: dict[str, dict[str, Any]]  # legacy key -> target row, typed by SQLAlchemy

    def reasons(self, key: str) -> str:
        return next(r["reasons"] for r in self.rejects if r["legacy_key"] == key)

    def value(self, field: str, key: str = "1") -> Any:
        return self.rows[key][field]


def write_csv(path: Path, header: list[str], rows: list[list[str | None]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])


def mapping_text(entity: str, fields: dict[str, str], key: str, filter_: str | None, source: str) -> str:
    fields = {**{k: v for k, v in FILLERS[entity].items() if k not in fields}, **fields}
    lines = ["version: 1", "name: case", "max_rejects: 100%", "sources:", f"  src: {source}"]
    if entity == "opportunities" or any("ref: accounts" in spec for spec in fields.values()):
        lines += ["  accts: {kind: csv, path: accounts.csv}"]
    lines += ["entities:"]
    if entity != "accounts" and any("ref: accounts" in spec for spec in fields.values()):
        lines += ["  accounts:", "    from: accts", "    key: acct_no", "    fields:", "      name: acct_name"]
    lines += [f"  {entity}:", "    from: src", f"    key: {key}"]
    if filter_:
        lines += [f"    filter: {json.dumps(filter_)}"]
    lines += ["    fields:"] + [f"      {name}: {spec}" for name, spec in fields.items()]
    return "\n".join(lines) + "\n"


def migrate(
    tmp_path: Path,
    template: Path,
    entity: str,
    fields: dict[str, str],
    header: list[str],
    rows: list[list[str | None]],
    key: str = "id",
    filter_: str | None = None,
    source: str = "{kind: csv, path: source.csv}",
) -> Migration:
    """Write source.csv and a mapping, run the CLI into a fresh target, read back the outcome."""
    write_csv(tmp_path / "source.csv", header, rows)
    (tmp_path / "accounts.csv").write_text(ACCOUNTS_CSV, encoding="utf-8")
    mapping = tmp_path / "case.yaml"
    mapping.write_text(mapping_text(entity, fields, key, filter_, source), encoding="utf-8")
    db = tmp_path / "crm.db"
    shutil.copy(template, db)
    res = cli(
        "migrate", "run", str(mapping), "--target", f"sqlite:///{db}", "--json", "--report", str(tmp_path / "rep")
    )
    assert res.exit_code in (0, 1), res.output + res.stderr
    summary = json.loads(res.output)
    rejects = pl.read_csv(tmp_path / "rep" / "rejects.csv", infer_schema=False)
    return Migration(
        exit_code=res.exit_code,
        counts=summary["entities"][entity],
        rejects=rejects.filter(pl.col("entity") == entity).to_dicts(),
        rows=read_rows(db, entity),
    )


def read_rows(db: Path, entity: str) -> dict[str, dict[str, Any]]:
    engine = create_engine(f"sqlite:///{db}")
    table = ENTITY_MODELS[entity].__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(select(table)).mappings().all()
    engine.dispose()
    return {r["legacy_key"]: dict(r) for r in rows}


# --- one field, one value -------------------------------------------------------------


@dataclass(frozen=True)
class Loads:
    value: Any


@dataclass(frozen=True)
class Rejected:
    reason: str


def case(
    entity: str, field: str, spec: str, raw: str | None, outcome: Loads | Rejected, id: str, column: str | None = None
) -> Any:
    return pytest.param(entity, field, spec, raw, outcome, column or field, id=id)


CASES = [
    # text
    case("contacts", "full_name", "{column: v, transform: strip}", "  Alice Wong \t", Loads("Alice Wong"), "strip"),
    case("contacts", "title", "{column: v, transform: lower}", "Sales MANAGER", Loads("sales manager"), "lower"),
    case("contacts", "title", "{column: v, transform: upper}", "ceo", Loads("CEO"), "upper"),
    case("contacts", "title", "{column: v, transform: title}", "sales MANAGER", Loads("Sales Manager"), "title"),
    case(
        "contacts",
        "full_name",
        "{column: v, transform: nfkc}",
        "ＡＢＣ贸易１２３（北京）",
        Loads("ABC贸易123(北京)"),
        "nfkc-full-width-to-half-width",
    ),
    case(
        "contacts",
        "full_name",
        "{column: v, transform: collapse_spaces}",
        " Zhang \t  San\u3000 ",
        Loads("Zhang San"),
        "collapse_spaces",
    ),
    case(
        "contacts", "title", "{column: v, transform: {null_if: ['-', 'N/A', 无]}}", "N/A", Loads(None), "null_if-listed"
    ),
    case(
        "contacts", "title", "{column: v, transform: {null_if: ['-', 'N/A', 无]}}", "无", Loads(None), "null_if-chinese"
    ),
    case(
        "contacts",
        "title",
        "{column: v, transform: {null_if: ['-', 'N/A']}}",
        "CEO",
        Loads("CEO"),
        "null_if-other-values-kept",
    ),
    case(
        "contacts",
        "city",
        "{column: v, transform: {replace: {pattern: '市$', with: ''}}}",
        "北京市",
        Loads("北京"),
        "replace",
    ),
    case(
        "contacts",
        "phone",
        r"{column: v, transform: {replace: {pattern: '^(\d{3})(\d{4})$', with: '$1-$2'}}}",
        "5551234",
        Loads("555-1234"),
        "replace-with-groups",
    ),
    case(
        "contacts",
        "title",
        r"{column: v, transform: {regex: '^(\w+)@'}}",
        "bob@acme.example",
        Loads("bob"),
        "regex-first-group",
    ),
    case(
        "contacts",
        "title",
        r"{column: v, transform: {regex: {pattern: '^(\d+)-(\d+)$', group: 2}}}",
        "12-34",
        Loads("34"),
        "regex-group-2",
    ),
    case(
        "contacts",
        "title",
        r"{column: v, transform: {regex: '^(\w+)@'}}",
        "nobody",
        Rejected(r"title: 'nobody' does not match ^(\w+)@"),
        "regex-no-match-fails",
    ),
    case(
        "contacts",
        "last_name",
        "{column: v, transform: {split: {sep: ' ', index: -1}}}",
        "Wong Ka Fai",
        Loads("Fai"),
        "split-last",
    ),
    case(
        "contacts",
        "first_name",
        "{column: v, transform: {split: {sep: '/', index: 1}}}",
        "x/Ka/y",
        Loads("Ka"),
        "split-index",
    ),
    case(
        "contacts",
        "first_name",
        "{column: v, transform: {split: {sep: '/', index: 3}}}",
        "x/Ka",
        Loads(None),
        "split-past-the-end-is-empty",
    ),
    case("contacts", "title", "{column: v, transform: {truncate: 5}}", "Managing Director", Loads("Manag"), "truncate"),
    case(
        "contacts",
        "title",
        "{column: v, transform: [{null_if: '-'}, {default: unknown}]}",
        "-",
        Loads("unknown"),
        "default-step",
    ),
    # value maps
    case(
        "cases", "status", "{column: v, map: {新建: new, 处理中: open, 已关闭: closed}}", "处理中", Loads("open"), "map"
    ),
    case(
        "cases",
        "status",
        "{column: v, map: {新建: new, 处理中: open}}",
        "挂起",
        Rejected("status: '挂起' is not in the value map; status: required value is missing"),
        "map-unlisted-without-default-fails",
    ),
    case(
        "cases",
        "status",
        "{column: v, map: {新建: new, 处理中: open}, default: pending}",
        "挂起",
        Loads("pending"),
        "map-unlisted-takes-the-default",
    ),
    case(
        "cases",
        "status",
        "{column: v, transform: {map: {values: {新建: new}, default: pending}}}",
        "挂起",
        Loads("pending"),
        "map-transform-with-default",
    ),
    case(
        "contacts",
        "title",
        "{column: v, map: {CEO: Chief Executive, '-': null}}",
        "-",
        Loads(None),
        "map-to-null-is-empty-not-a-failure",
    ),
    case(
        "contacts",
        "consent_to_contact",
        "{column: v, map: {'Y': true, 'N': false}}",
        "N",
        Loads(False),
        "map-to-boolean",
    ),
    # yes/no
    case("contacts", "consent_to_contact", "{column: v, transform: bool}", " 是 ", Loads(True), "bool-chinese-yes"),
    case("contacts", "consent_to_contact", "{column: v, transform: bool}", "Nein", Loads(False), "bool-german-no"),
    case(
        "contacts",
        "consent_to_contact",
        "{column: v, transform: bool}",
        "maybe",
        Rejected("consent_to_contact: 'maybe' is not a yes/no value"),
        "bool-unknown-fails",
    ),
    case(
        "contacts",
        "consent_to_contact",
        """{column: v, transform: {bool: {"true": [X], "false": [O]}}}""",
        "x",
        Loads(True),
        "bool-own-words",
    ),
    case(
        "contacts",
        "consent_to_contact",
        """{column: v, transform: {bool: {"true": [X], "false": [O]}}}""",
        "yes",
        Rejected("consent_to_contact: 'yes' is not a yes/no value"),
        "bool-own-words-replace-the-defaults",
    ),
    # YAML reads a bare true/false key as a boolean: the natural spelling must work too
    case(
        "contacts",
        "consent_to_contact",
        "{column: v, transform: {bool: {true: [X], false: [O]}}}",
        "o",
        Loads(False),
        "bool-own-words-unquoted-keys",
    ),
    # dates
    case(
        "contacts",
        "birth_date",
        "{column: v, transform: {date: ['%Y-%m-%d', '%Y/%m/%d', '%Y%m%d']}}",
        "1985/7/9",
        Loads(dt.date(1985, 7, 9)),
        "date-second-format",
    ),
    case(
        "contacts",
        "birth_date",
        "{column: v, transform: {date: ['%Y-%m-%d', '%Y/%m/%d', '%Y%m%d']}}",
        "19850709",
        Loads(dt.date(1985, 7, 9)),
        "date-third-format",
    ),
    case(
        "contacts",
        "birth_date",
        "{column: v, transform: {date: '%d.%m.%Y'}}",
        "09.07.1985",
        Loads(dt.date(1985, 7, 9)),
        "date-one-format",
    ),
    case(
        "contacts",
        "birth_date",
        "{column: v, transform: {date: ['%Y-%m-%d', excel_serial]}}",
        "44259",
        Loads(dt.date(2021, 3, 4)),
        "date-excel-serial",
    ),
    case(
        "contacts",
        "birth_date",
        "{column: v, transform: {date: ['%Y/%m/%d']}}",
        "2021-03-04 10:30:00",
        Loads(dt.date(2021, 3, 4)),
        "date-iso-date-time-always-accepted",
    ),
    case(
        "contacts",
        "birth_date",
        "{column: v, transform: {date: ['%Y-%m-%d', '%Y/%m/%d']}}",
        "2021-02-30",
        Rejected("birth_date: '2021-02-30' is not a date (%Y-%m-%d, %Y/%m/%d)"),
        "date-impossible-fails",
    ),
    case(
        "contacts",
        "birth_date",
        "{column: v, transform: {date: ['%Y-%m-%d', excel_serial]}}",
        "0",
        Rejected("birth_date: '0' is not a date (%Y-%m-%d, excel_serial)"),
        "date-excel-serial-zero-fails",
    ),
    case(
        "cases",
        "opened_at",
        "{column: v, transform: {datetime: ['%d/%m/%Y %H:%M']}}",
        "04/03/2021 10:30",
        Loads(dt.datetime(2021, 3, 4, 10, 30)),
        "datetime",
    ),
    case(
        "cases",
        "opened_at",
        "{column: v, transform: {datetime: [excel_serial]}}",
        "44259.5",
        Loads(dt.datetime(2021, 3, 4, 12, 0)),
        "datetime-excel-serial-with-time",
    ),
    case(
        "cases",
        "opened_at",
        "{column: v, transform: {datetime: ['%Y-%m-%d %H:%M:%S']}}",
        "2021-03-04 25:00:00",
        Rejected("opened_at: '2021-03-04 25:00:00' is not a date-time (%Y-%m-%d %H:%M:%S)"),
        "datetime-impossible-fails",
    ),
    # numbers
    case(
        "opportunities",
        "amount",
        "{column: v, transform: number}",
        "1,234,567.50",
        Loads(Decimal("1234567.50")),
        "number-thousands-separators",
    ),
    case(
        "opportunities",
        "amount",
        "{column: v, transform: {number: {decimal: ','}}}",
        "1.234,56",
        Loads(Decimal("1234.56")),
        "number-decimal-comma",
    ),
    case(
        "opportunities",
        "amount",
        "{column: v, transform: {number: {decimal: ',', thousands: ' '}}}",
        "1 234 567,5",
        Loads(Decimal("1234567.50")),
        "number-space-thousands",
    ),
    case(
        "opportunities",
        "amount",
        "{column: v, transform: number}",
        "¥ 85,000",
        Loads(Decimal("85000")),
        "number-currency-sign",
    ),
    case(
        "opportunities",
        "amount",
        "{column: v, transform: number}",
        "about 5k",
        Rejected("amount: 'about 5k' is not a number"),
        "number-fails",
    ),
    case("opportunities", "probability", "{column: v, transform: integer}", "1,000", Loads(1000), "integer"),
    case("opportunities", "probability", "{column: v, transform: integer}", "75.0", Loads(75), "integer-whole-float"),
    case(
        "opportunities",
        "probability",
        "{column: v, transform: integer}",
        "12.5",
        Rejected("probability: '12.5' is not a whole number"),
        "integer-fraction-fails",
    ),
    # e-mail
    case(
        "contacts",
        "email",
        "{column: v, transform: email}",
        "  Yang.Fan@ACME.example ",
        Loads("yang.fan@acme.example"),
        "email-case-and-spaces",
    ),
    case(
        "contacts",
        "email",
        "{column: v, transform: email}",
        "ｌｉ．ｌｅｉ＠ａｃｍｅ．ｃｎ",
        Loads("li.lei@acme.cn"),
        "email-full-width",
    ),
    case(
        "contacts",
        "email",
        "{column: v, transform: email}",
        "li.lei＠acme.cn",
        Loads("li.lei@acme.cn"),
        "email-full-width-at",
    ),
    case(
        "contacts",
        "email",
        "{column: v, transform: email}",
        "li.lei at acme.cn",
        Rejected("email: 'li.lei at acme.cn' is not an email address"),
        "email-invalid-fails",
    ),
    case(
        "contacts",
        "email",
        "{column: v, transform: email}",
        "li@localhost",
        Rejected("email: 'li@localhost' is not an email address"),
        "email-without-domain-fails",
    ),
    # phone
    case(
        "contacts",
        "phone",
        "{column: v, transform: {phone: {region: CN}}}",
        "(010) 6552 1234",
        Loads("+861065521234"),
        "phone-default-region",
    ),
    case(
        "contacts",
        "mobile",
        "{column: v, transform: {phone: {region: CN}}}",
        "１３８－００１３－８０００",
        Loads("+8613800138000"),
        "phone-full-width",
    ),
    case(
        "contacts",
        "phone",
        "{column: v, transform: {phone: {region: CN}}}",
        "+49 30 1234567",
        Loads("+49301234567"),
        "phone-international-overrides-region",
    ),
    case(
        "contacts",
        "phone",
        "{column: v, transform: {phone: {region: CN}}}",
        "12345",
        Rejected("phone: '12345' is not a phone number"),
        "phone-invalid-fails",
    ),
    case(
        "contacts",
        "phone",
        "{column: v, transform: phone}",
        "030 12345678",
        Rejected("phone: '030 12345678' is not a phone number"),
        "phone-national-without-region-fails",
    ),
    # the implicit last step: blanks, the target type and length
    case("contacts", "title", "v", "   ", Loads(None), "blank-is-empty-not-a-failure"),
    case(
        "contacts",
        "birth_date",
        "{column: v, transform: {date: ['%Y-%m-%d']}}",
        "   ",
        Loads(None),
        "blank-through-a-date-is-empty-not-a-failure",
    ),
    case(
        "contacts",
        "consent_to_contact",
        "{column: v, transform: bool}",
        "  ",
        Loads(None),
        "blank-through-bool-is-empty-not-a-failure",
    ),
    case(
        "contacts",
        "country",
        "v",
        "CHN",
        Rejected("country: 'CHN' is longer than 2 characters"),
        "string-too-long-fails",
    ),
    case("contacts", "birth_date", "v", "1985-07-09", Loads(dt.date(1985, 7, 9)), "cast-iso-date"),
    case(
        "contacts",
        "birth_date",
        "v",
        "1985/7/9",
        Rejected("birth_date: '1985/7/9' is not a date (YYYY-MM-DD); add a date transform with its format"),
        "cast-date-needs-a-transform",
    ),
    case("cases", "opened_at", "v", "2021-03-04T10:30:00", Loads(dt.datetime(2021, 3, 4, 10, 30)), "cast-iso-datetime"),
    case(
        "cases",
        "opened_at",
        "v",
        "4.3.2021",
        Rejected("opened_at: '4.3.2021' is not a date-time; add a datetime transform with its format"),
        "cast-datetime-needs-a-transform",
    ),
    case("contacts", "consent_to_contact", "v", "yes", Loads(True), "cast-boolean"),
    case(
        "contacts",
        "consent_to_contact",
        "v",
        "perhaps",
        Rejected("consent_to_contact: 'perhaps' is not a yes/no value"),
        "cast-boolean-fails",
    ),
    case("opportunities", "probability", "v", "80", Loads(80), "cast-integer"),
    case(
        "opportunities",
        "probability",
        "v",
        "eighty",
        Rejected("probability: 'eighty' is not a whole number"),
        "cast-integer-fails",
    ),
    case("opportunities", "amount", "v", "12,000.50", Loads(Decimal("12000.50")), "cast-decimal"),
    case("opportunities", "amount", "v", "n/a", Rejected("amount: 'n/a' is not a number"), "cast-decimal-fails"),
    # constants and defaults
    case("accounts", "segment", "{const: web shop}", "ignored", Loads("web shop"), "const"),
    case("accounts", "segment", "{const: 42}", "ignored", Loads("42"), "const-number-into-text"),
    case("accounts", "active", "{const: false}", "ignored", Loads(False), "const-boolean"),
    case("accounts", "segment", "{column: v, default: retail}", "", Loads("retail"), "default-when-empty"),
    case(
        "accounts",
        "segment",
        "{column: v, default: retail}",
        "wholesale",
        Loads("wholesale"),
        "default-not-used-when-set",
    ),
    case("accounts", "segment", "{default: retail}", "ignored", Loads("retail"), "default-alone"),
]


@pytest.mark.parametrize(("entity", "field", "spec", "raw", "outcome", "column"), CASES)
def test_one_value(tmp_path, template, entity, field, spec, raw, outcome, column):
    m = migrate(tmp_path, template, entity, {field: spec}, ["id", "v", "acct"], [["1", raw, "A1"]])
    if isinstance(outcome, Loads):
        assert [r["reasons"] for r in m.rejects] == [] and m.counts["inserted"] == 1
        value = m.value(column if column in m.rows["1"] else f"{column}_id")
        assert value == outcome.value and type(value) is type(outcome.value)
    else:
        assert m.counts["rejected"] == 1 and m.rows == {}
        assert m.reasons("1") == outcome.reason
        assert m.exit_code == 0  # max_rejects: 100%


@pytest.mark.parametrize(
    ("spec", "raw"),
    [
        ("number", "1,5"),
        ("number", "12,34.5"),
        ("{number: {decimal: ','}}", "1,234.56"),
        ("{number: {decimal: ','}}", "1.5"),
    ],
    ids=[
        "decimal-comma-read-as-thousands",
        "misplaced-thousands",
        "point-read-as-thousands",
        "point-with-decimal-comma",
    ],
)
def test_number_refuses_separators_of_the_other_convention(tmp_path, template, spec, raw):
    """Separators that do not group digits in threes are not silently dropped (1,5 is not 15)."""
    m = migrate(
        tmp_path,
        template,
        "opportunities",
        {"amount": f"{{column: v, transform: {spec}}}"},
        ["id", "v", "acct"],
        [["1", raw, "A1"]],
    )
    assert "1" not in m.rows, f"{raw!r} loaded as {m.rows['1']['amount']}"
    assert m.reasons("1") == f"amount: '{raw}' is not a number"


def test_regex_without_a_group_takes_the_whole_match_or_is_refused(tmp_path, template):
    """A pattern with no group must not reject every value as 'does not match'."""
    spec = r"{column: v, transform: {regex: '^[A-Z]{2}\d{4}$'}}"
    (tmp_path / "source.csv").write_text("id,v\n1,AB1234\n", encoding="utf-8")
    mapping = tmp_path / "case.yaml"
    mapping.write_text(
        mapping_text("contacts", {"title": spec}, "id", None, "{kind: csv, path: source.csv}"), encoding="utf-8"
    )
    refused = cli("migrate", "plan", str(mapping))
    if refused.exit_code == 2:  # refusing the pattern when the mapping loads is fine too
        assert "group" in refused.stderr and refused.stderr.startswith("Error: ")
        return
    m = migrate(tmp_path, template, "contacts", {"title": spec}, ["id", "v"], [["1", "AB1234"]])
    assert [r["reasons"] for r in m.rejects] == []
    assert m.value("title") == "AB1234"


def test_empty_strings_from_a_database_are_empty_values(tmp_path, template):
    """Legacy databases store '' where they mean nothing; it must not fail a date, bool or number."""
    import sqlite3

    con = sqlite3.connect(tmp_path / "legacy.sqlite")
    con.execute("CREATE TABLE T (ID TEXT, NAME TEXT, BORN TEXT, OPT TEXT, MAIL TEXT)")
    con.execute("INSERT INTO T VALUES ('1', 'Li', '', '', ''), ('2', 'Wang', '1985-07-09', 'yes', 'w@x.cn')")
    con.commit()
    con.close()
    fields = {
        "full_name": "NAME",
        "birth_date": "{column: BORN, transform: {date: ['%Y-%m-%d']}}",
        "consent_to_contact": "{column: OPT, transform: bool}",
        "email": "{column: MAIL, transform: email}",
    }
    m = migrate(
        tmp_path,
        template,
        "contacts",
        fields,
        ["unused"],
        [],
        key="ID",
        source="{kind: sql, url: 'sqlite:///legacy.sqlite', table: T}",
    )
    assert [r["reasons"] for r in m.rejects] == []
    assert (m.value("birth_date"), m.value("consent_to_contact"), m.value("email")) == (None, None, None)
    assert m.value("birth_date", "2") == dt.date(1985, 7, 9)


# --- fields reading several columns ------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        ("Zhang", "San", "Zhang San"),
        (" Zhang ", "", "Zhang"),
        ("", "San", "San"),
    ],
    ids=["both", "last-empty", "first-empty"],
)
def test_columns_with_a_separator(tmp_path, template, first, last, expected):
    m = migrate(
        tmp_path,
        template,
        "contacts",
        {"full_name": "{columns: [first, last], sep: ' '}"},
        ["id", "first", "last"],
        [["1", first, last]],
    )
    assert m.value("full_name") == expected


def test_columns_all_empty_is_no_value(tmp_path, template):
    m = migrate(
        tmp_path,
        template,
        "contacts",
        {"full_name": "{columns: [first, last]}"},
        ["id", "first", "last"],
        [["1", "", " "]],
    )
    assert m.reasons("1") == "full_name: required value is missing"


@pytest.mark.parametrize(
    ("city", "district", "expected"),
    [
        ("Beijing", "Haidian", "Beijing / Haidian"),
        ("Beijing", "", "Beijing"),
    ],
    ids=["both", "other-column-empty"],
)
def test_concat(tmp_path, template, city, district, expected):
    m = migrate(
        tmp_path,
        template,
        "contacts",
        {"address": "{column: city, transform: {concat: {column: district, sep: ' / '}}}"},
        ["id", "city", "district"],
        [["1", city, district]],
    )
    assert m.value("address") == expected


# --- phones with a region per row --------------------------------------------------------------


def test_phone_region_column(tmp_path, template):
    m = migrate(
        tmp_path,
        template,
        "contacts",
        {"phone": "{column: tel, transform: {phone: {region: CN, region_column: cc}}}"},
        ["id", "tel", "cc"],
        [
            ["1", "030 12345678", "DE"],
            ["2", "010 62345678", ""],
            ["3", "(212) 736-4521", "us"],
            ["4", "010 62345678", "ZZ"],
        ],
    )
    assert {k: r["phone"] for k, r in m.rows.items()} == {
        "1": "+493012345678",
        "2": "+861062345678",
        "3": "+12127364521",
        "4": "+861062345678",
    }


def test_phone_region_field_uses_the_mapped_country(tmp_path, template):
    fields = {
        "country": "{column: land, transform: strip, map: {中国: CN, 德国: DE, 美国: US}}",
        "phone": "{column: tel, transform: {phone: {region: CN, region_field: country}}}",
    }
    m = migrate(
        tmp_path,
        template,
        "contacts",
        fields,
        ["id", "tel", "land"],
        [["1", "030 12345678", "德国"], ["2", "010 62345678", "中国"], ["3", "(212) 736-4521", " 美国 "]],
    )
    assert {k: (r["country"], r["phone"]) for k, r in m.rows.items()} == {
        "1": ("DE", "+493012345678"),
        "2": ("CN", "+861062345678"),
        "3": ("US", "+12127364521"),
    }


# --- on_error: warn ----------------------------------------------------------------------------


def test_on_error_warn_loads_the_row_with_the_field_empty(tmp_path, template):
    fields = {
        "mobile": "{column: tel, transform: {phone: {region: CN}}, on_error: warn}",
        "email": "{column: mail, transform: email, on_error: warn}",
    }
    m = migrate(
        tmp_path,
        template,
        "contacts",
        fields,
        ["id", "tel", "mail"],
        [["1", "12345", "bad address"], ["2", "13800138000", "a@b.cn"], ["3", "999", "c@d.cn"]],
    )
    assert m.rejects == []
    assert m.counts["inserted"] == 3 and m.counts["warnings"] == 2  # rows with at least one warning
    assert (m.value("mobile", "1"), m.value("email", "1")) == (None, None)
    assert (m.value("mobile", "2"), m.value("email", "2")) == ("+8613800138000", "a@b.cn")
    assert (m.value("mobile", "3"), m.value("email", "3")) == (None, "c@d.cn")


def test_warn_on_one_field_does_not_hide_a_reject_on_another(tmp_path, template):
    fields = {
        "mobile": "{column: tel, transform: {phone: {region: CN}}, on_error: warn}",
        "email": "{column: mail, transform: email}",
    }
    m = migrate(tmp_path, template, "contacts", fields, ["id", "tel", "mail"], [["1", "12345", "bad"]])
    assert m.reasons("1") == "email: 'bad' is not an email address"


# --- row checks: keys, required fields, references ---------------------------------------------


def test_required_field_missing(tmp_path, template):
    m = migrate(tmp_path, template, "contacts", {"full_name": "name"}, ["id", "name"], [["1", ""], ["2", "Li"]])
    assert m.reasons("1") == "full_name: required value is missing"
    assert m.counts == {**m.counts, "inserted": 1, "rejected": 1}


def test_a_failing_required_field_gives_both_reasons(tmp_path, template):
    m = migrate(
        tmp_path,
        template,
        "contacts",
        {"full_name": "{column: name, transform: {regex: '^Mr (.+)$'}}"},
        ["id", "name"],
        [["1", "Li"]],
    )
    assert m.reasons("1") == "full_name: 'Li' does not match ^Mr (.+)$; full_name: required value is missing"


def test_every_reason_of_a_row_is_listed(tmp_path, template):
    fields = {"email": "{column: mail, transform: email}", "birth_date": "born", "country": "cc"}
    m = migrate(tmp_path, template, "contacts", fields, ["id", "mail", "born", "cc"], [["1", "x", "1/2/3", "CHN"]])
    assert m.reasons("1") == (
        "email: 'x' is not an email address; "
        "birth_date: '1/2/3' is not a date (YYYY-MM-DD); add a date transform with its format; "
        "country: 'CHN' is longer than 2 characters"
    )


def test_duplicate_legacy_key_rejects_the_second_naming_the_first(tmp_path, template):
    m = migrate(
        tmp_path,
        template,
        "contacts",
        {"full_name": "name"},
        ["id", "name"],
        [["7", "First"], ["8", "Other"], [" 7 ", "Second"]],
    )
    assert m.value("full_name", "7") == "First"
    assert m.counts["inserted"] == 2 and m.counts["rejected"] == 1
    assert m.rejects[0]["row_number"] == "4"
    assert m.reasons("7") == "duplicate legacy key '7' (first at row 2)"


def test_missing_legacy_key(tmp_path, template):
    m = migrate(tmp_path, template, "contacts", {"full_name": "name"}, ["id", "name"], [["", "Nobody"], ["2", "Li"]])
    assert m.counts["inserted"] == 1 and m.counts["rejected"] == 1
    (reject,) = m.rejects
    assert reject["legacy_key"] is None and reject["row_number"] == "2"
    assert reject["reasons"] == "missing legacy key"
    assert json.loads(reject["raw_json"]) == {"id": None, "name": "Nobody"}


def test_key_of_several_columns(tmp_path, template):
    m = migrate(
        tmp_path,
        template,
        "contacts",
        {"full_name": "name"},
        ["branch", "num", "name"],
        [["BJ", "1", "Li"], ["SH", "1", "Wang"], ["SH", "", "Zhao"]],
        key="[branch, num]",
    )
    assert set(m.rows) == {"BJ|1", "SH|1"}
    assert m.rejects[0]["reasons"] == "missing legacy key"


def test_unresolved_reference_names_the_key(tmp_path, template):
    m = migrate(
        tmp_path,
        template,
        "contacts",
        {"account": "{ref: accounts, column: acct}"},
        ["id", "acct"],
        [["1", "A1"], ["2", "C9999"], ["3", ""]],
    )
    assert m.reasons("2") == "account_id: 'C9999' not found in accounts (source accts)"
    assert m.rows["3"]["account_id"] is None  # an optional reference may be empty
    assert m.rows["1"]["account_id"] is not None


def test_reference_to_a_parent_rejected_in_the_same_run(tmp_path, template):
    # accounts.csv row A2 has no name, so it is rejected; its contacts say why they cannot load
    m = migrate(
        tmp_path, template, "contacts", {"account": "{ref: accounts, column: acct}"}, ["id", "acct"], [["1", "A2"]]
    )
    assert m.reasons("1") == "account_id: 'A2' of accounts (source accts) was rejected in this run"


def test_required_reference_missing(tmp_path, template):
    m = migrate(tmp_path, template, "opportunities", {}, ["id", "acct"], [["1", ""], ["2", "A1"]])
    assert m.reasons("1") == "account_id: required reference is missing"
    assert m.counts["inserted"] == 1


# --- filters and the accounting of every row ------------------------------------------------


def test_filter_counts_rows_out_of_scope_as_filtered(tmp_path, template):
    rows = [["1", "Li", "active"], ["2", "Wang", "deleted"], ["3", "", "active"], ["4", "Zhao", "DELETED"]]
    m = migrate(
        tmp_path,
        template,
        "contacts",
        {"full_name": "name"},
        ["id", "name", "status"],
        rows,
        filter_="lower(status) <> 'deleted'",
    )
    assert m.counts == {**m.counts, "extracted": 4, "filtered": 2, "inserted": 1, "rejected": 1}
    assert set(m.rows) == {"1"} and [r["legacy_key"] for r in m.rejects] == ["3"]


def test_filter_on_a_number_needs_a_cast(tmp_path, template):
    rows = [["1", "Li", "5"], ["2", "Wang", "50"], ["3", "Zhao", "n/a"]]
    m = migrate(
        tmp_path,
        template,
        "contacts",
        {"full_name": "name"},
        ["id", "name", "score"],
        rows,
        filter_="TRY_CAST(score AS INTEGER) >= 10",
    )
    assert set(m.rows) == {"2"} and m.counts["filtered"] == 2


def test_csv_header_row_and_row_numbers(tmp_path, template):
    (tmp_path / "titled.csv").write_text("Contact export\nexported 2021-03-04\nid,name\n1,Li\n2,\n", encoding="utf-8")
    m = migrate(
        tmp_path,
        template,
        "contacts",
        {"full_name": "name"},
        ["id", "name"],
        [],
        source="{kind: csv, path: titled.csv, header_row: 3}",
    )
    assert set(m.rows) == {"1"}
    assert m.rejects[0]["row_number"] == "5"  # the line of the file
