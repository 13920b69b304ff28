"""The API's database layer: every API statement gives the same results on each path.

On PostgreSQL the API runs its statements on psycopg directly (compiled once, converted as
SQLAlchemy would: :mod:`crmkit.api.db.compiled`), over an async pool or a thread pool; the
reference is SQLAlchemy's own execution (:class:`crmkit.api.db.Database`).  Each request
function of the API runs on all three over the migrated example estate, and the answers must
be equal, value for value and type for type.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, literal_column, select, text, update

from crmkit.api import app as api_app
from crmkit.api import auth, queries, reports
from crmkit.api.db import Database, PgDatabase, SyncPgDatabase, database, make_engine, run_to_end
from crmkit.api.db.compiled import NeedsSqlAlchemy, compiled
from crmkit.api.policy import Principal
from crmkit.api.resources import RESOURCES
from crmkit.api.server import APP_FACTORY, api_env, uvicorn_command
from crmkit.settings import Settings
from tests.conftest import MAPPINGS, cli

PATHS = ("sqlalchemy", "psycopg-async", "psycopg-threads")
ADMIN, SALES, MANAGER = "huang.qiang@acme.example", "wang.fang@acme.example", "li.wei@acme.example"


@pytest.fixture(scope="module")
def engine(pg_url: str) -> Iterator[Engine]:
    assert cli("migrate", "run", str(MAPPINGS / "acme-legacy.yaml"), "--target", pg_url).exit_code == 0
    assert cli("serve", "index", "--target", pg_url).exit_code == 0  # brings the schema to the head
    eng = make_engine(pg_url, pool_size=2)
    yield eng
    eng.dispose()


def principal(engine: Engine, email: str) -> Principal:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT id, name, email, role, department_id FROM users WHERE email = :e"), {"e": email}
        ).one()
    return Principal(row.id, row.name, row.email, row.role, row.department_id)


def on_path(engine: Engine, path: str, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """``func(database, *args)`` on one path, with a database opened for the call."""
    if path == "sqlalchemy":
        return run_to_end(func, Database(engine), *args)

    async def call() -> Any:
        db = PgDatabase(engine, 2) if path == "psycopg-async" else SyncPgDatabase(engine, 2)
        await db.open()
        try:
            return await func(db, *args)
        finally:
            await db.close()

    return asyncio.run(call())


def typed(value: Any) -> Any:
    """``value`` with the type of every part, so that 1 != 1.0 != Decimal(1) and a date != a string."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def same_on_every_path(engine: Engine, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    results = {path: typed(on_path(engine, path, func, *args)) for path in PATHS}
    for path in PATHS[1:]:
        assert results[path] == results["sqlalchemy"], f"{path} differs from SQLAlchemy in {func.__name__}{args}"
    return on_path(engine, "sqlalchemy", func, *args)


def first_id(engine: Engine, table: str, where: str = "TRUE", **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT min(id) FROM {table} WHERE {where}"), params).scalar_one())


# --- reads -----------------------------------------------------------------------------


@pytest.mark.parametrize("email", [ADMIN, SALES], ids=["all", "department"])
def test_every_list_and_search_is_the_same_on_every_path(engine, email):
    who = principal(engine, email)
    for res in RESOURCES.values():
        base = {"q": None, "limit": 7, "offset": 0}
        page = same_on_every_path(engine, queries.list_records, res, who, base)
        same_on_every_path(engine, queries.list_records, res, who, {**base, "offset": 5})
        same_on_every_path(engine, queries.list_records, res, who, {**base, "q": "a%_\\"})
        if res.phones:
            same_on_every_path(engine, queries.list_records, res, who, {**base, "q": "+86 138"})
        if "owner_id" in res.table.c:
            same_on_every_path(engine, queries.list_records, res, who, {**base, "owner_id": who.user_id})
        for item in page["items"][:2]:
            same_on_every_path(engine, queries.get_record, res, who, item["id"])


def test_reports_audit_readiness_and_authentication_are_the_same_on_every_path(engine):
    admin, manager = principal(engine, ADMIN), principal(engine, MANAGER)
    report = same_on_every_path(engine, reports.pipeline, admin, None)
    assert report["by_stage"] and all(isinstance(s["amount"], Decimal) for s in report["by_stage"])
    same_on_every_path(engine, reports.pipeline, admin, manager.department_id)
    same_on_every_path(engine, reports.pipeline, manager, None)
    same_on_every_path(engine, api_app._ready)
    token = auth.mint(engine, [admin.user_id], label="parity")[admin.user_id]
    who = same_on_every_path(engine, auth.authenticate_in, token)
    assert who == replace(admin, token_id=auth.token_id(engine, token), scope="api")
    for entity, entity_id in ((None, None), ("accounts", None), ("accounts", 1), ("tokens", None)):
        same_on_every_path(engine, queries.audit_entries, entity, entity_id, 5, 0)


# --- writes: each path makes its own record; the answers differ only in ids and times -----


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in ("id", "entity_id", "at")}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


@pytest.mark.parametrize("email", [ADMIN, SALES], ids=["all", "department"])
def test_creates_updates_and_their_audit_rows_are_the_same_on_every_path(engine, email):
    who = principal(engine, email)
    acct = first_id(engine, "accounts", "department_id = :d", d=principal(engine, SALES).department_id)
    bodies = {
        "accounts": ({"name": "Parity Co", "tier": "B", "owner_id": who.user_id}, {"tier": "A", "website": "x.test"}),
        "contacts": ({"full_name": "Parity Person", "account_id": acct}, {"email": "p@parity.test"}),
        "opportunities": (
            {"account_id": acct, "name": "Parity deal", "stage": "prospecting", "amount": "1234.50"},
            {"amount": "99.99", "close_date": "2030-01-31"},
        ),
        "activities": ({"type": "call", "subject": "parity", "account_id": acct}, {"done": True}),
    }
    if email == ADMIN:
        bodies["cases"] = ({"subject": "Parity case", "account_id": acct}, {"status": "closed"})
    for name, (body, change) in bodies.items():
        res = RESOURCES[name]
        values = res.create.model_validate(body).model_dump()
        changes = res.update.model_validate(change).model_dump(exclude_unset=True)
        results = {}
        for path in PATHS:
            created = on_path(engine, path, queries.create_record, res, who, values)
            updated = on_path(engine, path, queries.update_record, res, who, created["id"], changes)
            audit = on_path(engine, path, queries.audit_entries, name, created["id"], 5, 0)["items"]
            assert [a["action"] for a in audit] == ["update", "create"]
            results[path] = typed(_without_ids([created, updated, audit]))
        for path in PATHS[1:]:
            assert results[path] == results["sqlalchemy"], f"{path} differs from SQLAlchemy writing {name}"


def test_no_api_statement_needs_sqlalchemy_to_fill_in_defaults(engine):
    """The psycopg paths cannot run a statement with Python-side defaults: none of the API's has one."""
    from sqlalchemy import insert

    from crmkit.schema.models import Account

    with pytest.raises(NeedsSqlAlchemy, match="give every column a value"):
        compiled(engine.dialect, insert(Account.__table__), {"name": "x"})
    for stmt in list(queries._STATEMENTS.values()):
        if not getattr(stmt, "is_dml", False):
            compiled(engine.dialect, stmt, {})


# --- the database each app gets, and the settings edge ----------------------------------


def test_the_app_database_follows_the_settings_it_is_given(engine, sqlite_url):
    assert isinstance(database(engine, 3, pg_async=True), PgDatabase)
    threads = database(engine, 3, pg_async=False)
    assert isinstance(threads, SyncPgDatabase) and threads.pool.max_size == 3
    assert type(database(make_engine(f"{sqlite_url}"), 3)) is Database


def test_the_api_process_gets_its_target_in_its_environment_only(monkeypatch):
    before = dict(os.environ)
    target = "postgresql+psycopg://crm:s3cret@127.0.0.1/crm"
    cmd = uvicorn_command("[::1]", 8123, 2)
    env = api_env(target, "/tmp/m", {"CRMKIT_API_POOL": "3"})
    assert not any("s3cret" in part or "crm@" in part for part in cmd) and APP_FACTORY in cmd
    assert cmd[cmd.index("--host") + 1] == "::1"
    assert env["CRMKIT_API_TARGET"] == target and env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/m"
    assert dict(os.environ) == before
    settings = Settings.from_env(env)
    assert (settings.api_target, settings.api_pool, settings.metrics_dir) == (target, 3, "/tmp/m")


def test_app_from_env_needs_a_target():
    with pytest.raises(RuntimeError, match="crmkit serve --target"):
        api_app.app_from_env(Settings(api_target=None))


def test_a_failed_write_is_rolled_back_before_its_connection_is_reused(engine):
    """With one connection per pool, the next session gets the one the failed write used."""
    res = RESOURCES["accounts"]

    async def fail_then_read(db: Any) -> Any:
        await db.open()
        try:
            with pytest.raises(ZeroDivisionError):
                async with db.session(write=True) as s:
                    await s.run(update(res.table).values(tier="Z"), {})
                    raise ZeroDivisionError
            async with db.session() as s:
                return await s.first(select(res.table.c.id).where(res.table.c.tier == "Z").limit(1), {})
        finally:
            await db.close()

    for db in (PgDatabase(engine, 1), SyncPgDatabase(engine, 1)):
        assert asyncio.run(fail_then_read(db)) is None


def test_a_connection_the_server_cut_is_replaced_after_one_failed_request(engine):
    """The request that meets it fails (the API answers 503); the pool discards it, the next request works."""
    import psycopg

    pid_stmt = select(literal_column("pg_backend_pid()").label("pid"))

    async def cut_then_retry(db: Any) -> Any:
        await db.open()
        try:
            async with db.session() as s:
                pid = (await s.first(pid_stmt, {}))["pid"]
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(psycopg.OperationalError):
                async with db.session() as s:
                    await s.first(pid_stmt, {})
            async with db.session() as s:
                return (await s.first(pid_stmt, {}))["pid"] != pid
        finally:
            await db.close()

    for db in (PgDatabase(engine, 1), SyncPgDatabase(engine, 1)):
        assert asyncio.run(cut_then_retry(db)) is True
