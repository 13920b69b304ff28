"""Both ways to a target's schema build exactly the schema the models describe, on SQLite and
PostgreSQL: the Alembic revisions (any database crmkit touched before), and the models
created at once and stamped at the head (a database with no crmkit table)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from crmkit.schema import versions
from crmkit.schema.models import Base
from tests.conftest import cli

WAYS = ["fresh", "revisions"]


@pytest.fixture
def empty_url(request, backend):
    """An empty database of ``backend``: PostgreSQL's module database is emptied first."""
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    if backend == "postgresql":
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    return url


def _build(url: str, way: str) -> None:
    if way == "fresh":  # what `crmkit db upgrade` and every run do to a database with no crmkit table
        res = cli("db", "upgrade", "--target", url)
        assert res.exit_code == 0, res.output
        assert res.output.strip() == f"schema upgraded: empty -> {versions.head()}"
    else:
        engine = versions.connect(url)
        try:
            assert versions.upgrade(engine) == (None, versions.head())
        finally:
            engine.dispose()


def test_heads_names_the_head_of_the_revision_scripts():
    assert versions.head() == versions.script_heads(), (
        "a revision was added: set crmkit.schema.versions.HEADS to its id"
    )


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_each_way_builds_the_models_schema_with_no_drift(empty_url, way):
    _build(empty_url, way)
    assert cli("db", "current", "--target", empty_url).output.strip() == f"{versions.head()} (head)"
    assert "already at" in cli("db", "upgrade", "--target", empty_url).output
    engine = create_engine(empty_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        stamped = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()
    assert diff == [], f"models and revisions disagree: {diff}"
    assert "+".join(sorted(stamped)) == versions.head()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_at_an_older_revision_is_upgraded_through_the_revisions(empty_url):
    engine = versions.connect(empty_url)
    try:
        versions.upgrade(engine, "0002")
    finally:
        engine.dispose()
    assert versions.ensure_schema(empty_url) == ("0002", versions.head())
    engine = create_engine(empty_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_current_of_an_untouched_database_is_none(sqlite_url):
    assert cli("db", "current", "--target", sqlite_url).output.startswith("none")


def _index_sql(url: str, name: str) -> str:
    engine = create_engine(url)
    query = (
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"
        if url.startswith("sqlite")
        else "SELECT indexdef FROM pg_indexes WHERE indexname = :n"
    )
    with engine.connect() as conn:
        found = conn.execute(text(query), {"n": name}).scalar()
    engine.dispose()
    return str(found or "")


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_optional_references_are_indexed_only_where_set(empty_url, way):
    """compare_metadata does not look at an index's WHERE: this does, after either way and
    after a bulk load (which drops and rebuilds the indexes from the models)."""
    from crmkit.schema.models import SPARSE_INDEXED

    url = empty_url
    _build(url, way)
    assert ("contacts", "owner_id") in SPARSE_INDEXED and ("opportunities", "account_id") not in SPARSE_INDEXED
    for table, column in SPARSE_INDEXED:
        assert "IS NOT NULL" in _index_sql(url, f"ix_{table}_{column}").replace('"', ""), (table, column)
    assert "WHERE" not in _index_sql(url, "ix_opportunities_account_id")  # required: a plain index
    from crmkit.db.loader import open_loader

    loader = open_loader(url)
    try:
        loader.drop_indexes("contacts")
        assert _index_sql(url, "ix_contacts_owner_id") == ""
        loader.create_indexes("contacts")
    finally:
        loader.close()
    assert "owner_id IS NOT NULL" in _index_sql(url, "ix_contacts_owner_id").replace('"', "").replace("(", "").replace(
        ")", ""
    )


def _tables(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        left = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars().all()
    engine.dispose()
    return list(left)


@pytest.mark.parametrize("way", WAYS)
def test_a_schema_creation_that_dies_midway_leaves_nothing_and_the_next_one_completes(tmp_path, monkeypatch, way):
    """SQLite DDL is transactional only if a transaction is really open (Python's sqlite3 opens
    none for DDL): a run killed while it created the schema left tables without
    alembic_version, and every later run failed with 'table ... already exists'."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    made: list[str] = []
    if way == "revisions":
        import alembic.operations

        owner, method = alembic.operations.Operations, "create_table"
    else:
        from sqlalchemy.sql.ddl import SchemaGenerator

        owner, method = SchemaGenerator, "visit_table"
    real = getattr(owner, method)

    def dies_after_three(self, table, *args, **kwargs):
        if len(made) == 3:
            raise RuntimeError("killed")
        made.append(str(getattr(table, "name", table)))
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(owner, method, dies_after_three)
    with pytest.raises(RuntimeError, match="killed"):
        if way == "fresh":
            versions.ensure_schema(url)
        else:
            _build(url, way)
    monkeypatch.undo()
    assert len(made) == 3
    assert _tables(url) == []
    assert versions.ensure_schema(url) == (None, versions.head())


def test_a_database_with_crm_tables_but_no_version_is_refused_in_one_line(sqlite_url):
    """Tables of crmkit's names without alembic_version (made by hand, or by another tool) are
    neither built over nor half-upgraded: one line, exit 2, the database left as it was."""
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)"))
    engine.dispose()
    res = cli("db", "upgrade", "--target", sqlite_url)
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        f"Error: target {sqlite_url} has tables named like crmkit's (accounts) but no schema version "
        "(no alembic_version table): point --target at an empty database or one crmkit created"
    ]
    assert _tables(sqlite_url) == ["accounts"]
