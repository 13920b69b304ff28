"""Warnings listed like rejects, and vanished rows verify understands (issue 22, items 9 and 8).

Through the in-process CLI on SQLite and PostgreSQL: an ``on_error: warn`` value field and an
``on_error: warn`` reference are stored in crmkit_rejects with severity ``warning`` and show
in the JSON summary, warnings.csv and report.html; ``plan`` names the rows that would fail or
warn.  A legacy row deleted after a run is kept, deactivated or deleted as ``on_vanished``
says, and ``verify`` passes after each.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import cli, write_case, write_csv

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def target(request, tmp_path):
    """A fresh target per test: a SQLite file, or a fresh PostgreSQL database beside pg_url's."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crm.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(request.getfixturevalue("pg_url"))
    name = f"{base.database}_{abs(hash(str(tmp_path))) % 10**8}"
    admin = base.set(database="postgres").render_as_string(hide_password=False).replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(mapping: Path, target: str, *extra: str) -> dict:
    res = cli("migrate", "run", str(mapping), "--target", target, "--json", *extra)
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.output)


def query(target: str, sql: str) -> list[tuple]:
    engine = create_engine(target)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql)).all()]
    engine.dispose()
    return rows


def read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the people's CSV writer
    return list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))


# --- item 9: warnings listed -----------------------------------------------------------------

WARN_FIELDS = {
    "email": "{column: mail, transform: email, on_error: warn}",
    "account": "{ref: accounts, column: acct, on_error: warn}",
}
WARN_ROWS = [["1", "a@b.cn", "A1"], ["2", "不是邮箱", "A1"], ["3", "c@d.cn", "A9"], ["4", "=bad", "A2"]]


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_warnings_are_listed_in_the_table_json_csv_and_report(tmp_path, target):
    mapping = write_case(tmp_path, "contacts", WARN_FIELDS, ["id", "mail", "acct"], WARN_ROWS)
    doc = run(mapping, target, "--report", str(tmp_path / "report"))
    c = next(f for f in doc["feeds"] if f["entity"] == "contacts")
    assert (c["inserted"], c["rejected"], c["warnings"]) == (4, 0, 3)
    warned = {w["legacy_key"]: w["reasons"] for w in doc["warned_rows"]}
    assert set(warned) == {"2", "3", "4"} and all(w["severity"] == "warning" for w in doc["warned_rows"])
    assert warned["2"].startswith("email: '不是邮箱'")
    assert "account_id: 'A9' not found in accounts" in warned["3"]
    assert "email: '=bad'" in warned["4"] and "'A2' of accounts (source accts) was rejected" in warned["4"]
    # the rejects stay apart: accounts' A2 (no name) is the run's only reject
    assert [(r["entity"], r["legacy_key"], r["severity"]) for r in doc["rejected_rows"]] == [
        ("accounts", "A2", "error")
    ]
    table = query(target, "SELECT entity, legacy_key, severity FROM crmkit_rejects ORDER BY entity, legacy_key")
    assert table == [("accounts", "A2", "error"), *(("contacts", k, "warning") for k in ("2", "3", "4"))]
    # the rows loaded, the warned values and references empty
    loaded = dict(query(target, "SELECT legacy_key, account_id FROM contacts"))
    assert loaded["1"] is not None and loaded["3"] is None and loaded["4"] is None
    files = read_csv(tmp_path / "report" / "warnings.csv")
    assert [(w["legacy_key"], w["severity"]) for w in files] == [("2", "warning"), ("3", "warning"), ("4", "warning")]
    assert not any(v.startswith("=") for w in files for v in w.values())  # no live formula
    assert [r["legacy_key"] for r in read_csv(tmp_path / "report" / "rejects.csv")] == ["A2"]
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Warnings</h2>" in html and "不是邮箱" in html and 'href="warnings.csv"' in html
    # a second run: nothing changes, the warnings are listed again for that run
    again = run(mapping, target)
    c = next(f for f in again["feeds"] if f["entity"] == "contacts")
    assert (c["unchanged"], c["warnings"], len(again["warned_rows"])) == (4, 3, 3)


def test_a_warned_reference_loads_once_its_parent_arrives(tmp_path):
    target = f"sqlite:///{tmp_path / 'crm.db'}"
    mapping = write_case(tmp_path, "contacts", WARN_FIELDS, ["id", "mail", "acct"], [["1", "a@b.cn", "A9"]])
    assert run(mapping, target)["totals"]["warnings"] == 1
    (tmp_path / "accounts.csv").write_text("acct_no,acct_name\nA1,Acme\nA9,Late\n", encoding="utf-8")
    doc = run(mapping, target)
    c = next(f for f in doc["feeds"] if f["entity"] == "contacts")
    assert (c["updated"], c["warnings"]) == (1, 0)
    assert query(target, "SELECT a.legacy_key FROM contacts c JOIN accounts a ON a.id = c.account_id") == [("A9",)]
    assert cli("migrate", "verify", str(mapping), "--target", target).exit_code == 0


def test_warn_on_a_required_reference_is_refused_with_the_line(tmp_path):
    fields = {"account": "{ref: accounts, column: acct, on_error: warn}"}
    mapping = write_case(tmp_path, "opportunities", fields, ["id", "acct"], [["1", "A1"]])
    res = cli("migrate", "plan", str(mapping))
    assert res.exit_code == 2
    line = next(i for i, t in enumerate(mapping.read_text().splitlines(), 1) if "on_error: warn" in t)
    assert f"case.yaml:{line}:" in res.output and "account_id is required" in res.output
    assert "Traceback" not in res.output


def test_plan_lists_the_rows_that_would_fail_or_warn(tmp_path):
    rows = [*WARN_ROWS, ["5", "e@f.cn", "A1"], ["5", "x@y.cn", "A1"]]
    mapping = write_case(tmp_path, "contacts", WARN_FIELDS, ["id", "mail", "acct"], rows)
    doc = json.loads(cli("migrate", "plan", str(mapping), "--json").output)
    c = next(f for f in doc["feeds"] if f["entity"] == "contacts")
    assert (c["rejected_rows"], c["warning_rows"]) == (1, 3)
    issues = {(i["key"], i["severity"]): i["reasons"] for i in c["issues"]}
    assert issues[("5", "error")].startswith("duplicate legacy key '5'")
    assert "A9' not found" in issues[("3", "warning")] and "不是邮箱" in issues[("2", "warning")]
    shown = cli("migrate", "plan", str(mapping)).output
    assert "would be rejected" in shown and "不是邮箱" in shown and "(key 5) error" in shown


# --- item 8: vanished rows ---------------------------------------------------------------------


def _vanish_case(folder: Path, on_vanished: str) -> Path:
    """accounts A1..A3 (the account entity has an active flag) and contacts pointing at A1, A2."""
    write_csv(folder / "accts.csv", ["acct_no", "acct_name"], [["A1", "One"], ["A2", "Two"], ["A3", "Three"]])
    write_csv(folder / "people.csv", ["id", "name", "acct"], [["P1", "Li", "A1"], ["P2", "Wang", "A2"]])
    mapping = folder / "case.yaml"
    mapping.write_text(
        "version: 1\nname: vanish\nsources:\n"
        "  accts: {kind: csv, path: accts.csv}\n  people: {kind: csv, path: people.csv}\n"
        "entities:\n"
        f"  accounts:\n    from: accts\n    key: acct_no\n    on_vanished: {on_vanished}\n"
        "    fields:\n      name: acct_name\n"
        f"  contacts:\n    from: people\n    key: id\n    on_vanished: {on_vanished}\n"
        "    fields:\n      full_name: name\n      account: {ref: accounts, column: acct}\n",
        encoding="utf-8",
    )
    return mapping


def _delete_legacy(folder: Path) -> None:
    """A3 (no contact) and A2 with its contact P2 deleted in the legacy source."""
    write_csv(folder / "accts.csv", ["acct_no", "acct_name"], [["A1", "One"]])
    write_csv(folder / "people.csv", ["id", "name", "acct"], [["P1", "Li", "A1"]])


def _verify(mapping: Path, target: str) -> dict:
    res = cli("migrate", "verify", str(mapping), "--target", target, "--json")
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.output)


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
@pytest.mark.parametrize("on_vanished", ["keep", "deactivate", "delete"])
def test_verify_passes_after_a_legacy_delete(tmp_path, target, on_vanished):
    mapping = _vanish_case(tmp_path, on_vanished)
    run(mapping, target)
    _delete_legacy(tmp_path)
    doc = run(mapping, target)
    acc = next(f for f in doc["feeds"] if f["entity"] == "accounts")
    assert acc["vanished"] == 2
    checked = _verify(mapping, target)
    assert checked["ok"], checked["mismatches"]
    outcomes = {(v["entity"], v["legacy_key"]): v["outcome"] for v in checked["vanished"]}
    accounts = dict(query(target, "SELECT legacy_key, active FROM accounts"))
    if on_vanished == "keep":
        assert outcomes == {
            ("accounts", "A2"): "vanished",
            ("accounts", "A3"): "vanished",
            ("contacts", "P2"): "vanished",
        }
        assert set(accounts) == {"A1", "A2", "A3"}
    elif on_vanished == "deactivate":
        assert {k: bool(v) for k, v in accounts.items()} == {"A1": True, "A2": False, "A3": False}
        assert set(outcomes.values()) == {"deactivated"} and acc["deactivated"] == 2
    else:  # children first: P2 goes, then A2 and A3
        assert set(accounts) == {"A1"} and outcomes == {}
        assert acc["deleted"] == 2 and doc["totals"]["deleted"] == 3 and doc["totals"]["warnings"] == 0
        assert query(target, "SELECT legacy_key FROM contacts") == [("P1",)]
        assert cli("migrate", "rollback", str(doc["run_id"]), "--target", target).exit_code == 0
        assert {k for (k,) in query(target, "SELECT legacy_key FROM accounts")} == {"A1", "A2", "A3"}


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_delete_keeps_a_row_that_is_still_referred_to_and_lists_it(tmp_path, target):
    mapping = _vanish_case(tmp_path, "delete")
    mapping.write_text(
        mapping.read_text().replace("on_vanished: delete\n    fields:\n      full_name", "fields:\n      full_name")
    )
    run(mapping, target)
    _delete_legacy(tmp_path)  # P2 vanishes too, but contacts keep their vanished rows
    doc = run(mapping, target)
    acc = next(f for f in doc["feeds"] if f["entity"] == "accounts")
    assert (acc["vanished"], acc["deleted"], acc["warnings"]) == (2, 1, 1)
    (kept,) = doc["warned_rows"]
    assert kept["legacy_key"] == "A2" and "1 contacts row(s) refer to it" in kept["reasons"]
    checked = _verify(mapping, target)
    assert checked["ok"], checked["mismatches"]
    assert {v["legacy_key"]: v["outcome"] for v in checked["vanished"]} == {
        "A2": "vanished, kept: referred to",
        "P2": "vanished",
    }


def test_verify_finds_a_vanished_row_still_active(tmp_path):
    target = f"sqlite:///{tmp_path / 'crm.db'}"
    mapping = _vanish_case(tmp_path, "keep")
    run(mapping, target)
    _delete_legacy(tmp_path)
    run(mapping, target)  # kept, then the mapping changes its mind without a run
    mapping.write_text(mapping.read_text().replace("on_vanished: keep", "on_vanished: deactivate"))
    checked = _verify(mapping, target)
    assert not checked["ok"]
    assert {(m["legacy_key"], m["kind"]) for m in checked["mismatches"]} == {
        ("A2", "vanished, still active"),
        ("A3", "vanished, still active"),
        ("P2", "vanished, still active"),
    }


def test_deactivate_is_refused_for_an_entity_without_an_active_flag(tmp_path):
    mapping = write_case(tmp_path, "cases", {}, ["id"], [["1"]])
    mapping.write_text(mapping.read_text().replace("    key: id\n", "    key: id\n    on_vanished: deactivate\n"))
    res = cli("migrate", "plan", str(mapping))
    assert res.exit_code == 2 and "case.yaml:" in res.output and "cases has no active flag" in res.output


@pytest.mark.parametrize("on_vanished", ["deactivate", "delete"])
def test_a_vanished_row_that_comes_back_is_loaded_again(tmp_path, on_vanished):
    target = f"sqlite:///{tmp_path / 'crm.db'}"
    mapping = _vanish_case(tmp_path, on_vanished)
    run(mapping, target)
    before = (tmp_path / "accts.csv").read_bytes(), (tmp_path / "people.csv").read_bytes()
    _delete_legacy(tmp_path)
    run(mapping, target)
    (tmp_path / "accts.csv").write_bytes(before[0])
    (tmp_path / "people.csv").write_bytes(before[1])
    run(mapping, target)
    assert {k: bool(v) for k, v in query(target, "SELECT legacy_key, active FROM accounts")} == {
        "A1": True,
        "A2": True,
        "A3": True,
    }
    checked = _verify(mapping, target)
    assert checked["ok"] and checked["vanished"] == [], checked
