"""Transforms and the row checks wired end to end: through the real CLI into SQLite.

Each case writes a tiny CSV and a mapping, runs ``crmkit migrate run`` into a copy of an
already-upgraded SQLite target, and looks at what a user would: the row in the target,
the counts in the JSON summary and the reasons in ``rejects.csv``.  Every transform and cast,
value by value, is tested on a frame in tests/unit/test_transform_values.py; here a handful
of those cases and what needs the run itself (ids, references, counts, rejects.csv).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import create_engine, select

from crmkit.schema.models import ENTITY_MODELS
from tests.conftest import cli, mapping_text, write_case
from tests.unit.test_transform_values import CASES, Loads


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
    mapping = write_case(tmp_path, entity, fields, header, rows, key, filter_, source)
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


# --- one field, one value: a handful through the CLI (the whole table: tests/unit/test_transform_values.py)

#: one loaded and one rejected case of each kind of step, to prove the CLI wiring
WIRING = {
    "nfkc-full-width-to-half-width",
    "map-unlisted-without-default-fails",
    "bool-chinese-yes",
    "date-second-format",
    "datetime-excel-serial-with-time",
    "number-thousands-separators",
    "integer-fraction-fails",
    "email-invalid-fails",
    "phone-default-region",
    "string-too-long-fails",
    "cast-decimal",
    "const-boolean",
}


@pytest.mark.parametrize(("entity", "field", "spec", "raw", "outcome", "column"), [c for c in CASES if c.id in WIRING])
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


# --- row checks: keys, required fields, references ---------------------------------------------


def test_required_field_missing(tmp_path, template):
    m = migrate(tmp_path, template, "contacts", {"full_name": "name"}, ["id", "name"], [["1", ""], ["2", "Li"]])
    assert m.reasons("1") == "full_name: required value is missing"
    assert m.counts == {**m.counts, "inserted": 1, "rejected": 1}


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
