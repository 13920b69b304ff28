"""Shared fixtures: real databases, one fresh database per test module.

PostgreSQL and MariaDB come from CRMKIT_TEST_PG_URL / CRMKIT_TEST_MYSQL_URL (defaults: the
servers on this machine).  Where one is unreachable its tests skip with the reason, unless
CRMKIT_REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "migrate" / "mappings"
LEGACY = ROOT / "examples" / "legacy"

PG_URL = os.environ.get("CRMKIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MYSQL_URL = os.environ.get("CRMKIT_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE = os.environ.get("CRMKIT_REQUIRE_SERVICES") == "1"


def _unavailable(what: str, err: Exception) -> None:
    msg = f"{what} unreachable ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})"
    if REQUIRE:
        pytest.fail(f"{msg} and CRMKIT_REQUIRE_SERVICES=1")
    pytest.skip(msg)


def _db_name(request: pytest.FixtureRequest) -> str:
    return f"crmkit_{Path(str(request.node.name)).stem[:20]}_{uuid.uuid4().hex[:8]}".lower().replace("-", "_")


@pytest.fixture(scope="module")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this module, dropped afterwards."""
    import psycopg

    base = make_url(PG_URL)
    name = _db_name(request)
    params = dict(host=base.host, port=base.port or 5432, user=base.username, dbname=base.database or "postgres")
    if base.password:
        params["password"] = base.password
    try:
        with psycopg.connect(**params, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    yield base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pg_new(request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """Makes more fresh PostgreSQL databases for this module (each call one), all dropped afterwards."""
    import psycopg

    base = make_url(PG_URL)
    params = dict(host=base.host, port=base.port or 5432, user=base.username, dbname=base.database or "postgres")
    if base.password:
        params["password"] = base.password
    made: list[str] = []

    def new() -> str:
        name = _db_name(request)
        try:
            with psycopg.connect(**params, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            _unavailable("PostgreSQL", exc)
        made.append(name)
        return base.set(database=name).render_as_string(hide_password=False)

    yield new
    if made:
        with psycopg.connect(**params, autocommit=True) as conn:
            for name in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def mysql_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty MariaDB/MySQL database for this module, dropped afterwards."""
    import pymysql

    base = make_url(MYSQL_URL)
    name = _db_name(request)
    params = dict(host=base.host, port=base.port or 3306, user=base.username, password=base.password or "")
    try:
        conn = pymysql.connect(**params, connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        _unavailable("MariaDB/MySQL", exc)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn.close()
    yield base.set(database=name).render_as_string(hide_password=False)
    conn = pymysql.connect(**params)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'crm.db'}"


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    """A private copy of the example estate and its mapping (tests may change them)."""
    dst = tmp_path / "estate"
    shutil.copytree(LEGACY, dst / "examples" / "legacy")
    (dst / "crmkit.yaml").write_text("# the project root: files its mappings name stay under here\n", encoding="utf-8")
    (dst / "migrate" / "mappings").mkdir(parents=True)
    shutil.copy(MAPPINGS / "acme-legacy.yaml", dst / "migrate" / "mappings" / "acme-legacy.yaml")
    return dst / "migrate" / "mappings" / "acme-legacy.yaml"


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the real ``crmkit`` command line in-process."""
    from crmkit.cli import main

    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def legacy_estate(out: Path, scenario: str = "legacy-zh.yaml", seed: int = 7) -> Path:
    """A generated messy legacy estate (``crmkit training legacy``, its own process) under ``out``."""
    import subprocess
    import sys

    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "crmkit",
            "training",
            "legacy",
            "--scenario",
            str(ROOT / "configs" / "training" / scenario),
            "--seed",
            str(seed),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    return out


def copy_sqlite_tables(sqlite_path: Path, url: str) -> None:
    """Copy every table of a SQLite file (all columns as text) into another database."""
    import sqlite3

    from sqlalchemy import Column, MetaData, Table, Text, create_engine, insert

    src = sqlite3.connect(sqlite_path)
    engine = create_engine(url)
    meta = MetaData()
    with engine.begin() as conn:
        for (name,) in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            cols = [r[1] for r in src.execute(f'PRAGMA table_info("{name}")')]
            table = Table(name, meta, *(Column(c, Text) for c in cols))
            table.drop(conn, checkfirst=True)
            table.create(conn)
            rows = [dict(zip(cols, r)) for r in src.execute(f'SELECT * FROM "{name}"')]
            conn.execute(insert(table), rows)
    engine.dispose()
    src.close()


# --- one-feed mappings for field and row-check cases (tests/integration/test_transforms.py, tests/unit/) ---

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
#: the accounts every case's references point at: A1 loads, A2 (no name) is rejected
ACCOUNTS_CSV = "acct_no,acct_name\nA1,Acme\nA2,\n"


def write_csv(path: Path, header: list[str], rows: list[list[str | None]]) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])


def mapping_text(entity: str, fields: dict[str, str], key: str, filter_: str | None, source: str) -> str:
    """A mapping loading ``entity`` from source ``src`` (and accounts from ``accts`` where a field refers to them)."""
    import json

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


def write_case(
    folder: Path,
    entity: str,
    fields: dict[str, str],
    header: list[str],
    rows: list[list[str | None]],
    key: str = "id",
    filter_: str | None = None,
    source: str = "{kind: csv, path: source.csv}",
) -> Path:
    """source.csv, accounts.csv and the mapping ``case.yaml`` in ``folder``; the mapping's path."""
    write_csv(folder / "source.csv", header, rows)
    (folder / "accounts.csv").write_text(ACCOUNTS_CSV, encoding="utf-8")
    mapping = folder / "case.yaml"
    mapping.write_text(mapping_text(entity, fields, key, filter_, source), encoding="utf-8")
    return mapping


# --- the order xdist hands tests out in -----------------------------------------------------------

#: seconds a test took in a whole-suite run on 2 busy cores (load ~10), by function name: the
#: longest start first.  Only the order depends on these; a renamed test just loses its head start.
LONG = {
    "test_sigkill_at_random_points_then_resume_equals_a_clean_run": 300,
    "test_schemathesis_finds_no_server_error_and_no_schema_violation": 170,
    "test_the_walkthrough_runs_and_ends_with_every_wave_migrated": 72,
    "test_connection_cut_mid_run_then_resume": 50,
    "test_postgresql_sandboxes_reset_from_the_template": 47,
    "test_sigkill_at_random_moments_from_outside_then_resume": 40,
    "test_a_bulk_load_killed_midway_gets_its_indexes_and_foreign_keys_back": 30,
    "test_a_bulk_insert_killed_before_its_id_map_caught_up_is_mapped_by_the_next_run": 35,
    "test_a_bulk_insert_that_loses_either_of_its_row_connections_resumes_to_a_clean_run": 33,
    "test_a_bounded_run_that_meets_its_thresholds_exits_0": 26,
    "test_a_training_sandbox_is_a_working_back_end": 35,
    "test_distributed_mode_with_two_workers": 23,
    "test_same_seed_same_bytes_different_seed_different_data": 21,
    "test_pilot_then_two_waves_gated_on_evidence": 21,
    "test_the_wheel_holds_only_crmkit": 17,
}
#: any other test marked slow
SLOW = 15


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long tests first, longest first; the rest keep their order (modules stay together).

    A test of minutes handed out last would run alone while the other workers idle.  Under
    ``--dist load --maxschedchunk 2`` the first two went to one worker and the next two to
    another, hence the swap below (each starts with one of the two longest).  pyproject's
    addopts now use ``--dist worksteal`` (idle workers take queued tests from busy ones),
    measured faster on the final suite (docs/benchmarks.md, "Test suite").
    """

    def seconds(item: pytest.Item) -> int:
        name = getattr(item, "originalname", item.name)
        return LONG.get(name, SLOW if item.get_closest_marker("slow") else 0)

    items.sort(key=lambda item: -seconds(item))
    if len(items) >= 4 and seconds(items[3]) > 0:
        items[1], items[2] = items[2], items[1]
