"""Files a mapping names stay inside its project (issue 22 item 2), through the CLI.

Every escape (``../``, an absolute path, a symlink out of the folder, a SQLite URL, a
``validate:`` rules file, a ``dedupe:`` rules file, a module under ``imports:``, a filter
that reads a file) is one line, exit 2, naming the mapping's file:line and how to allow it,
and nothing of the outside file is ever printed.  ``--allow-path DIR`` lets it through.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import cli, write_case

SENTINEL = "SENTINEL-c0nf1ne-4242"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the project holding files with the sentinel (CSV, YAML, SQLite, Python)."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.csv").write_text(f"id,name\n{SENTINEL},x\n", encoding="utf-8")
    (out / "rules.yaml").write_text(f"{SENTINEL}: [\n", encoding="utf-8")
    (out / "plain.txt").write_text(f"{SENTINEL}:root:x:0:0\n", encoding="utf-8")
    (out / f"{'evil'}_checks.py").write_text(f"print({SENTINEL!r})\n", encoding="utf-8")
    with sqlite3.connect(out / "legacy.sqlite") as db:
        db.execute("CREATE TABLE t (id TEXT, name TEXT)")
        db.execute("INSERT INTO t VALUES (?, 'x')", (SENTINEL,))
    return out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pyproject.toml").write_text("", encoding="utf-8")
    (folder / "mappings").mkdir()
    return folder


def case(project: Path, source: str = "{kind: csv, path: source.csv}", extra: str = "") -> Path:
    mapping = write_case(
        project / "mappings", "accounts", {"name": "name"}, ["id", "name"], [["1", "a"]], source=source
    )
    if extra:
        mapping.write_text(mapping.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return mapping


def refused(res, mapping: Path, line: int | None = None) -> None:
    out = res.stdout + res.stderr
    assert res.exit_code == 2, out
    assert SENTINEL not in out
    assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"Error: {mapping}:"), res.stderr
    assert "--allow-path" in res.stderr
    if line is not None:
        assert res.stderr.startswith(f"Error: {mapping}:{line}:"), res.stderr


@pytest.mark.parametrize("command", ["plan", "run"])
def test_dot_dot_path_out_of_the_project_is_refused(project, outside, command, tmp_path):
    mapping = case(project, "{kind: csv, path: ../../outside/secret.csv}")
    extra = ["--target", f"sqlite:///{tmp_path / 'crm.db'}"] if command == "run" else []
    res = cli("migrate", command, str(mapping), *extra)
    refused(res, mapping, line=5)
    assert not (tmp_path / "crm.db").exists()


def test_absolute_path_outside_is_refused_and_allowed_with_allow_path(project, outside):
    mapping = case(project, f"{{kind: csv, path: {outside / 'secret.csv'}}}")
    refused(cli("migrate", "plan", str(mapping)), mapping, line=5)
    res = cli("migrate", "plan", str(mapping), "--allow-path", str(outside), "--json")
    assert res.exit_code == 0, res.stderr  # the user allowed the folder: it is read


def test_symlink_out_of_the_folder_is_refused(project, outside):
    (project / "mappings" / "link.csv").symlink_to(outside / "secret.csv")
    mapping = case(project, "{kind: csv, path: link.csv}")
    refused(cli("migrate", "plan", str(mapping)), mapping, line=5)


def test_symlinked_folder_out_of_the_project_is_refused(project, outside):
    (project / "data").symlink_to(outside, target_is_directory=True)
    mapping = case(project, "{kind: csv, path: ../data/secret.csv}")
    refused(cli("migrate", "plan", str(mapping)), mapping, line=5)


def test_a_file_elsewhere_in_the_project_is_allowed(project):
    (project / "data").mkdir()
    (project / "data" / "accts.csv").write_text("id,name\n1,a\n", encoding="utf-8")
    mapping = case(project, "{kind: csv, path: ../data/accts.csv}")
    res = cli("migrate", "plan", str(mapping), "--json")
    assert res.exit_code == 0, res.stderr


def test_without_a_project_marker_the_mapping_folder_is_the_project(tmp_path, outside):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "sub").mkdir()
    mapping = write_case(
        bare / "sub", "accounts", {"name": "name"}, ["id"], [["1"]], source="{kind: csv, path: ../x.csv}"
    )
    res = cli("migrate", "plan", str(mapping))
    assert res.exit_code == 2 and "outside the project" in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "url",
    ["sqlite:///../../outside/legacy.sqlite", "sqlite:///{outside}/legacy.sqlite"],
    ids=["relative", "absolute"],
)
def test_sqlite_url_outside_is_refused(project, outside, url):
    source = f"{{kind: sql, url: '{url.format(outside=outside)}', table: t}}"
    mapping = case(project, source)
    refused(cli("migrate", "plan", str(mapping)), mapping, line=5)


def test_sqlite_url_from_the_environment_is_confined_too(project, outside):
    mapping = case(project, "{kind: sql, url: '${LEGACY}', table: t}")
    res = cli("migrate", "plan", str(mapping), env={"LEGACY": f"sqlite:///{outside / 'legacy.sqlite'}"})
    assert res.exit_code == 2 and SENTINEL not in res.stdout + res.stderr
    assert "outside the project" in res.stderr and res.stderr.count("\n") == 1


def test_driver_option_file_outside_is_refused(project, outside):
    source = f"{{kind: sql, url: 'mysql+pymysql://u@127.0.0.1/db?read_default_file={outside}/plain.txt', table: t}}"
    mapping = case(project, source)
    refused(cli("migrate", "plan", str(mapping)), mapping, line=5)


@pytest.mark.parametrize("rules", ["../../outside/rules.yaml", "{outside}/plain.txt"], ids=["relative", "absolute"])
def test_validate_rules_file_outside_is_refused(project, outside, rules):
    mapping = case(project, extra=f"validate: {rules.format(outside=outside)}\n")
    refused(cli("migrate", "plan", str(mapping)), mapping)


def test_dedupe_rules_file_outside_is_refused(project, outside):
    mapping = case(project, extra=f"dedupe: {{accounts: {outside / 'rules.yaml'}}}\n")
    refused(cli("migrate", "plan", str(mapping)), mapping)


def test_imports_module_outside_the_project_is_refused(project, outside, monkeypatch):
    monkeypatch.syspath_prepend(str(outside))
    mapping = case(project, extra="validate: {imports: [evil_checks]}\n")
    res = cli("migrate", "plan", str(mapping))
    refused(res, mapping)


def test_filter_that_reads_a_file_is_refused_when_the_mapping_loads(project, outside):
    condition = f"id IN (SELECT column_1 FROM read_csv('{outside / 'plain.txt'}'))"
    mapping = write_case(
        project / "mappings", "accounts", {"name": "name"}, ["id", "name"], [["1", "a"]], filter_=condition
    )
    res = cli("migrate", "plan", str(mapping))
    assert res.exit_code == 2 and SENTINEL not in res.stdout + res.stderr
    assert res.stderr.startswith(f"Error: {mapping}:") and res.stderr.count("\n") == 1
    assert "subquery is not allowed" in res.stderr


def test_allow_path_does_not_outlive_its_command(project, outside):
    mapping = case(project, f"{{kind: csv, path: {outside / 'secret.csv'}}}")
    cli("migrate", "plan", str(mapping), "--allow-path", str(outside))
    refused(cli("migrate", "plan", str(mapping)), mapping, line=5)
