"""The hostile corpus: every case folder under ``cases/`` run as a user would, with the promises
of issue 22 checked on each (README.md in this folder says how to add one)."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import cli

CASES = Path(__file__).parent / "cases"
#: tables whose rows are CRM data (anything a failed run must not leave behind)
DATA_TABLES = (
    "departments",
    "users",
    "accounts",
    "contacts",
    "leads",
    "opportunities",
    "activities",
    "cases",
    "tags",
    "taggings",
    "crmkit_id_map",
)
KEYS = {"about", "item", "argv", "backends", "exit", "error", "rejects", "sql", "stdout", "env"}


@dataclass
class Case:
    name: str
    folder: Path
    about: str
    argv: list[str]
    exit: int
    error: str | None = None
    rejects: list[str] = field(default_factory=list)
    sql: list[dict[str, Any]] = field(default_factory=list)
    stdout: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def load_cases() -> Iterator[Any]:
    for folder in sorted(p for p in CASES.iterdir() if (p / "case.yaml").is_file()):
        spec = yaml.safe_load((folder / "case.yaml").read_text(encoding="utf-8"))
        unknown = set(spec) - KEYS
        assert not unknown, f"{folder.name}/case.yaml: unknown keys {sorted(unknown)}"
        assert spec["exit"] in (0, 1, 2), folder.name
        assert spec["exit"] != 2 or spec.get("error"), f"{folder.name}: an exit-2 case names its error"
        base = {k: spec[k] for k in ("about", "argv", "exit", "error", "rejects", "sql", "stdout", "env") if k in spec}
        for backend in spec.get("backends", ["sqlite"]):
            yield pytest.param(Case(name=folder.name, folder=folder, **base), backend, id=f"{folder.name}-{backend}")


def fill(text: str, names: dict[str, str]) -> str:
    """``text`` with its ``{placeholder}``s filled in (``${VAR}`` is left to crmkit)."""
    for name, value in names.items():
        text = text.replace("{" + name + "}", value)
    return text


def digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` by relative path, with its bytes' hash (links not followed)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def build(case: Case, tmp: Path, sentinel: str) -> tuple[Path, Path]:
    """The project (a copy of the case folder) and a folder outside it holding a secret."""
    project, outside = tmp / "project", tmp / "outside"
    shutil.copytree(case.folder, project, ignore=shutil.ignore_patterns("make.py", "__pycache__"))
    outside.mkdir()
    (outside / "secret.txt").write_text(f"{sentinel}\n", encoding="utf-8")
    (outside / "secret.csv").write_text(f"id,name\n1,{sentinel}\n", encoding="utf-8")
    legacy = outside / "secret.sqlite"
    with sqlite3.connect(legacy) as con:
        con.execute("CREATE TABLE T (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO T VALUES (1, ?)", (sentinel,))
    con.close()
    for script in project.glob("*.sql"):  # legacy.sql -> legacy.sqlite, the case's legacy database
        with sqlite3.connect(script.with_suffix(".sqlite")) as con:
            con.executescript(script.read_text(encoding="utf-8"))
        con.close()
    maker = case.folder / "make.py"
    if maker.exists():
        spec = importlib.util.spec_from_file_location(f"hostile_{case.name.replace('-', '_')}", maker)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.make(project, outside)
    return project, outside


def assert_opens_safely(path: Path) -> None:
    """A CSV written for people: UTF-8 with a BOM, and no cell a spreadsheet would run as a formula."""
    import csv
    import io

    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), f"{path.name} has no byte-order mark (Excel shows mojibake)"
    for row in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")):
        live = [cell for cell in row if re.match(r"[=+\-@\t\r]", cell) and not re.fullmatch(r"-?\d+(\.\d+)?", cell)]
        assert not live, f"{path.name} holds cells a spreadsheet runs as formulas: {live[:3]}"


def empty_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as con:
        con.execute(sa.text("DROP SCHEMA public CASCADE"))
        con.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def data_rows(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        with engine.connect() as con:
            return {
                t: con.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in DATA_TABLES if t in names
            }
    finally:
        engine.dispose()


def query(url: str, sql: str) -> Any:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            return con.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


@pytest.mark.parametrize(("case", "backend"), list(load_cases()))
def test_hostile_case(case: Case, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    sentinel = f"CRMKIT-SENTINEL-{secrets.token_hex(8)}"
    project, outside = build(case, tmp_path, sentinel)
    if backend == "postgres":
        target = request.getfixturevalue("pg_url")
        empty_postgres(target)
    else:
        target = f"sqlite:///{tmp_path / 'target.db'}"
    report = tmp_path / "report"
    names = {
        "project": str(project),
        "outside": str(outside),
        "target": target,
        "report": str(report),
        "sentinel": sentinel,
    }
    argv = [fill(a, names) for a in case.argv]
    before = {"project": digest(project), "outside": digest(outside)}

    res = cli(*argv, env={k: fill(v, names) for k, v in case.env.items()})
    out, err = res.stdout, res.stderr
    shown = f"$ crmkit {' '.join(argv)}\nexit {res.exit_code}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"

    assert res.exit_code == case.exit, shown
    assert "Traceback" not in out + err, shown
    assert sentinel not in out + err, "content of a file outside the project was echoed\n" + shown
    if case.exit == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), shown
        assert case.error and re.search(case.error, lines[0]), f"expected /{case.error}/\n{shown}"
        rows = data_rows(target) if backend == "postgres" or (tmp_path / "target.db").exists() else {}
        assert not any(rows.values()), f"a refused command wrote to the target: {rows}"
    elif case.error:
        assert re.search(case.error, err), f"expected /{case.error}/ on stderr\n{shown}"
    if case.stdout:
        assert re.search(case.stdout, out), f"expected /{case.stdout}/ on stdout\n{shown}"
    # sources and everything outside the project are only read
    after_project = digest(project)
    changed = [p for p, h in before["project"].items() if after_project.get(p) != h]
    assert not changed, f"files of the project were changed or removed: {changed}"
    assert digest(outside) == before["outside"], "a file outside the project was changed"
    for p in [*project.rglob("*"), *(report.rglob("*") if report.exists() else [])]:
        if (
            p.is_file()
            and not p.is_symlink()
            and str(p.relative_to(project) if p.is_relative_to(project) else p) not in before["project"]
        ):
            assert sentinel.encode() not in p.read_bytes(), f"{p} holds content from outside the project"
    for written in report.rglob("*.csv") if report.exists() else []:
        assert_opens_safely(written)
    for reason in case.rejects:
        engine = sa.create_engine(target)
        try:
            with engine.connect() as con:
                reasons = [r for (r,) in con.execute(sa.text("SELECT reasons FROM crmkit_rejects"))]
        finally:
            engine.dispose()
        assert any(re.search(reason, r) for r in reasons), f"no reject matches /{reason}/: {reasons[:5]}\n{shown}"
    for check in case.sql:
        got = query(target, check["query"])
        assert got == check["equals"], f"{check['query']} gave {got!r}, expected {check['equals']!r}\n{shown}"
