"""The mapping language: what it refuses when it loads, and the features the reference promises.

Mistakes are one line, ``Error: FILE:LINE: where: what``, exit code 2, and nothing is
written.  (Malformed YAML, unknown transforms and keys, missing files and columns, encodings
and connections are in test_bad_input.py.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import cli

BASE = """\
version: 1
name: lang
sources:
  accts:  {kind: csv, path: accts.csv}
  people: {kind: csv, path: people.csv}
entities:
  accounts:
    from: accts
    key: acct_no
    fields:
      name: acct_name
  contacts:
    from: people
    key: id
    fields:
      account: {ref: accounts, column: acct}
      full_name: {column: name, transform: strip}
      email: {column: mail, transform: email}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "accts.csv").write_text("acct_no,acct_name\nA1,Acme\nA2,Globex\n", encoding="utf-8")
    (tmp_path / "people.csv").write_text(
        "id,name,acct,mail,cc\n1,Li,A1,li@x.cn,CN\n2,Wang,A2,wang@x.cn,DE\n", encoding="utf-8"
    )
    (tmp_path / "people.tsv").write_text('id\tname\n1\tLi "the boss"\n', encoding="utf-8")
    return tmp_path


def write(project: Path, text: str, name: str = "lang.yaml") -> Path:
    path = project / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def run(project: Path, mapping: Path, db: str = "crm.db", *args: str):
    return cli("migrate", "run", str(mapping), "--target", f"sqlite:///{project / db}", "--json", *args)


ERRORS = [
    pytest.param(
        "{column: name, transform: strip}",
        "{column: name, transform: date}",
        "transform 'date' needs arguments, e.g. {date: ...}",
        id="transform-needs-arguments",
    ),
    pytest.param(
        "{column: name, transform: strip}",
        "{column: name, transform: {split: {sep: ' '}}}",
        "split takes {sep: ' ', index: N}",
        id="transform-with-wrong-arguments",
    ),
    pytest.param(
        "{column: name, transform: strip}",
        "{column: name, transform: {regex: '(unclosed'}}",
        "invalid regular expression '(unclosed'",
        id="invalid-regex",
    ),
    pytest.param(
        "{column: name, transform: strip}",
        "{column: name, transform: {date: [1, 2]}}",
        "date takes a list of formats",
        id="date-formats-not-text",
    ),
    pytest.param(
        "{column: mail, transform: email}",
        "{column: mail, transform: {phone: {region: XX}}}",
        "phone: unknown region 'XX' (an ISO 3166 code such as CN, US, DE)",
        id="phone-unknown-region",
    ),
    pytest.param(
        "{column: mail, transform: email}",
        "{column: mail, transform: {phone: {country: CN}}}",
        "phone: unknown option(s) country (region, region_column, region_field)",
        id="phone-unknown-option",
    ),
    pytest.param(
        "email: {column: mail, transform: email}",
        "email: {ref: accounts, column: mail}",
        "email is not a reference; drop ref:",
        id="ref-on-a-plain-field",
    ),
    pytest.param(
        "{ref: accounts, column: acct}",
        "{ref: users, column: acct}",
        "account_id refers to accounts, not users",
        id="ref-to-the-wrong-entity",
    ),
    pytest.param(
        "account: {ref: accounts, column: acct}",
        "account: acct",
        "account_id refers to accounts: write {ref: accounts, column: ...}",
        id="reference-without-ref",
    ),
    pytest.param(
        "{ref: accounts, column: acct}",
        "{ref: accounts}",
        "a ref needs the column holding the legacy key",
        id="ref-without-a-column",
    ),
    pytest.param(
        "      email: {column: mail",
        "      account_id: {ref: accounts, column: acct}\n      email: {column: mail",
        "account_id is mapped twice",
        id="field-mapped-twice-by-both-names",
    ),
    pytest.param(
        "      full_name: {column: name, transform: strip}\n",
        "",
        "required field(s) of contacts not mapped: full_name",
        id="required-field-not-mapped",
    ),
    pytest.param(
        "{column: name, transform: strip}",
        "{column: name, const: x}",
        "give one of column, columns or const, not column and const",
        id="column-and-const",
    ),
    pytest.param(
        "{column: name, transform: strip}", "{transform: strip}", "give a column, columns or const", id="no-input"
    ),
    pytest.param(
        "      email: {column: mail",
        "      nickname: x\n      email: {column: mail",
        "'nickname' is not a field of contacts (fields: account_id, first_name",
        id="unknown-field",
    ),
    pytest.param(
        "  contacts:",
        "  kontakte:",
        "unknown entity (known: departments, users, accounts, contacts,",
        id="unknown-entity",
    ),
    pytest.param(
        "from: people", "from: persons", "unknown source 'persons' (sources: accts, people)", id="unknown-source"
    ),
    pytest.param(
        "    key: id\n", '    key: id\n    filter: "name ==="\n', "filter is not a SQL condition", id="filter-not-sql"
    ),
    pytest.param(
        "{kind: csv, path: people.csv}",
        "{kind: csv, path: people.csv, encoding: utf9}",
        "unknown encoding 'utf9' (try one of utf-8, utf-8-sig, gb18030",
        id="unknown-encoding",
    ),
    pytest.param(
        "{kind: csv, path: people.csv}",
        "{kind: csv, path: people.csv, header_row: 0}",
        "header_row: Input should be greater than or equal to 1",
        id="header-row-zero",
    ),
    pytest.param(
        "{kind: csv, path: people.csv}",
        "{kind: json, path: people.csv}",
        "does not match any of the expected tags: 'csv', 'tsv', 'xlsx', 'sql'",
        id="unknown-source-kind",
    ),
    pytest.param(
        "{kind: csv, path: people.csv}",
        "{kind: csv, path: people.csv, sheet: 1}",
        "sheet: unknown key",
        id="key-of-another-source-kind",
    ),
    pytest.param(
        "{kind: csv, path: people.csv}",
        "{kind: sql, url: 'sqlite:///x.db', table: T, query: SELECT 1}",
        "give exactly one of table or query",
        id="sql-table-and-query",
    ),
    pytest.param(
        "{kind: csv, path: people.csv}",
        "{kind: sql, url: 'not a url', table: T}",
        "not a database URL",
        id="sql-url-unparseable",
    ),
    pytest.param("version: 1", "version: 2", "version: Input should be 1", id="unknown-version"),
    pytest.param("name: lang", "name: my lang", "name: String should match pattern", id="name-with-a-space"),
    pytest.param("name: lang", "name: lang\ncolour: blue", "colour: unknown key", id="unknown-top-level-key"),
]


@pytest.mark.parametrize(("old", "new", "message"), ERRORS)
def test_mistakes_are_refused_when_the_mapping_loads(project, old, new, message):
    mapping = write(project, edited(old, new))
    res = run(project, mapping)
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"Error: {mapping}:"), err
    assert message in err, err
    line = int(err.split(f"{mapping}:", 1)[1].split(":", 1)[0])
    assert line >= 1
    assert not (project / "crm.db").exists(), "a refused mapping writes nothing"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "    key: id\n",
            "    key: ident\n",
            "source people has no column 'ident' (its columns: id, name, acct, mail, cc)",
        ),
        (
            "{column: name, transform: strip}",
            "{column: name, transform: {concat: {column: surname}}}",
            "source people has no column 'surname'",
        ),
        (
            "{column: mail, transform: email}",
            "{column: mail, transform: {phone: {region: CN, region_column: land}}}",
            "source people has no column 'land'",
        ),
        ("    key: id\n", "    key: id\n    filter: \"status = 'x'\"\n", "filter names a column the source lacks"),
    ],
    ids=["key-column", "concat-column", "region-column", "filter-column"],
)
def test_columns_the_source_lacks_are_named(project, old, new, message):
    mapping = write(project, edited(old, new))
    res = run(project, mapping)
    assert res.exit_code == 2 and message in res.stderr, res.stderr
    assert re.match(rf"Error: {re.escape(str(mapping))}(:\d+)?: entities\.contacts", res.stderr), res.stderr
    assert not (project / "crm.db").exists()


def test_max_rejects_that_is_not_a_number(project):
    res = run(project, write(project, BASE.replace("name: lang\n", "name: lang\nmax_rejects: lots\n")))
    assert res.exit_code == 2
    assert "lang.yaml:3: max_rejects: 'lots' is neither a count (10) nor a percentage (0.5%)" in res.stderr
    assert not (project / "crm.db").exists()


def test_shorthand_names_and_key_synonym_mean_the_same(project):
    long_form = write(project, BASE, "long.yaml")
    short = (
        BASE.replace("name: acct_name", "name: {column: acct_name}")
        .replace("account: {ref: accounts, column: acct}", "account_id: {ref: accounts, key: acct}")
        .replace("name: lang", "name: short")
    )
    a, b = run(project, long_form, "a.db"), run(project, write(project, short, "short.yaml"), "b.db")
    assert a.exit_code == b.exit_code == 0, a.output + b.output
    assert json.loads(a.output)["entities"] == json.loads(b.output)["entities"]


def test_parents_load_first_whatever_the_order_in_the_file(project):
    contacts_first = BASE.replace(
        "  accounts:\n    from: accts\n    key: acct_no\n    fields:\n      name: acct_name\n", ""
    )
    contacts_first += "  accounts:\n    from: accts\n    key: acct_no\n    fields:\n      name: acct_name\n"
    res = run(project, write(project, contacts_first))
    assert res.exit_code == 0, res.output
    assert [f["entity"] for f in json.loads(res.output)["feeds"]] == ["accounts", "contacts"]
    assert json.loads(res.output)["entities"]["contacts"]["inserted"] == 2


def test_a_source_no_feed_uses_is_not_read(project):
    text = BASE.replace("sources:\n", "sources:\n  old: {kind: xlsx, path: gone.xlsx}\n")
    res = run(project, write(project, text))
    assert res.exit_code == 0, res.stderr


def test_reference_to_rows_another_mapping_loaded(project):
    accounts_only = (
        "version: 1\nname: accts\nsources:\n  accts: {kind: csv, path: accts.csv}\nentities:\n"
        "  accounts:\n    from: accts\n    key: acct_no\n    fields:\n      name: acct_name\n"
    )
    contacts_only = BASE.replace(
        "  accounts:\n    from: accts\n    key: acct_no\n    fields:\n      name: acct_name\n", ""
    )
    without_source = write(project, contacts_only, "contacts.yaml")
    res = run(project, without_source)
    assert res.exit_code == 2
    assert "accounts has no feed in this mapping: say whose legacy keys these are with source: NAME" in res.stderr
    with_source = write(
        project,
        contacts_only.replace("{ref: accounts, column: acct}", "{ref: accounts, column: acct, source: accts}"),
        "contacts.yaml",
    )
    alone = run(project, with_source, "alone.db", "--max-rejects", "100%")
    assert json.loads(alone.output)["entities"]["contacts"]["rejected"] == 2  # nothing to point at yet
    assert run(project, write(project, accounts_only, "accounts.yaml"), "both.db").exit_code == 0
    after = run(project, with_source, "both.db")
    assert after.exit_code == 0, after.output
    assert json.loads(after.output)["entities"]["contacts"]["inserted"] == 2


def test_several_feeds_of_one_entity_and_a_reference_to_them(project):
    (project / "desk.csv").write_text("ticket,contact,title\nK1,1,Broken\nK2,D7,Slow\n", encoding="utf-8")
    (project / "desk_people.csv").write_text("pid,who\nD7,Zhao\n", encoding="utf-8")
    text = BASE.replace(
        "sources:\n",
        "sources:\n  desk: {kind: csv, path: desk.csv}\n  desk_people: {kind: csv, path: desk_people.csv}\n",
    )
    text = text.replace(
        "  contacts:\n    from: people",
        "  contacts:\n  - from: desk_people\n    key: pid\n    fields:\n      full_name: who\n  - from: people",
    )
    text += (
        "  cases:\n    from: desk\n    key: ticket\n    fields:\n      subject: title\n"
        "      status: {const: new}\n      priority: {const: low}\n"
        "      contact: {ref: contacts, column: contact}\n"
    )
    res = run(project, write(project, text))
    assert res.exit_code == 2
    assert "contacts has several feeds: say whose legacy keys these are with source: NAME" in res.stderr
    fixed = text.replace("{ref: contacts, column: contact}", "{ref: contacts, column: contact, source: desk_people}")
    res = run(project, write(project, fixed), "crm.db", "--max-rejects", "1", "--report", str(project / "rep"))
    assert res.exit_code == 0, res.output
    counts = json.loads(res.output)["entities"]
    assert counts["contacts"]["inserted"] == 3 and counts["cases"]["inserted"] == 1
    assert "contact_id: '1' not found in contacts (source desk_people)" in (project / "rep" / "rejects.csv").read_text(
        encoding="utf-8"
    )


def test_tsv_with_quoting_turned_off(project):
    text = (
        "version: 1\nname: tsv\nsources:\n  p: {kind: tsv, path: people.tsv, quote: ''}\nentities:\n"
        "  contacts:\n    from: p\n    key: id\n    fields:\n      full_name: name\n"
    )
    res = run(project, write(project, text), "crm.db", "--report", str(project / "rep"))
    assert res.exit_code == 0, res.output + res.stderr
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql

    engine = create_engine(f"sqlite:///{project / 'crm.db'}")
    with engine.connect() as conn:
        assert conn.execute(sql("SELECT full_name FROM contacts")).scalar() == 'Li "the boss"'
    engine.dispose()


def test_max_rejects_counts_and_percentages(project):
    (project / "people.csv").write_text(
        "id,name,acct,mail,cc\n1,Li,A1,bad,CN\n2,Wang,A2,wang@x.cn,DE\n", encoding="utf-8"
    )
    mapping = write(project, BASE)
    assert run(project, mapping, "a.db").exit_code == 1  # default 0
    assert run(project, mapping, "b.db", "--max-rejects", "1").exit_code == 0
    assert run(project, mapping, "c.db", "--max-rejects", "25%").exit_code == 0  # 1 of 4 extracted rows
    assert run(project, mapping, "d.db", "--max-rejects", "24.9%").exit_code == 1
    with_limit = write(project, BASE.replace("name: lang\n", "name: lang\nmax_rejects: 1\n"))
    assert run(project, with_limit, "e.db").exit_code == 0
    assert run(project, with_limit, "f.db", "--max-rejects", "0").exit_code == 1  # the option wins


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("{const: [1, 2]}", "const: give one value (text, a number, true/false or a date), not a list"),
        ("{const: {a: 1}}", "const: give one value (text, a number, true/false or a date), not a mapping"),
        ("{column: cc, default: [x]}", "default: give one value"),
        ("{column: cc, map: {CN: China, DE: NO}}", "'DE' maps to False: YAML reads no/yes/on/off"),
        ("{column: cc, map: {NO: Norway}}", "the key False is a YAML boolean"),
        ("{column: cc, map: {~: x}}", "the key None is a YAML null"),
        ("{const: yes}", "const is True: YAML reads"),
        ("{column: cc, default: off}", "default is False: YAML reads"),
        ("{column: cc, map: {CN: [a]}}", "'CN' maps to a list or mapping"),
    ],
    ids=[
        "const-list",
        "const-mapping",
        "default-list",
        "map-value-no",
        "map-key-no",
        "map-key-null",
        "const-yes",
        "default-off",
        "map-value-list",
    ],
)
def test_mapping_shapes_the_docs_allow_but_cannot_mean_are_refused_with_their_line(project, spec, says):
    mapping = write(
        project,
        edited(
            "      email: {column: mail, transform: email}\n",
            f"      email: {{column: mail, transform: email}}\n      address: {spec}\n",
        ),
    )
    res = cli("migrate", "plan", str(mapping))
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in res.output, err
    assert f"{mapping}:19:" in err and says in err, err


@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_reference_by_its_short_name_whose_map_fails_rejects_the_row(project, command):
    """`account:` (not account_id) with a failing map raised KeyError: 'account_id' in plan and run."""
    mapping = write(
        project,
        edited("account: {ref: accounts, column: acct}", "account: {ref: accounts, column: acct, map: {A1: A1}}"),
    )
    if command == "plan":
        res = cli("migrate", "plan", str(mapping))
        assert res.exit_code == 0, res.output + res.stderr
        assert "account_id: 'A2' is not in the value map" in res.output
        return
    res = run(project, mapping, "short.db", "--max-rejects", "100%", "--json")
    assert res.exit_code == 0, res.output + res.stderr
    contacts = json.loads(res.output)["entities"]["contacts"]
    assert (contacts["inserted"], contacts["rejected"]) == (1, 1)
