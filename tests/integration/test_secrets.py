"""A ${VAR} password with URL-special characters works, and is never printed or written anywhere."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import cli

PASSWORD = "p@ss:w/rd#1%?x"
FRAGMENTS = (PASSWORD, "p@ss", "w/rd#1", "rd#1%", "p%40ss")


def _legacy(backend: str, request: pytest.FixtureRequest) -> str:
    """A legacy table in a fresh database, read by a user whose password is PASSWORD; the URL template."""
    url = make_url(request.getfixturevalue("mysql_url" if backend == "mariadb" else "pg_url"))
    user = f"crmkit_pw_{uuid.uuid4().hex[:8]}"  # users are server-wide: one per test
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS legacy_dept"))
        conn.execute(text("CREATE TABLE legacy_dept (code VARCHAR(10), name VARCHAR(50))"))
        conn.execute(text("INSERT INTO legacy_dept VALUES ('S', 'Sales'), ('X', 'Service')"))
        if backend == "mariadb":
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :pw"), {"pw": PASSWORD})
            conn.execute(text(f"GRANT SELECT ON `{url.database}`.* TO '{user}'@'%'"))
        else:
            conn.execute(text(f"CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}'"))
            conn.execute(text(f"GRANT SELECT ON legacy_dept TO {user}"))
    request.addfinalizer(lambda: _drop_user(url.render_as_string(hide_password=False), backend, user))
    engine.dispose()
    return f"{url.drivername}://{user}:${{LEGACY_PW}}@{url.host}:{url.port}/{url.database}"


def _drop_user(url: str, backend: str, user: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        if backend == "mariadb":
            conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
        else:
            conn.execute(text(f"DROP OWNED BY {user}"))
            conn.execute(text(f"DROP ROLE IF EXISTS {user}"))
    engine.dispose()


def _mapping(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nname: secrets\nsources:\n"
        f"  legacy: {{kind: sql, url: '{url}', table: legacy_dept}}\n"
        "entities:\n  departments:\n    from: legacy\n    key: code\n"
        "    fields:\n      code: {column: code}\n      name: {column: name}\n",
        encoding="utf-8",
    )
    return path


def _leaks(folder: Path, *texts: str) -> list[str]:
    found = [f"output: {t[:80]!r}" for t in texts if any(f in t for f in FRAGMENTS)]
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix != ".yaml":
            data = path.read_bytes()
            found += [f"{path.name}: {f!r}" for f in FRAGMENTS if f.encode() in data]
    return found


@pytest.mark.parametrize("backend", ["mariadb", "postgresql"])
def test_a_password_with_url_characters_connects_and_never_leaks(request, tmp_path, backend):
    mapping = _mapping(tmp_path, _legacy(backend, request))
    target = tmp_path / "crm.db"
    res = cli(
        "migrate",
        "run",
        str(mapping),
        "--target",
        f"sqlite:///{target}",
        "--report",
        str(tmp_path / "rep"),
        env={"LEGACY_PW": PASSWORD},
    )
    assert res.exit_code == 0, res.output + res.stderr
    con = sqlite3.connect(target)
    assert con.execute("SELECT count(*) FROM departments").fetchone() == (2,)
    dump = "\n".join(con.iterdump())
    con.close()
    assert not [f for f in FRAGMENTS if f in dump], "the password is in the target's tables"
    hist = cli("migrate", "history", "--target", f"sqlite:///{target}", "--json")
    assert not _leaks(tmp_path, res.output, res.stderr, hist.output)


@pytest.mark.parametrize("backend", ["mariadb"])  # PostgreSQL here trusts 127.0.0.1: any password is let in
def test_a_wrong_password_is_one_line_without_the_password(request, tmp_path, backend):
    mapping = _mapping(tmp_path, _legacy(backend, request))
    wrong = "wr0ng@pa:ss/#%"
    res = cli("migrate", "plan", str(mapping), env={"LEGACY_PW": wrong})
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "***" in err and "wr0ng" not in err and "pa:ss" not in err, err
    assert not _leaks(tmp_path, res.output, res.stderr)
