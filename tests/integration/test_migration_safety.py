"""Delta runs, rollback, verify, the lock and the audit trail, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from crmkit.migrate.snapshot import table_hashes
from tests.conftest import cli

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture
def target(request, tmp_path):
    """A fresh target per test: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crm.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(request.getfixturevalue("pg_url"))
    name = f"{base.database}_{abs(hash(request.node.name)) % 10**8}"
    with psycopg.connect(
        host=base.host, port=base.port or 5432, user=base.username, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(False)
    with psycopg.connect(
        host=base.host, port=base.port or 5432, user=base.username, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_json(mapping: Path, target: str, *extra: str) -> dict:
    res = cli("migrate", "run", str(mapping), "--target", target, "--json", *extra)
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.output)


def feed(doc: dict, entity: str, source: str) -> dict:
    return next(f for f in doc["feeds"] if f["entity"] == entity and f["source"] == source)


def erp(mapping: Path) -> sqlite3.Connection:
    return sqlite3.connect(mapping.parent.parent.parent / "examples" / "legacy" / "erp.sqlite")


def change_legacy(mapping: Path) -> dict[str, list[str]]:
    """Change 3 customers, add 2, and remove 2 (with their opportunities and cases) in the legacy ERP."""
    db = erp(mapping)
    answer = json.loads((mapping.parent.parent.parent / "examples" / "legacy" / "answer_key.json").read_text())
    bad = set(answer["T_CUSTOMER"]["rejects"])
    changed = ["C1002", "C1003", "C1005"]
    keep = _sheet_account_refs(mapping) | bad | set(changed)
    gone = [c for (c,) in db.execute("SELECT CUST_NO FROM T_CUSTOMER ORDER BY CUST_NO") if c not in keep][:2]
    for c in changed:
        db.execute("UPDATE T_CUSTOMER SET CUST_NAME = CUST_NAME || ' (renamed)' WHERE CUST_NO = ?", (c,))
    for table in ("T_OPPORTUNITY", "T_CASE", "T_CUSTOMER"):
        db.execute(f"DELETE FROM {table} WHERE CUST_NO IN (?, ?)", gone)
    template = db.execute("SELECT * FROM T_CUSTOMER WHERE CUST_NO = 'C1002'").fetchone()
    added = ["C2001", "C2002"]
    for i, key in enumerate(added):
        db.execute(
            f"INSERT INTO T_CUSTOMER VALUES ({','.join('?' * len(template))})",
            (key, f"新客户{i}有限公司", *template[2:]),
        )
    db.commit()
    db.close()
    return {"changed": changed, "gone": gone, "added": added}


def _sheet_account_refs(mapping: Path) -> set[str]:
    import polars as pl

    root = mapping.parent.parent.parent / "examples" / "legacy"
    sheet = pl.read_excel(root / "customers.xlsx", sheet_name="客户", read_options={"header_row": 2})
    import io

    desk = pl.read_csv(
        io.BytesIO((root / "service_contacts.csv").read_bytes().decode("gb18030").encode()), infer_schema=False
    )
    return set(sheet["客户编号"].cast(str).to_list()) | set(desk["客户编号"].to_list())


def deactivate_vanished(mapping: Path) -> None:
    text = mapping.read_text(encoding="utf-8")
    mapping.write_text(
        text.replace(
            "    from: erp_customer\n    key: CUST_NO\n",
            "    from: erp_customer\n    key: CUST_NO\n    on_vanished: deactivate\n",
        ),
        encoding="utf-8",
    )


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_delta_run_counts_updated_inserted_unchanged_and_vanished(estate, target):
    deactivate_vanished(estate)
    first = run_json(estate, target)
    assert feed(first, "accounts", "erp_customer")["inserted"] == 55
    delta = change_legacy(estate)
    second = run_json(estate, target)
    acc = feed(second, "accounts", "erp_customer")
    assert (acc["updated"], acc["inserted"], acc["vanished"], acc["deactivated"]) == (3, 2, 2, 2)
    assert acc["unchanged"] == 55 - 3 - 2 and acc["rejected"] == 5
    assert acc["extracted"] == 60 - 2 + 2
    # the vanished accounts are still there, inactive; nothing was deleted
    from sqlalchemy import create_engine, text

    engine = create_engine(target)
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                text("SELECT legacy_key, active FROM accounts WHERE legacy_key IN (:a, :b)"),
                {"a": delta["gone"][0], "b": delta["gone"][1]},
            ).all()
        )
    engine.dispose()
    assert {k: bool(v) for k, v in rows.items()} == {k: False for k in delta["gone"]}
    third = run_json(estate, target)
    acc = feed(third, "accounts", "erp_customer")
    assert (acc["updated"], acc["inserted"], acc["unchanged"], acc["vanished"]) == (0, 0, 55, 2)


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_rollback_returns_the_target_to_the_state_before_each_run(estate, target):
    a = run_json(estate, target)
    after_a = table_hashes(target)
    change_legacy(estate)
    b = run_json(estate, target)
    assert feed(b, "accounts", "erp_customer")["updated"] == 3
    assert table_hashes(target) != after_a
    res = cli("migrate", "rollback", str(b["run_id"]), "--target", target)
    assert res.exit_code == 0, res.output
    assert table_hashes(target) == after_a
    res = cli("migrate", "rollback", str(a["run_id"]), "--target", target)
    assert res.exit_code == 0, res.output
    empty = table_hashes(target)
    from sqlalchemy import create_engine, text

    engine = create_engine(target)
    with engine.connect() as conn:
        for table in ("departments", "users", "accounts", "contacts", "opportunities", "cases", "crmkit_id_map"):
            assert conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar() == 0, table
    engine.dispose()
    assert empty != after_a


def test_rollback_refuses_when_a_later_run_touched_the_rows_unless_cascade(estate, sqlite_url):
    a = run_json(estate, sqlite_url)
    change_legacy(estate)
    b = run_json(estate, sqlite_url)
    res = cli("migrate", "rollback", str(a["run_id"]), "--target", sqlite_url)
    assert res.exit_code == 2
    assert f"run {b['run_id']}" in res.stderr and "erp_customer:C1002" in res.stderr and "--cascade" in res.stderr
    res = cli("migrate", "rollback", str(a["run_id"]), "--target", sqlite_url, "--cascade")
    assert res.exit_code == 0, res.output
    assert f"{b['run_id']}, {a['run_id']}" in res.output
    hist = json.loads(cli("migrate", "history", "--target", sqlite_url, "--json").output)
    assert [h["action"] for h in hist[:2]] == ["rollback", "rollback"]


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_verify_finds_a_row_changed_and_a_row_deleted_by_hand(estate, target, tmp_path):
    run_json(estate, target)
    assert cli("migrate", "verify", str(estate), "--target", target).exit_code == 0
    from sqlalchemy import create_engine, text

    engine = create_engine(target)
    with engine.begin() as conn:
        conn.execute(text("UPDATE accounts SET name = 'Changed by hand' WHERE legacy_key = 'C1002'"))
        conn.execute(text("DELETE FROM contacts WHERE legacy_key = 'P0003'"))
    engine.dispose()
    res = cli("migrate", "verify", str(estate), "--target", target, "--report", str(tmp_path / "v"), "--json")
    assert res.exit_code == 1
    found = {(m["entity"], m["legacy_key"], m["kind"]) for m in json.loads(res.output)["mismatches"]}
    assert found == {("accounts", "C1002", "changed"), ("contacts", "P0003", "missing")}
    assert "C1002" in (tmp_path / "v" / "verify-mismatches.csv").read_text()


def _spawn(mapping: Path, target: str, faults: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crmkit",
            "migrate",
            "run",
            str(mapping),
            "--target",
            target,
            "--batch-size",
            "7",
            "--faults",
            faults,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_second_run_refuses_while_one_is_running_and_a_dead_holder_is_taken_over(estate, sqlite_url):
    first = _spawn(estate, sqlite_url, "sleep=30@insert.after_commit#2")
    try:
        db = sqlite_url.removeprefix("sqlite:///")
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with closing(sqlite3.connect(db)) as conn:
                    if conn.execute("SELECT count(*) FROM crmkit_checkpoints").fetchone()[0] >= 2:
                        break
            except sqlite3.OperationalError:
                pass
            time.sleep(0.2)
        res = cli("migrate", "run", str(estate), "--target", sqlite_url)
        assert res.exit_code == 2
        assert "already running" in res.stderr and f"pid {first.pid}" in res.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    resumed = run_json(estate, sqlite_url, "--resume")
    assert resumed["resumed"] is True and resumed["status"] == "succeeded"


def test_resume_refuses_when_the_mapping_changed_unless_restart(estate, sqlite_url):
    proc = _spawn(estate, sqlite_url, "kill@insert.after_commit#3")
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    estate.write_text(
        estate.read_text(encoding="utf-8").replace("max_rejects: 10%", "max_rejects: 11%"), encoding="utf-8"
    )
    res = cli("migrate", "run", str(estate), "--target", sqlite_url, "--resume")
    assert res.exit_code == 2 and "the mapping changed since run 1" in res.stderr and "--restart" in res.stderr
    doc = run_json(estate, sqlite_url, "--resume", "--restart")
    assert doc["resumed"] is False and "abandoned" in doc["message"] and doc["status"] == "succeeded"


def test_audit_records_operator_outcome_and_masked_target(estate, pg_url):
    from sqlalchemy.engine import make_url

    url = make_url(pg_url).set(password="s3cret-not-needed").render_as_string(False)
    run_json(estate, url, "--operator", "alice")
    hist = cli("migrate", "history", "--target", url, "--json")
    entries = json.loads(hist.output)
    mine = [e for e in entries if e["operator"] == "alice"]
    assert [e["outcome"] for e in mine] == ["succeeded", "started"]
    assert all("***" in e["target"] for e in mine)
    assert "s3cret" not in hist.output


class _Interrupt(Exception):
    pass


def test_hooks_installed_in_process_see_every_point_and_a_run_they_stop_resumes_clean(estate, tmp_path):
    """In-process hooks (no environment, no subprocess): a run stopped at the third committed insert
    batch is marked failed, and its resume ends equal to a clean run; a bulk run passes the bulk points."""
    from crmkit.migrate.pipeline.result import Options
    from crmkit.migrate.pipeline.run import run
    from crmkit.migrate.safety.hooks import RunHooks

    class Recording(RunHooks):
        def __init__(self, stop_at: int | None = None) -> None:
            self.seen: list[str] = []
            self.stop_at = stop_at

        def point(self, name, loader=None):  # type: ignore[no-untyped-def]
            self.seen.append(name)
            if name == "insert.after_commit" and self.seen.count(name) == self.stop_at:
                raise _Interrupt(name)

    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    bulk = Recording()
    assert run(estate, Options(target=clean, batch_size=7, max_rejects="100%", bulk_rows=1, hooks=bulk)).exit_code == 0
    assert {"run.open", "run.opened", "indexes.drop", "insert.after_commit", "indexes.create", "run.close"} <= set(
        bulk.seen
    )
    target = f"sqlite:///{tmp_path / 'stopped.db'}"
    with pytest.raises(_Interrupt):
        run(estate, Options(target=target, batch_size=7, max_rejects="100%", hooks=Recording(stop_at=3)))
    with closing(sqlite3.connect(tmp_path / "stopped.db")) as db:
        assert db.execute("SELECT status FROM crmkit_runs").fetchall() == [("failed",)]
    resumed = run(estate, Options(target=target, batch_size=7, max_rejects="100%", resume=True))
    assert resumed.resumed and resumed.status == "succeeded"
    assert table_hashes(target) == table_hashes(clean)
