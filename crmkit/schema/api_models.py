"""Tables of the reference CRM API: bearer tokens (hashes only) and the audit log of writes.

A token is shown once, when it is minted; the database keeps only its SHA-256
(``token_hash``), so a copy of the database never yields a usable token.  Every
create and update through the API writes one :class:`ApiAudit` row in the same
transaction: who, when, what, and the record before and after (JSON).

Schema revision ``0003`` (``crmkit/schema/alembic/versions/0003_api.py``) creates both;
``0011`` adds a token's scope and the token and client address of each audit row.  Minting
and revoking a token are audited too (entity ``tokens``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.schema.models import Base


class ApiToken(Base):
    """A bearer token of one CRM user; only the SHA-256 of the token is stored."""

    __tablename__ = "crmkit_api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: what the token may do: ``api`` (the CRM resources, as its user's role allows) or ``metrics`` (only /metrics)
    scope: Mapped[str] = mapped_column(String(20), default="api", server_default="api")


class ApiAudit(Base):
    """One write through the API: who, when, which record, before and after."""

    __tablename__ = "crmkit_api_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    user_id: Mapped[int] = mapped_column(Integer)
    user_email: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(10))  # create|update|mint|revoke
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[int] = mapped_column(Integer)
    before_json: Mapped[str | None] = mapped_column(Text)
    after_json: Mapped[str] = mapped_column(Text)
    #: the token the write was made with (for token events: the token minted or revoked)
    token_id: Mapped[int | None] = mapped_column(Integer)
    #: the client's address, or ``cli`` for the command line
    client: Mapped[str | None] = mapped_column(String(64))


Index("ix_crmkit_api_audit_entity", ApiAudit.entity, ApiAudit.entity_id)
