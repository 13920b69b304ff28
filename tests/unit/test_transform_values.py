"""Every transform, the implicit cast to the target type and the row checks, on a polars frame.

Each case writes a tiny CSV and a mapping, then extracts, shapes and checks it in memory as a
run does before it writes anything (tests/unit/conftest.py ``shape_case``): the typed value
a row would load with, or the reasons it would be rejected with.  No database, no CLI;
tests/integration/test_transforms.py runs a handful of these cases through ``crmkit migrate run``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from tests.unit.conftest import apply_transform, shape_case, transform_names

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


def _loads_as(value: Any, expected: Any) -> bool:
    """The shaped value is what the target column gets (a decimal is still a float in the frame)."""
    if isinstance(expected, Decimal):
        return isinstance(value, float | Decimal) and Decimal(str(value)) == expected
    return value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("entity", "field", "spec", "raw", "outcome", "column"), CASES)
def test_one_value(tmp_path, entity, field, spec, raw, outcome, column):
    m = shape_case(tmp_path, entity, {field: spec}, ["id", "v", "acct"], [["1", raw, "A1"]])
    if isinstance(outcome, Loads):
        assert m.rows["1"]["reasons"] == []
        value = m.value(column)
        assert _loads_as(value, outcome.value), f"{value!r} ({type(value).__name__}), expected {outcome.value!r}"
    else:
        assert m.reasons("1") == outcome.reason


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
def test_number_refuses_separators_of_the_other_convention(tmp_path, spec, raw):
    """Separators that do not group digits in threes are not silently dropped (1,5 is not 15)."""
    m = shape_case(
        tmp_path,
        "opportunities",
        {"amount": f"{{column: v, transform: {spec}}}"},
        ["id", "v", "acct"],
        [["1", raw, "A1"]],
    )
    assert m.reasons("1") == f"amount: '{raw}' is not a number", f"{raw!r} shaped as {m.value('amount')}"


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
def test_columns_with_a_separator(tmp_path, first, last, expected):
    m = shape_case(
        tmp_path,
        "contacts",
        {"full_name": "{columns: [first, last], sep: ' '}"},
        ["id", "first", "last"],
        [["1", first, last]],
    )
    assert m.value("full_name") == expected


def test_columns_all_empty_is_no_value(tmp_path):
    m = shape_case(
        tmp_path, "contacts", {"full_name": "{columns: [first, last]}"}, ["id", "first", "last"], [["1", "", " "]]
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
def test_concat(tmp_path, city, district, expected):
    m = shape_case(
        tmp_path,
        "contacts",
        {"address": "{column: city, transform: {concat: {column: district, sep: ' / '}}}"},
        ["id", "city", "district"],
        [["1", city, district]],
    )
    assert m.value("address") == expected


# --- phones with a region per row --------------------------------------------------------------


def test_phone_region_column(tmp_path):
    m = shape_case(
        tmp_path,
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


def test_phone_region_field_uses_the_mapped_country(tmp_path):
    fields = {
        "country": "{column: land, transform: strip, map: {中国: CN, 德国: DE, 美国: US}}",
        "phone": "{column: tel, transform: {phone: {region: CN, region_field: country}}}",
    }
    m = shape_case(
        tmp_path,
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


# --- on_error: warn and the reasons of a row ---------------------------------------------------


def test_on_error_warn_keeps_the_row_with_the_field_empty(tmp_path):
    fields = {
        "mobile": "{column: tel, transform: {phone: {region: CN}}, on_error: warn}",
        "email": "{column: mail, transform: email, on_error: warn}",
    }
    m = shape_case(
        tmp_path,
        "contacts",
        fields,
        ["id", "tel", "mail"],
        [["1", "12345", "bad address"], ["2", "13800138000", "a@b.cn"], ["3", "999", "c@d.cn"]],
    )
    assert [r["reasons"] for r in m.rows.values()] == [[], [], []]
    assert m.rows["1"]["warnings"] == [
        "mobile: '12345' is not a phone number",
        "email: 'bad address' is not an email address",
    ]
    assert (m.value("mobile", "1"), m.value("email", "1")) == (None, None)
    assert (m.value("mobile", "2"), m.value("email", "2")) == ("+8613800138000", "a@b.cn")
    assert (m.value("mobile", "3"), m.value("email", "3")) == (None, "c@d.cn")


def test_warn_on_one_field_does_not_hide_a_reject_on_another(tmp_path):
    fields = {
        "mobile": "{column: tel, transform: {phone: {region: CN}}, on_error: warn}",
        "email": "{column: mail, transform: email}",
    }
    m = shape_case(tmp_path, "contacts", fields, ["id", "tel", "mail"], [["1", "12345", "bad"]])
    assert m.reasons("1") == "email: 'bad' is not an email address"


def test_a_failing_required_field_gives_both_reasons(tmp_path):
    m = shape_case(
        tmp_path,
        "contacts",
        {"full_name": "{column: name, transform: {regex: '^Mr (.+)$'}}"},
        ["id", "name"],
        [["1", "Li"]],
    )
    assert m.reasons("1") == "full_name: 'Li' does not match ^Mr (.+)$; full_name: required value is missing"


def test_every_reason_of_a_row_is_listed(tmp_path):
    fields = {"email": "{column: mail, transform: email}", "birth_date": "born", "country": "cc"}
    m = shape_case(tmp_path, "contacts", fields, ["id", "mail", "born", "cc"], [["1", "x", "1/2/3", "CHN"]])
    assert m.reasons("1") == (
        "email: 'x' is not an email address; "
        "birth_date: '1/2/3' is not a date (YYYY-MM-DD); add a date transform with its format; "
        "country: 'CHN' is longer than 2 characters"
    )


def test_filter_leaves_rows_out_of_scope(tmp_path):
    rows = [["1", "Li", "5"], ["2", "Wang", "50"], ["3", "Zhao", "n/a"]]
    m = shape_case(
        tmp_path,
        "contacts",
        {"full_name": "name"},
        ["id", "name", "score"],
        rows,
        filter_="TRY_CAST(score AS INTEGER) >= 10",
    )
    assert set(m.rows) == {"2"} and m.filtered == 2


# --- one transform on a column -----------------------------------------------------------------


def test_a_column_is_transformed_value_by_value(tmp_path):
    out, failed = apply_transform("email", None, [" A@B.cn ", "nope", None, "ｃ＠ｄ．ｃｎ"])
    assert out == ["a@b.cn", None, None, "c@d.cn"]
    assert failed == [False, True, False, False]  # no value is not a failure


def test_a_step_that_cannot_fail_never_does():
    out, failed = apply_transform("collapse_spaces", None, ["  a \t b ", None])
    assert out == ["a b", None] and failed == [False, False]


def test_phone_runs_on_the_frame():
    out, failed = apply_transform("phone", {"region": "CN"}, ["010 6552 1234", "12345"])
    assert out == ["+861065521234", None] and failed == [False, True]


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("nosuch", None, "unknown transform 'nosuch' (known: "),
        ("phone", {"region": "XX"}, "phone: unknown region 'XX'"),
        ("phone", {"zone": "CN"}, "phone: unknown option(s) zone"),
        ("regex", "([a-", "invalid regular expression '([a-'"),
    ],
    ids=["unknown-name", "phone-unknown-region", "phone-unknown-option", "regex-invalid"],
)
def test_a_wrong_transform_is_refused_with_the_reason(name, args, message):
    with pytest.raises(ValueError) as err:
        apply_transform(name, args, ["x"])
    assert str(err.value).startswith(message)


def test_every_transform_the_docs_name_is_registered():
    assert {"strip", "email", "phone", "date", "datetime", "number", "integer", "map", "bool", "regex"} <= set(
        transform_names()
    )
