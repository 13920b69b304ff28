"""The Alembic revisions build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from crmkit.schema import versions
from crmkit.schema.models import Base
from tests.conftest import cli


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_builds_the_models_schema_with_no_drift(request, backend):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    res = cli("db", "upgrade", "--target", url)
    assert res.exit_code == 0, res.output
    assert cli("db", "current", "--target", url).output.strip() == f"{versions.head()} (head)"
    assert "already at" in cli("db", "upgrade", "--target", url).output
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and revisions disagree: {diff}"


def test_current_of_an_untouched_database_is_none(sqlite_url):
    assert cli("db", "current", "--target", sqlite_url).output.startswith("none")
