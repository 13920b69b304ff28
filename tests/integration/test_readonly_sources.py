"""Legacy sources are only read: no statement kind changes a legacy database, on any backend.

Two locks, each tested on its own: a mapping's query must be one SELECT (refused at load time
with the mapping's file and line, exit 2, before anything connects), and the connection itself
is read-only (``crmkit.db.readonly.read_only_engine``), so even a statement that got past the
first lock cannot write.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from crmkit.db.readonly import read_only_engine, single_select
from tests.conftest import cli

HOSTILE = {
    "drop": "DROP TABLE legacy_dept",
    "update-returning": "UPDATE legacy_dept SET name = 'x' RETURNING code",
    "select-then-drop": "SELECT 1 AS code; DROP TABLE legacy_dept",
    "comment-hides-delete": "/* SELECT */ DELETE FROM legacy_dept",
    "cte-delete": "WITH d AS (DELETE FROM legacy_dept RETURNING *) SELECT code, name FROM d",
    "insert-select": "INSERT INTO legacy_dept SELECT * FROM legacy_dept",
    "attach": "ATTACH DATABASE 'other.db' AS other",
    "pragma": "PRAGMA writable_schema = 1",
    "semicolon-after-comment": "SELECT code, name FROM legacy_dept -- fine\n; DELETE FROM legacy_dept",
}
BACKENDS = ["sqlite", "mariadb", "postgresql"]


def _legacy(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A legacy database with a table legacy_dept (two rows); its URL."""
    if backend == "sqlite":
        path = tmp_path / "legacy.sqlite"
        con = sqlite3.connect(path)
        con.executescript(
            "CREATE TABLE legacy_dept (code TEXT, name TEXT); INSERT INTO legacy_dept VALUES ('S', 'Sales'), ('X', 'Service');"
        )
        con.commit()
        con.close()
        return f"sqlite:///{path}"
    url = request.getfixturevalue("mysql_url" if backend == "mariadb" else "pg_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS legacy_dept"))
        conn.execute(text("CREATE TABLE legacy_dept (code VARCHAR(10), name VARCHAR(50))"))
        conn.execute(text("INSERT INTO legacy_dept VALUES ('S', 'Sales'), ('X', 'Service')"))
    engine.dispose()
    return url


def _checksum(url: str) -> str:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT code, name FROM legacy_dept ORDER BY code")).all()
    engine.dispose()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _mapping(tmp_path: Path, query: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nname: readonly\nsources:\n"
        f"  legacy: {{kind: sql, url: '${{LEGACY_URL}}', query: {json.dumps(query)}}}\n"
        "entities:\n  departments:\n    from: legacy\n    key: code\n"
        "    fields:\n      code: {column: code}\n      name: {column: name}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("statement", list(HOSTILE), ids=list(HOSTILE))
def test_a_writing_query_is_refused_and_the_source_is_unchanged(request, tmp_path, backend, statement):
    url = _legacy(backend, request, tmp_path)
    before = _checksum(url)
    mapping = _mapping(tmp_path, HOSTILE[statement])
    res = cli("migrate", "plan", str(mapping), env={"LEGACY_URL": url})
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"{mapping}:4" in lines[0] and "query" in lines[0], lines[0]
    assert _checksum(url) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_connection_itself_cannot_write(request, tmp_path, backend):
    """The second lock alone: statements sent straight through the read-only engine all fail."""
    url = _legacy(backend, request, tmp_path)
    before = _checksum(url)
    engine = read_only_engine(url)
    writes = [
        "DELETE FROM legacy_dept",
        "UPDATE legacy_dept SET name = 'x'",
        "DROP TABLE legacy_dept",
        "INSERT INTO legacy_dept VALUES ('Z', 'z')",
        "CREATE TABLE sneaky (x INTEGER)",
    ]
    for sql in writes:
        with pytest.raises(Exception), engine.begin() as conn:  # noqa: B017 (each driver has its own error)
            conn.execute(text(sql))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM legacy_dept")).scalar() == 2
    engine.dispose()
    assert _checksum(url) == before


def test_a_missing_sqlite_file_is_not_created(tmp_path):
    mapping = _mapping(tmp_path, "SELECT code, name FROM legacy_dept")
    res = cli("migrate", "plan", str(mapping), env={"LEGACY_URL": f"sqlite:///{tmp_path / 'nope.sqlite'}"})
    assert res.exit_code == 2 and "Traceback" not in res.stderr
    assert not (tmp_path / "nope.sqlite").exists()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select a from t;",
        "  (SELECT 1)",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SELECT ';' AS semi, 'DROP; x' FROM t",
        'SELECT "a;b" FROM t -- trailing; comment',
        "SELECT update_date FROM t",
    ],
)
def test_plain_selects_pass(sql):
    assert single_select(sql) is None


def test_a_readable_query_still_reads(request, tmp_path):
    url = _legacy("sqlite", request, tmp_path)
    res = cli("migrate", "plan", str(_mapping(tmp_path, "SELECT code, name FROM legacy_dept")), env={"LEGACY_URL": url})
    assert res.exit_code == 0, res.output + res.stderr
