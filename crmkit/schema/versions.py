"""Schema versions of a target database, through Alembic.

A database with no crmkit table at all is built straight from the models and stamped at the
head revision, in one transaction: Alembic's own recipe for a new database ("Building an Up to
Date Database from Scratch").  It spares a run into a fresh target importing Alembic and
replaying every revision (about 0.35 s of each ``crmkit migrate run``).  Every other database
is upgraded through the revisions.  ``tests/integration/test_schema.py`` checks that both ways give the
models' schema, and that :data:`HEADS` is the revisions' head.

Alembic is imported only where a function needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPTS = Path(__file__).parent / "alembic"

#: the head revision(s) of ``alembic/versions``; a new revision must update this (a test says so)
HEADS: tuple[str, ...] = ("0011",)


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    return cfg


def head() -> str:
    """The newest schema revision(s) this crmkit knows (``a+b`` while branches are unmerged)."""
    return "+".join(sorted(HEADS))


def script_heads() -> str:
    """The head revision(s) as Alembic reads them from the revision scripts."""
    from alembic.script import ScriptDirectory

    return "+".join(sorted(ScriptDirectory.from_config(_config()).get_heads()))


def current(engine: Engine) -> str | None:
    """The revision(s) the target is at, or None for a database crmkit never touched."""
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        heads = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return "+".join(sorted(heads)) if heads else None


def upgrade(engine: Engine, revision: str = "heads") -> tuple[str | None, str]:
    """Bring the target schema to ``revision`` through the revisions; returns (before, after)."""
    from alembic import command

    before = current(engine)
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return before, current(engine) or ""


def create_fresh(engine: Engine) -> None:
    """Build the models' schema in a database with no crmkit table, and stamp it at the head,
    all in one transaction (a failure leaves the database as it was)."""
    from sqlalchemy import text

    from crmkit.schema.models import Base

    with engine.begin() as conn:
        Base.metadata.create_all(conn, checkfirst=False)
        # the table and constraint Alembic itself creates (alembic.runtime.migration)
        conn.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        for rev in HEADS:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:rev)"), {"rev": rev})


def _crm_tables(engine: Engine) -> list[str]:
    """The tables of ``engine`` named like one of crmkit's."""
    from sqlalchemy import inspect

    from crmkit.schema.models import Base

    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
    return sorted(present & set(Base.metadata.tables))


def autogenerate(engine: Engine, message: str) -> None:
    """Developer helper: write a new revision from the models' difference to ``engine``."""
    from alembic import command

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)


def connect(url: str) -> Engine:
    """An engine for the target that has been shown to connect (else one TargetError line)."""
    from sqlalchemy import create_engine
    from sqlalchemy import exc as sa_exc

    from crmkit.db.sql import first_line
    from crmkit.db.url import TARGET_DIALECTS, mask_url, unsupported_target
    from crmkit.errors import TargetError

    try:
        engine = create_engine(url)
    except Exception as exc:
        raise TargetError(f"target {mask_url(url)}: not a usable database URL ({first_line(exc)})") from None
    if engine.dialect.name not in TARGET_DIALECTS:
        raise TargetError(unsupported_target(url))
    if engine.dialect.name == "sqlite":
        _transactional_ddl(engine)
    try:
        with engine.connect():
            pass
    except sa_exc.DBAPIError as exc:
        orig = first_line(exc.orig) if exc.orig else str(exc)
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


def _require_tables(engine: Engine, url: str, rev: str) -> None:
    """Every table of the models is there (a dropped one is one line naming it, not a failed
    statement later)."""
    from crmkit.schema.health import missing_tables

    with engine.connect() as conn:
        absent = missing_tables(conn)
    if absent:
        from crmkit.db.url import mask_url
        from crmkit.errors import TargetError

        shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
        raise TargetError(
            f"target {mask_url(url)} is at schema {rev} but has no table {shown}: "
            f"run `crmkit db repair --target {mask_url(url)}` to recreate it"
        )


def ensure_schema(url: str) -> tuple[str | None, str]:
    """Create or upgrade the target's CRM schema to this crmkit's head revision."""
    engine = connect(url)
    try:
        before = current(engine)
        if before == head():
            _require_tables(engine, url, before)
            return before, before
        if before is None:
            clash = _crm_tables(engine)
            if clash:
                from crmkit.db.url import mask_url
                from crmkit.errors import TargetError

                shown = ", ".join(clash[:3]) + (f" and {len(clash) - 3} more" if len(clash) > 3 else "")
                raise TargetError(
                    f"target {mask_url(url)} has tables named like crmkit's ({shown}) but no schema version "
                    "(no alembic_version table): point --target at an empty database or one crmkit created"
                )
            try:
                create_fresh(engine)
            except Exception:
                if current(engine) != head():
                    raise
            return None, head()  # (or another run, started at the same moment, created it)
        try:
            return upgrade(engine)
        except Exception:
            if current(engine) != head():
                raise
            return before, head()  # another run upgraded it meanwhile
    finally:
        engine.dispose()
