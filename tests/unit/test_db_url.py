"""crmkit.db.url: the one place that says which databases crmkit writes (targets) and reads
(legacy sources), and what the loader, the schema and the CLI say about any other."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crmkit.db.loader import open_loader, preload_driver
from crmkit.db.url import MYSQL_DIALECTS, SOURCE_DIALECTS, TARGET_DIALECTS, dialect_of, mask_url, unsupported_target
from crmkit.errors import TargetError

MYSQL = "mysql+pymysql://reader:secret@127.0.0.1:1/legacy"


def test_targets_are_sqlite_and_postgresql_and_every_target_can_be_a_source() -> None:
    assert TARGET_DIALECTS == ("sqlite", "postgresql")
    assert set(TARGET_DIALECTS) | set(MYSQL_DIALECTS) == set(SOURCE_DIALECTS)


@pytest.mark.parametrize(
    ("url", "dialect"),
    [
        ("sqlite:///crm.db", "sqlite"),
        ("postgresql+psycopg://postgres@127.0.0.1/crm", "postgresql"),
        (MYSQL, "mysql"),
        ("mariadb+pymysql://root@127.0.0.1/legacy", "mariadb"),
        ("not a url", None),
    ],
)
def test_dialect_of(url: str, dialect: str | None) -> None:
    assert dialect_of(url) == dialect


def test_an_unsupported_target_is_refused_before_connecting_with_its_password_masked() -> None:
    with pytest.raises(TargetError) as err:
        open_loader(MYSQL)
    assert str(err.value) == unsupported_target(MYSQL)
    assert str(err.value) == f"target {mask_url(MYSQL)}: only sqlite and postgresql targets are supported"
    assert "secret" not in str(err.value)


def test_the_schema_refuses_the_same_targets_with_the_same_message() -> None:
    from crmkit.schema.versions import connect

    with pytest.raises(TargetError, match="only sqlite and postgresql targets are supported"):
        connect(MYSQL)


def test_a_driver_is_preloaded_only_for_a_target_dialect() -> None:
    preload_driver(MYSQL).join()  # nothing to import: returns at once, raises nothing
    preload_driver("not a url").join()


def test_sandbox_backends_are_the_target_dialects() -> None:
    from crmkit.cli import main

    res = CliRunner().invoke(main, ["sandbox", "create", "--help"])
    assert res.exit_code == 0, res.output
    assert "[sqlite|postgresql]" in res.output


def test_legacy_db_takes_only_a_mysql_or_mariadb_url(tmp_path: Path) -> None:
    from crmkit.cli import main

    scenario = Path(__file__).resolve().parents[2] / "configs" / "training" / "sales-de.yaml"
    args = ["training", "legacy", "--scenario", str(scenario), "--seed", "1", "--out", str(tmp_path), "--legacy-db"]
    res = CliRunner().invoke(main, [*args, "sqlite:///legacy.db"])
    assert res.exit_code == 2 and "--legacy-db takes a MariaDB/MySQL URL" in res.output


def test_first_line_of_a_driver_error_else_its_type() -> None:
    from crmkit.db.sql import first_line

    assert first_line(ValueError("  no such table: t\nLINE 1: SELECT ...\n")) == "no such table: t"
    assert first_line(ValueError("  \n")) == "ValueError"


def test_the_schema_says_one_line_for_an_unusable_url_and_a_target_it_cannot_open(tmp_path: Path) -> None:
    from crmkit.schema.versions import connect

    with pytest.raises(TargetError) as err:
        connect("postgresql+nosuchdriver://u:secret@127.0.0.1/crm")
    assert "not a usable database URL (" in str(err.value) and "\n" not in str(err.value)
    assert "secret" not in str(err.value)
    with pytest.raises(TargetError) as err:
        connect(f"sqlite:///{tmp_path / 'missing' / 'crm.db'}")
    assert str(err.value).startswith("cannot connect to target sqlite:///") and "\n" not in str(err.value)
