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


def _index_sql(url: str, name: str) -> str:
    from sqlalchemy import text

    engine = create_engine(url)
    query = ("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n" if url.startswith("sqlite")
             else "SELECT indexdef FROM pg_indexes WHERE indexname = :n")
    with engine.connect() as conn:
        found = conn.execute(text(query), {"n": name}).scalar()
    engine.dispose()
    return str(found or "")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_optional_references_are_indexed_only_where_set(request, backend, tmp_path):
    """compare_metadata does not look at an index's WHERE: this does, after the revisions and
    after a bulk load (which drops and rebuilds the indexes from the models)."""
    from crmkit.schema.models import SPARSE_INDEXED

    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    assert cli("db", "upgrade", "--target", url).exit_code == 0
    assert ("contacts", "owner_id") in SPARSE_INDEXED and ("opportunities", "account_id") not in SPARSE_INDEXED
    for table, column in SPARSE_INDEXED:
        assert "IS NOT NULL" in _index_sql(url, f"ix_{table}_{column}").replace('"', ""), (table, column)
    assert "WHERE" not in _index_sql(url, "ix_opportunities_account_id")  # required: a plain index
    from migrate.load import open_loader

    loader = open_loader(url)
    try:
        loader.drop_indexes("contacts")
        assert _index_sql(url, "ix_contacts_owner_id") == ""
        loader.create_indexes("contacts")
    finally:
        loader.close()
    assert "owner_id IS NOT NULL" in _index_sql(url, "ix_contacts_owner_id").replace('"', "").replace("(", "").replace(")", "")


def test_a_schema_creation_that_dies_midway_leaves_nothing_and_the_next_one_completes(tmp_path, monkeypatch):
    """SQLite DDL is transactional only if a transaction is really open (Python's sqlite3 opens
    none for DDL): a run killed while it created the schema left tables without
    alembic_version, and every later run failed with 'table ... already exists'."""
    import alembic.operations
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    real = alembic.operations.Operations.create_table
    made: list[str] = []

    def dies_after_three(self, name, *args, **kwargs):
        if len(made) == 3:
            raise RuntimeError("killed")
        made.append(name)
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(alembic.operations.Operations, "create_table", dies_after_three)
    with pytest.raises(RuntimeError, match="killed"):
        versions.ensure_schema(url)
    monkeypatch.undo()
    assert len(made) == 3
    engine = create_engine(url)
    with engine.connect() as conn:
        left = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars().all()
    engine.dispose()
    assert left == []
    assert versions.ensure_schema(url)[1] == versions.head()
