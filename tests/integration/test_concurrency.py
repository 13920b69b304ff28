"""Two mappings writing the same entities at once, orphans, a degraded schema and its repair
(issue 22 items 3, 7 and 14), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from crmkit.db.loader import open_loader
from crmkit.migrate.pipeline.result import Options, RunResult
from crmkit.migrate.pipeline.run import run
from crmkit.migrate.safety.hooks import parse_faults
from crmkit.migrate.safety.lock import LockedError
from crmkit.migrate.safety.verify import verify
from crmkit.schema.models import ENTITY_MODELS
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
    admin = {"host": base.host, "port": base.port or 5432, "user": base.username, "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(False)
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def twin(mapping: Path, name: str) -> Path:
    """The same mapping under another name, beside it (same sources, same source names)."""
    other = mapping.with_name(f"{name}.yaml")
    other.write_text(mapping.read_text(encoding="utf-8").replace("name: acme-legacy", f"name: {name}"), "utf-8")
    return other


def duplicates(url: str) -> list[tuple]:
    """Every (entity, source, legacy key) that more than one target row carries."""
    loader = open_loader(url)
    try:
        found = []
        for entity in ENTITY_MODELS:
            rows = loader.query(
                f'SELECT source_name, legacy_key, count(*) AS n FROM "{entity}" WHERE source_name IS NOT NULL '
                "GROUP BY source_name, legacy_key HAVING count(*) > 1"
            )
            found += [(entity, *r) for r in rows.iter_rows()]
        return found
    finally:
        loader.close()


def in_thread(mapping: Path, options: Options) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def go() -> None:
        try:
            out["result"] = run(mapping, options)
        except Exception as exc:
            out["error"] = exc

    thread = threading.Thread(target=go)
    thread.start()
    return thread, out


def wait_for_lock(url: str, key: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        loader = open_loader(url)
        try:
            if loader.scalar("SELECT count(*) FROM crmkit_locks WHERE mapping_name = ? AND run_id > 0", (key,)):
                return
        except Exception:
            pass  # the schema is being created
        finally:
            loader.close()
        time.sleep(0.05)
    raise AssertionError(f"no lock {key} within {timeout} s")


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_two_mappings_writing_the_same_entities_at_once_take_turns_and_leave_no_duplicate(estate, target):
    """Issue 22 item 3: started together, the second waits for the first (its rows are then
    the first's: nothing to insert), on the bulk path with its companion connections."""
    other = twin(estate, "acme-twin")
    common = {"target": target, "batch_size": 7, "bulk_rows": 1, "lock_wait": 60}
    first, a = in_thread(estate, Options(**common, hooks=parse_faults("sleep=1@run.opened")))
    second, b = in_thread(other, Options(**common))
    first.join(60)
    second.join(60)
    assert "error" not in a and "error" not in b, (a, b)
    results: list[RunResult] = [a["result"], b["result"]]
    assert sorted(r.status for r in results) == ["succeeded", "succeeded"]
    assert sorted(r.totals()["inserted"] for r in results)[0] == 0  # the later run found every row there
    assert duplicates(target) == []
    assert verify(estate, target).ok and verify(other, target).ok


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_a_second_mapping_refuses_in_one_line_naming_the_run_that_writes_its_entities(estate, target):
    other = twin(estate, "acme-twin")
    first, a = in_thread(estate, Options(target=target, batch_size=7, hooks=parse_faults("sleep=3@run.opened")))
    try:
        wait_for_lock(target, "entity:accounts")
        with pytest.raises(LockedError) as refused:
            run(other, Options(target=target, batch_size=7))
    finally:
        first.join(60)
    message = str(refused.value)
    assert "\n" not in message
    assert "accounts is being written by run 1 of mapping acme-legacy" in message and "--lock-wait" in message
    assert a["result"].status == "succeeded"
    # the refused run wrote nothing, holds nothing: it runs now
    assert run(other, Options(target=target)).totals()["inserted"] == 0
    assert duplicates(target) == []


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_verify_reports_a_migrated_row_no_id_map_entry_names_and_not_one_made_in_the_crm(estate, target):
    """Issue 22 item 3 (c): an orphan (a row with provenance and no id-map entry) is reported,
    with its id; a row created through the CRM (no provenance) is not."""
    run(estate, Options(target=target))
    loader = open_loader(target)
    try:
        loader.execute(
            "INSERT INTO accounts (name, source_name, legacy_key, active) VALUES (?, ?, ?, ?)",
            ("重复 Duplicate GmbH", "erp_customer", "C0001", True),
        )
        loader.execute("INSERT INTO accounts (name, active) VALUES (?, ?)", ("Made in the CRM", True))
        orphan = loader.scalar("SELECT max(id) FROM accounts WHERE source_name IS NOT NULL")
    finally:
        loader.close()
    result = verify(estate, target)
    found = result.mismatches.filter(result.mismatches["kind"] == "orphan").to_dicts()
    assert found == [
        {
            "entity": "accounts",
            "source_name": "erp_customer",
            "legacy_key": "C0001",
            "kind": "orphan",
            "target_id": orphan,
        }
    ]
    res = cli("migrate", "verify", str(estate), "--target", target)
    assert res.exit_code == 1 and f"orphan     accounts erp_customer:C0001 (id {orphan})" in res.output


#: the states a bulk load's drop/re-add window can leave: which tables' indexes (and, on
#: PostgreSQL, foreign keys and the id map's primary key) the bulk path dropped
WINDOW = {
    "entity-dropped": ["contacts"],
    "id-map-dropped": ["crmkit_id_map"],
    "both-dropped": ["contacts", "crmkit_id_map"],
}


@pytest.mark.parametrize("state", list(WINDOW))
@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_db_current_reports_what_a_bulk_load_dropped_and_db_repair_restores_it(estate, target, state):
    """Issue 22 item 7: the schema a bulk load cut short in its window is not "head" and whole."""
    run(estate, Options(target=target))
    loader = open_loader(target)
    try:
        loader.begin()
        for table in WINDOW[state]:
            loader.drop_indexes(table)  # the bulk path's own function
        loader.commit()
    finally:
        loader.close()
    degraded = cli("db", "current", "--target", target)
    assert degraded.exit_code == 1, degraded.output
    assert "(head)" in degraded.output and "degraded" in degraded.output and "crmkit db repair" in degraded.output
    assert "ix_crmkit_id_map_target" in degraded.output or "crmkit_id_map" not in WINDOW[state]
    if target.startswith("postgresql") and "crmkit_id_map" in WINDOW[state]:
        assert "crmkit_id_map: primary key pk_crmkit_id_map" in degraded.output
    if target.startswith("postgresql") and "contacts" in WINDOW[state]:
        assert "contacts: foreign key fk_contacts_account_id_accounts" in degraded.output
    repaired = cli("db", "repair", "--target", target)
    assert repaired.exit_code == 0 and "restored" in repaired.output, repaired.output
    whole = cli("db", "current", "--target", target)
    assert whole.exit_code == 0 and "degraded" not in whole.output, whole.output
    assert verify(estate, target).ok


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_an_unvalidated_foreign_key_is_reported_and_validated_by_repair(estate, target):
    run(estate, Options(target=target))
    loader = open_loader(target)
    try:
        loader.execute('ALTER TABLE contacts DROP CONSTRAINT "fk_contacts_account_id_accounts"')
        loader.execute(
            'ALTER TABLE contacts ADD CONSTRAINT "fk_contacts_account_id_accounts" FOREIGN KEY (account_id) '
            "REFERENCES accounts (id) NOT VALID"
        )
    finally:
        loader.close()
    res = cli("db", "current", "--target", target)
    assert res.exit_code == 1 and "fk_contacts_account_id_accounts (not validated)" in res.output
    assert cli("db", "repair", "--target", target).exit_code == 0
    assert cli("db", "current", "--target", target).exit_code == 0


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_a_missing_table_is_named_with_the_command_that_restores_it(estate, target):
    """Issue 22 item 14: not "cannot connect", nor "being started by another process"."""
    run(estate, Options(target=target))
    loader = open_loader(target)
    try:
        loader.execute("DROP TABLE crmkit_locks")
    finally:
        loader.close()
    res = cli("migrate", "run", str(estate), "--target", target)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "has no table crmkit_locks" in res.stderr and "crmkit db repair" in res.stderr
    assert "another process" not in res.stderr and "cannot connect" not in res.stderr
    assert cli("db", "repair", "--target", target).exit_code == 0
    assert cli("migrate", "run", str(estate), "--target", target).exit_code == 0


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_a_read_only_target_says_so_and_verify_still_runs(estate, target):
    """Issue 22 item 14 (root writes any SQLite file whatever its mode: PostgreSQL shows it)."""
    import psycopg
    from sqlalchemy.engine import make_url

    run(estate, Options(target=target))
    url = make_url(target)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname="postgres", autocommit=True) as c:
        c.execute(f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = on')
    for extra in ([], ["--dry-run"]):
        res = cli("migrate", "run", str(estate), "--target", target, *extra)
        assert res.exit_code == 2 and "Traceback" not in res.output
        assert "is read-only: crmkit cannot write to it" in res.stderr and "another process" not in res.stderr
    checked = cli("migrate", "verify", str(estate), "--target", target)
    assert checked.exit_code == 0 and "not recorded in the audit trail: the target is read-only" in checked.output


def test_a_bulk_load_killed_in_its_window_is_reported_and_repaired(estate, pg_url):
    """Issue 22 item 7, one real kill: SIGKILL after a committed bulk batch on PostgreSQL."""
    import subprocess
    import sys

    env = {**__import__("os").environ, "CRMKIT_BULK_ROWS": "1"}
    args = ["migrate", "run", str(estate), "--target", pg_url, "--batch-size", "7"]
    proc = subprocess.run(
        [sys.executable, "-m", "crmkit", *args, "--faults", "kill@insert.after_commit#3"], env=env, capture_output=True
    )
    assert proc.returncode == -9
    res = cli("db", "current", "--target", pg_url)
    assert res.exit_code == 1 and "crmkit_id_map: primary key pk_crmkit_id_map" in res.output
    repaired = cli("db", "repair", "--target", pg_url)
    assert repaired.exit_code == 0 and "pk_crmkit_id_map" in repaired.output
    assert cli("db", "current", "--target", pg_url).exit_code == 0
    assert cli("migrate", "run", str(estate), "--target", pg_url, "--resume").exit_code == 0
    assert verify(estate, pg_url).ok and duplicates(pg_url) == []
