"""Schema versions of a target database, through Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

SCRIPTS = Path(__file__).parent / "alembic"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    return cfg


def head() -> str:
    """The newest schema revision(s) this crmkit knows (``a+b`` while branches are unmerged)."""
    return "+".join(sorted(ScriptDirectory.from_config(_config()).get_heads()))


def current(engine: Engine) -> str | None:
    """The revision(s) the target is at, or None for a database crmkit never touched."""
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return "+".join(sorted(heads)) if heads else None


def upgrade(engine: Engine, revision: str = "heads") -> tuple[str | None, str]:
    """Bring the target schema to ``revision``; returns (before, after)."""
    before = current(engine)
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return before, current(engine) or ""


def autogenerate(engine: Engine, message: str) -> None:
    """Developer helper: write a new revision from the models' difference to ``engine``."""
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)


def connect(url: str) -> Engine:
    """An engine for the target that has been shown to connect (else one TargetError line)."""
    from sqlalchemy import create_engine, exc as sa_exc

    from crmkit.errors import TargetError
    from migrate.extract import mask_url

    try:
        engine = create_engine(url)
    except Exception as exc:
        raise TargetError(f"target {mask_url(url)}: not a usable database URL ({str(exc).splitlines()[0]})") from None
    if engine.dialect.name not in ("sqlite", "postgresql"):
        raise TargetError(f"target {mask_url(url)}: only sqlite and postgresql targets are supported")
    if engine.dialect.name == "sqlite":
        _transactional_ddl(engine)
    try:
        with engine.connect():
            pass
    except sa_exc.DBAPIError as exc:
        orig = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise TargetError(f"cannot connect to target {mask_url(url)}: {orig}") from None
    return engine


def _transactional_ddl(engine: Engine) -> None:
    """SQLite can roll DDL back, but Python's sqlite3 module opens no transaction for it: a
    process killed while the schema is being created would leave half of it (tables without
    ``alembic_version``, which the next run then fails to create).  Let SQLAlchemy's BEGIN be
    the real one (the recipe in SQLAlchemy's pysqlite notes), so an upgrade is all or nothing."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


def ensure_schema(url: str) -> tuple[str | None, str]:
    """Create or upgrade the target's CRM schema to this crmkit's head revision."""
    engine = connect(url)
    try:
        if current(engine) == head():
            return head(), head()
        return upgrade(engine)
    finally:
        engine.dispose()
