"""The target CRM schema: SQLAlchemy 2.0 typed models.

Every CRM entity carries the same provenance columns (:class:`Provenance`):
``source_name`` and ``legacy_key`` say where a migrated row came from,
``row_hash`` is a stable hash of its mapped fields (delta detection), and
``run_id`` names the migration run that last wrote it, ``image_hash`` seals the row as
that run left it (rollback sees later edits).  Rows created in the
CRM itself leave them NULL.

Bookkeeping tables are prefixed ``crmkit_``.  The schema is versioned with
Alembic (``crmkit db upgrade``); change a model, then add a revision under
``crmkit/schema/alembic/versions``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crmkit.schema.vocabulary import (
    ACTIVITY_TYPES,
    CASE_STATUSES,
    LEAD_STATUSES,
    PRIORITIES,
    ROLES,
    RUN_KINDS,
    RUN_STATUSES,
    SEVERITIES,
    STAGES,
    TIERS,
    derived,
    enum,
    personal,
    public,
)

#: the most characters a legacy key holds (provenance, id map, rejects): a longer key is a reject
LEGACY_KEY_LENGTH = 200

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """A model's table, typed as one (SQLAlchemy types ``__table__`` as any FROM clause)."""
    return cast(Table, model.__table__)


class Provenance:
    """Columns every migrated entity row carries."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_name: Mapped[str | None] = mapped_column(String(100), info=public())
    # public: a key, not a person's data; the training mask re-keys it anyway (an HMAC)
    legacy_key: Mapped[str | None] = mapped_column(String(LEGACY_KEY_LENGTH), info=public())
    row_hash: Mapped[int | None] = mapped_column(BigInteger, info=derived())
    run_id: Mapped[int | None] = mapped_column(Integer, info=derived())
    # a hash of every other column as the run left the row: rollback leaves alone (or refuses)
    # what changed since (migrate/safety/image.py)
    image_hash: Mapped[int | None] = mapped_column(BigInteger, info=derived())


def _fk(table: str) -> Mapped[int | None]:
    """An optional reference, with a partial index over the rows that have one (see SPARSE_INDEXED)."""
    return mapped_column(ForeignKey(f"{table}.id"), info={"sparse_index": True})


class Department(Provenance, Base):
    __tablename__ = "departments"
    code: Mapped[str] = mapped_column(String(50), info=public())
    name: Mapped[str] = mapped_column(String(200), info=public())
    region: Mapped[str | None] = mapped_column(String(100), info=public())


class User(Provenance, Base):
    """A CRM user: owner of accounts, opportunities, cases."""

    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String(200), info=personal())
    email: Mapped[str | None] = mapped_column(String(320), info=personal())
    department_id: Mapped[int | None] = _fk("departments")
    role: Mapped[str] = mapped_column(String(20), default="sales", info=enum(ROLES))
    active: Mapped[bool] = mapped_column(Boolean, default=True, info=public())


class Account(Provenance, Base):
    """An organisation the company sells to or serves."""

    __tablename__ = "accounts"
    name: Mapped[str] = mapped_column(String(300), info=personal())
    industry: Mapped[str | None] = mapped_column(String(100), info=public())
    website: Mapped[str | None] = mapped_column(String(300), info=personal())
    phone: Mapped[str | None] = mapped_column(String(32), info=personal())
    email: Mapped[str | None] = mapped_column(String(320), info=personal())
    address: Mapped[str | None] = mapped_column(String(500), info=personal())
    city: Mapped[str | None] = mapped_column(String(100), info=public())
    country: Mapped[str | None] = mapped_column(String(2), info=public())
    segment: Mapped[str | None] = mapped_column(String(50), info=public())
    tier: Mapped[str | None] = mapped_column(String(20), info=enum(TIERS))
    owner_id: Mapped[int | None] = _fk("users")
    department_id: Mapped[int | None] = _fk("departments")
    created_at: Mapped[dt.date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True, info=public())


class Contact(Provenance, Base):
    """A person, usually working for an account."""

    __tablename__ = "contacts"
    account_id: Mapped[int | None] = _fk("accounts")
    first_name: Mapped[str | None] = mapped_column(String(100), info=personal())
    last_name: Mapped[str | None] = mapped_column(String(100), info=personal())
    full_name: Mapped[str] = mapped_column(String(200), info=personal())
    email: Mapped[str | None] = mapped_column(String(320), info=personal())
    phone: Mapped[str | None] = mapped_column(String(32), info=personal())
    mobile: Mapped[str | None] = mapped_column(String(32), info=personal())
    title: Mapped[str | None] = mapped_column(String(100), info=public())
    address: Mapped[str | None] = mapped_column(String(500), info=personal())
    city: Mapped[str | None] = mapped_column(String(100), info=public())
    country: Mapped[str | None] = mapped_column(String(2), info=public())
    birth_date: Mapped[dt.date | None] = mapped_column(Date, info=personal())
    consent_to_contact: Mapped[bool | None] = mapped_column(Boolean, info=public())
    owner_id: Mapped[int | None] = _fk("users")
    department_id: Mapped[int | None] = _fk("departments")
    notes: Mapped[str | None] = mapped_column(Text, info=personal())
    created_at: Mapped[dt.date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True, info=public())


class Lead(Provenance, Base):
    __tablename__ = "leads"
    full_name: Mapped[str] = mapped_column(String(200), info=personal())
    company: Mapped[str | None] = mapped_column(String(300), info=personal())
    email: Mapped[str | None] = mapped_column(String(320), info=personal())
    phone: Mapped[str | None] = mapped_column(String(32), info=personal())
    lead_source: Mapped[str | None] = mapped_column(String(100), info=public())
    status: Mapped[str] = mapped_column(String(20), default="new", info=enum(LEAD_STATUSES))
    owner_id: Mapped[int | None] = _fk("users")
    department_id: Mapped[int | None] = _fk("departments")
    created_at: Mapped[dt.date | None] = mapped_column(Date)


class Opportunity(Provenance, Base):
    __tablename__ = "opportunities"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(300), info=personal())
    stage: Mapped[str] = mapped_column(String(30), info=enum(STAGES))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2), info=public())
    currency: Mapped[str | None] = mapped_column(String(3), info=public())
    close_date: Mapped[dt.date | None] = mapped_column(Date)
    probability: Mapped[int | None] = mapped_column(Integer, info=public())
    owner_id: Mapped[int | None] = _fk("users")
    department_id: Mapped[int | None] = _fk("departments")
    created_at: Mapped[dt.date | None] = mapped_column(Date)


class Activity(Provenance, Base):
    __tablename__ = "activities"
    type: Mapped[str] = mapped_column(String(20), info=enum(ACTIVITY_TYPES))
    subject: Mapped[str] = mapped_column(String(300), info=personal())
    body: Mapped[str | None] = mapped_column(Text, info=personal())
    occurred_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    done: Mapped[bool | None] = mapped_column(Boolean, info=public())
    account_id: Mapped[int | None] = _fk("accounts")
    contact_id: Mapped[int | None] = _fk("contacts")
    opportunity_id: Mapped[int | None] = _fk("opportunities")
    owner_id: Mapped[int | None] = _fk("users")


class Case(Provenance, Base):
    """A service ticket."""

    __tablename__ = "cases"
    account_id: Mapped[int | None] = _fk("accounts")
    contact_id: Mapped[int | None] = _fk("contacts")
    subject: Mapped[str] = mapped_column(String(300), info=personal())
    description: Mapped[str | None] = mapped_column(Text, info=personal())
    status: Mapped[str] = mapped_column(String(20), info=enum(CASE_STATUSES))
    priority: Mapped[str] = mapped_column(String(10), info=enum(PRIORITIES))
    opened_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    sla_due_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    owner_id: Mapped[int | None] = _fk("users")
    department_id: Mapped[int | None] = _fk("departments")


class Tag(Provenance, Base):
    """A customer classification label."""

    __tablename__ = "tags"
    name: Mapped[str] = mapped_column(String(100), info=public())
    category: Mapped[str | None] = mapped_column(String(100), info=public())


class Tagging(Provenance, Base):
    """A tag applied to an account or a contact."""

    __tablename__ = "taggings"
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"), index=True)
    account_id: Mapped[int | None] = _fk("accounts")
    contact_id: Mapped[int | None] = _fk("contacts")


# --- bookkeeping -----------------------------------------------------------


class Run(Base):
    """One migration run (or dry run, verify, rollback...)."""

    __tablename__ = "crmkit_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="run", info=enum(RUN_KINDS))
    mapping_name: Mapped[str] = mapped_column(String(200))
    mapping_hash: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(500))  # password masked
    operator: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(30), info=enum(RUN_STATUSES))
    counts_json: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    sources_hash: Mapped[str | None] = mapped_column(String(64))  # what a resume must find unchanged


class IdMap(Base):
    """Every legacy key, per source and entity, to the target row it became."""

    __tablename__ = "crmkit_id_map"
    entity: Mapped[str] = mapped_column(String(50), primary_key=True)
    source_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    legacy_key: Mapped[str] = mapped_column(String(LEGACY_KEY_LENGTH), primary_key=True)
    target_id: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int] = mapped_column(Integer)


class Reject(Base):
    """A source row that did not load (severity ``error``), or loaded with a value left empty
    (``warning``: an ``on_error: warn`` field or a validation warning), with the reasons."""

    __tablename__ = "crmkit_rejects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    entity: Mapped[str] = mapped_column(String(50))
    source_name: Mapped[str] = mapped_column(String(100))
    row_number: Mapped[int] = mapped_column(Integer)
    legacy_key: Mapped[str | None] = mapped_column(String(LEGACY_KEY_LENGTH))
    reasons: Mapped[str] = mapped_column(Text)
    raw_json: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(10), server_default="error", info=enum(SEVERITIES))


Index("ix_crmkit_id_map_target", IdMap.entity, IdMap.target_id)

#: CRM entities in dependency order (parents first).
ENTITY_MODELS: dict[str, type[Base]] = {
    m.__tablename__: m for m in (Department, User, Account, Contact, Lead, Opportunity, Activity, Case, Tag, Tagging)
}
PROVENANCE_COLUMNS = ("id", "source_name", "legacy_key", "row_hash", "run_id", "image_hash")

#: optional references, indexed only where set (``WHERE col IS NOT NULL``): lookups by a
#: parent id use the index as before, and a bulk load of rows without an owner or a
#: department builds nothing for them (schema revision 0007)
SPARSE_INDEXED: list[tuple[str, str]] = []
for _model in ENTITY_MODELS.values():
    for _col in table_of(_model).columns:
        if _col.info.get("sparse_index"):
            Index(
                f"ix_{_model.__tablename__}_{_col.name}",
                _col,
                postgresql_where=_col.isnot(None),
                sqlite_where=_col.isnot(None),
            )
            SPARSE_INDEXED.append((_model.__tablename__, _col.name))


# --- migration safety (resume, rollback, locks, audit) ------------------------------


class Checkpoint(Base):
    """A batch a run has committed: written in the same transaction as the batch's rows."""

    __tablename__ = "crmkit_checkpoints"
    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(50), primary_key=True)
    source_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    phase: Mapped[str] = mapped_column(String(20), primary_key=True)  # insert|update|reject|vanish|idmap-pending
    batch_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)


class Lock(Base):
    """One running migration per mapping and target; a dead holder's lock is taken over."""

    __tablename__ = "crmkit_locks"
    mapping_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[dt.datetime] = mapped_column(DateTime)


class Audit(Base):
    """Every run, resume, verify and rollback: who, when, what, with which outcome."""

    __tablename__ = "crmkit_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    operator: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))  # run|dry_run|resume|verify|rollback
    run_id: Mapped[int | None] = mapped_column(Integer)
    mapping_name: Mapped[str | None] = mapped_column(String(200))
    mapping_hash: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(500))  # password masked
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)


def _before_image_table(model: type[Base]) -> None:
    """``crmkit_before_<entity>``: the rows a run updated, as they were before it (for rollback)."""
    from sqlalchemy import Column

    src = table_of(model)
    cols = [Column("before_run_id", Integer, nullable=False), Column("target_id", Integer, nullable=False)]
    cols += [Column(c.name, c.type, nullable=True) for c in src.columns if c.name != "id"]
    Table(
        f"crmkit_before_{src.name}",
        Base.metadata,
        *cols,
        Index(f"ix_crmkit_before_{src.name}_run", "before_run_id", "target_id"),
    )


for _model in ENTITY_MODELS.values():
    _before_image_table(_model)
