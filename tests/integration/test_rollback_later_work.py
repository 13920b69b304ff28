"""Rollback and the work done since a run (issue 22, item 4), on SQLite and PostgreSQL.

A row edited since the run wrote it (by hand, or through the API) makes the rollback refuse,
naming the row, unless --force; a row created since that refers to a row the rollback would
delete always makes it refuse, naming both; nothing is changed when it refuses, and there is
never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import cli, write_case
from tests.e2e.test_api import free_port, wait_until_up

ROWS = [["C1", "Li Wei", "li@example.cn", "A1"], ["C2", "王芳", "wf@example.cn", "A1"]]


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, or the module's PostgreSQL database emptied of crmkit's tables."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    return str(request.getfixturevalue("target_pg"))


@pytest.fixture
def target_pg(pg_url: str) -> str:
    """The module's PostgreSQL database, emptied."""
    url = pg_url
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return url


def estate(folder: Path, rows: list[list[str]] = ROWS) -> Path:
    """Contacts of account A1 (and A2, rejected): the mapping's path."""
    fields = {"full_name": "name", "email": "email", "account": "{ref: accounts, column: acct}"}
    return write_case(folder, "contacts", fields, ["id", "name", "email", "acct"], rows)


def sql(target: str, statement: str, **params: object) -> list[tuple]:
    engine = create_engine(target)
    with engine.begin() as conn:
        result = conn.execute(text(statement), params)
        rows = [tuple(r) for r in result] if result.returns_rows else []
    engine.dispose()
    return rows


def run(mapping: Path, target: str) -> int:
    res = cli("migrate", "run", str(mapping), "--target", target, "--json")
    assert res.exit_code == 0, res.output
    return int(json.loads(res.stdout)["run_id"])


def counts(target: str) -> tuple[int, int, int]:
    return tuple(sql(target, f"SELECT count(*) FROM {t}")[0][0] for t in ("accounts", "contacts", "cases"))  # type: ignore[return-value]


def one_line_error(res, *fragments: str) -> None:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert "Traceback" not in res.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_an_inserted_row_edited_since_is_named_and_kept_unless_force(tmp_path, target):
    rid = run(estate(tmp_path), target)
    sql(target, "UPDATE contacts SET email = 'new@example.cn' WHERE legacy_key = 'C1'")
    c1 = sql(target, "SELECT id FROM contacts WHERE legacy_key = 'C1'")[0][0]

    res = cli("migrate", "rollback", str(rid), "--target", target)
    one_line_error(
        res, f"rollback of run {rid} refused", "1 rows were changed", f"contacts id {c1} (src:C1)", "--force"
    )
    assert counts(target) == (1, 2, 0)
    assert sql(target, "SELECT email FROM contacts WHERE legacy_key = 'C1'") == [("new@example.cn",)]

    dry = cli("migrate", "rollback", str(rid), "--target", target, "--force", "--dry-run")
    assert dry.exit_code == 0 and "would remove 3 rows" in dry.stdout and "src:C1" in dry.stdout, dry.output
    assert counts(target) == (1, 2, 0)

    forced = cli("migrate", "rollback", str(rid), "--target", target, "--force")
    assert forced.exit_code == 0 and "removed 3 rows" in forced.stdout and "src:C1" in forced.stdout, forced.output
    assert counts(target) == (0, 0, 0)


def test_an_updated_row_edited_since_is_named_and_kept_unless_force(tmp_path, target):
    mapping = estate(tmp_path)
    run(mapping, target)
    estate(tmp_path, [["C1", "Li Wei Jr", "li@example.cn", "A1"], ROWS[1]])
    second = run(mapping, target)
    sql(target, "UPDATE contacts SET title = 'Boss' WHERE legacy_key = 'C1'")  # a column the mapping never fills

    res = cli("migrate", "rollback", str(second), "--target", target)
    one_line_error(res, f"rollback of run {second} refused", "(src:C1)")
    assert sql(target, "SELECT full_name, title FROM contacts WHERE legacy_key = 'C1'") == [("Li Wei Jr", "Boss")]

    assert cli("migrate", "rollback", str(second), "--target", target, "--force").exit_code == 0
    assert sql(target, "SELECT full_name, title FROM contacts WHERE legacy_key = 'C1'") == [("Li Wei", None)]


def test_an_unedited_run_of_every_column_type_rolls_back_without_force(tmp_path, target):
    """The seal a run writes equals the row read back: dates, decimals, booleans, Chinese, NULLs."""
    fields = {
        "name": "name",
        "amount": "{column: amount, transform: number}",
        "close_date": "{column: closes, transform: {date: ['%Y-%m-%d']}}",
        "probability": "{column: prob, transform: integer}",
        "stage": "{const: prospecting}",
        "account": "{ref: accounts, column: acct}",
    }
    rows = [["O1", "大单", "1234.5", "2026-03-01", "40", "A1"], ["O2", "Small", "", "", "", "A1"]]
    mapping = write_case(tmp_path, "opportunities", fields, ["id", "name", "amount", "closes", "prob", "acct"], rows)
    rid = run(mapping, target)
    res = cli("migrate", "rollback", str(rid), "--target", target)
    assert res.exit_code == 0 and "removed 3 rows" in res.stdout, res.output


def test_a_row_created_since_that_refers_to_a_row_to_delete_blocks_the_rollback(tmp_path, target):
    rid = run(estate(tmp_path), target)
    a1 = sql(target, "SELECT id FROM accounts WHERE legacy_key = 'A1'")[0][0]
    sql(target, "INSERT INTO cases (subject, status, priority, account_id) VALUES ('Help', 'new', 'low', :a)", a=a1)
    case = sql(target, "SELECT id FROM cases")[0][0]

    for extra in ((), ("--force",), ("--dry-run",)):
        res = cli("migrate", "rollback", str(rid), "--target", target, *extra)
        one_line_error(res, "1 rows created since refer", f"cases id {case} (outside any run) → accounts id {a1}")
        assert counts(target) == (1, 2, 1)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_edits_and_children_made_through_the_api_are_not_undone(tmp_path, backend, request):
    """The Done means of issue 22: later edits through the API (``crmkit serve``, its own process)
    and API-created children."""
    target = f"sqlite:///{tmp_path / 'crm.db'}" if backend == "sqlite" else request.getfixturevalue("target_pg")
    rid = run(estate(tmp_path), target)
    sql(target, "INSERT INTO users (name, email, role, active) VALUES ('Ada', 'ada@example.cn', 'admin', true)")
    token = cli("serve", "token", "--target", target, "--user", "ada@example.cn").stdout.strip()
    c1 = sql(target, "SELECT id FROM contacts WHERE legacy_key = 'C1'")[0][0]
    a1 = sql(target, "SELECT id FROM accounts WHERE legacy_key = 'A1'")[0][0]
    port = free_port()
    env = {**os.environ, "CRMKIT_TARGET": target, "CRMKIT_API_TOKEN_CACHE": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from crmkit.cli import main; main()", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
            assert api.patch(f"/contacts/{c1}", json={"title": "CFO"}).status_code == 200
            res = cli("migrate", "rollback", str(rid), "--target", target)
            one_line_error(res, f"contacts id {c1} (src:C1)")

            body = {"subject": "Broken", "status": "new", "priority": "high", "account_id": a1}
            created = api.post("/cases", json=body)
            assert created.status_code == 201, created.text
            res = cli("migrate", "rollback", str(rid), "--target", target, "--force")
            one_line_error(res, f"cases id {created.json()['id']} (outside any run) → accounts id {a1}")
            assert api.get(f"/contacts/{c1}").json()["title"] == "CFO"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stdout.close()  # type: ignore[union-attr]
    assert counts(target) == (1, 2, 1)
