"""Shared fixtures: real databases, one fresh database per test module.

PostgreSQL and MariaDB come from CRMKIT_TEST_PG_URL / CRMKIT_TEST_MYSQL_URL (defaults: the
servers on this machine).  Where one is unreachable its tests skip with the reason, unless
CRMKIT_REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
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
    (dst / "migrate" / "mappings").mkdir(parents=True)
    shutil.copy(MAPPINGS / "acme-legacy.yaml", dst / "migrate" / "mappings" / "acme-legacy.yaml")
    return dst / "migrate" / "mappings" / "acme-legacy.yaml"


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the real ``crmkit`` command line in-process."""
    from crmkit.cli import main

    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


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
