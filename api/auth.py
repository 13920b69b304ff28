"""Bearer tokens: minted for a CRM user, shown once, stored only as a SHA-256 hash.

Tokens are 256 random bits (``crm_`` + URL-safe base64), so a plain SHA-256 is enough to
make the stored hash useless to whoever reads the database.  A token is refused when it is
unknown, revoked, expired, or its user is inactive.  A token lives :data:`DEFAULT_TOKEN_DAYS`
unless told otherwise; its scope is ``api`` (the CRM resources) or ``metrics`` (only
``/metrics``).  Minting and revoking are audited (``crmkit_api_audit``, entity ``tokens``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from collections.abc import Iterable
from typing import cast

from sqlalchemy import Connection, Engine, Table, and_, bindparam, insert, or_, select, update

from crmkit.api.db import Database, reading, run_to_end, writing
from crmkit.api.policy import Principal, Unauthorized
from crmkit.errors import CrmkitError
from crmkit.schema.api_models import ApiAudit, ApiToken
from crmkit.schema.models import User
from crmkit.schema.vocabulary import ROLES, TOKEN_SCOPES

TOKENS = cast(Table, ApiToken.__table__)
USERS = cast(Table, User.__table__)
AUDIT = cast(Table, ApiAudit.__table__)
PREFIX = "crm_"
#: days a token lives when its expiry is not given (``CRMKIT_API_TOKEN_DAYS`` for ``crmkit serve token``)
DEFAULT_TOKEN_DAYS = 30
#: the ``client`` of audit rows written by the command line
CLI_CLIENT = "cli"


class TokenError(CrmkitError):
    """A token cannot be minted or revoked: unknown user, inactive user, unknown role."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def find_user(engine: Engine, email: str, active: bool = True) -> tuple[int, str]:
    """The id and role of the (active) user with ``email`` (case-insensitive), else TokenError."""
    stmt = select(USERS.c.id, USERS.c.role, USERS.c.active).where(USERS.c.email.ilike(email.strip()))
    with reading(engine) as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        raise TokenError(f"no user with email {email!r} in the target: check the spelling (users.email)")
    if len(rows) > 1:
        raise TokenError(f"{len(rows)} users share the email {email!r}: deduplicate users first")
    user_id, role, is_active = rows[0]
    if active and not is_active:
        raise TokenError(f"user {email!r} is inactive: activate them before minting a token")
    if role not in ROLES:
        raise TokenError(f"user {email!r} has role {role!r}; the API knows {', '.join(ROLES)}")
    return int(user_id), str(role)


def mint(
    engine: Engine,
    user_ids: Iterable[int],
    label: str | None = None,
    expires_at: dt.datetime | None = None,
    scope: str = "api",
    client: str = CLI_CLIENT,
) -> dict[int, str]:
    """A new token for each user; only the hashes are stored.  Returns user id -> token.

    ``expires_at`` None: :data:`DEFAULT_TOKEN_DAYS` from now.  Each mint is an audit row.
    """
    if scope not in TOKEN_SCOPES:
        raise TokenError(f"unknown token scope {scope!r}: use one of {', '.join(TOKEN_SCOPES)}")
    now = _now()
    expires = expires_at if expires_at is not None else now + dt.timedelta(days=DEFAULT_TOKEN_DAYS)
    tokens = {uid: new_token() for uid in user_ids}
    if not tokens:
        return tokens
    with writing(engine) as conn:
        for uid, tok in tokens.items():
            row = {"user_id": uid, "token_hash": hash_token(tok), "label": label, "created_at": now}
            row |= {"expires_at": expires, "scope": scope}
            token_id = conn.execute(insert(TOKENS).returning(TOKENS.c.id), row).scalar_one()
            after = {k: v for k, v in row.items() if k != "token_hash"} | {"id": token_id, "revoked_at": None}
            _audit_token(conn, "mint", token_id, uid, None, after, client)
    return tokens


def revoke(
    engine: Engine,
    user_id: int | None = None,
    label: str | None = None,
    token_id: int | None = None,
    client: str = CLI_CLIENT,
) -> int:
    """Revoke the live tokens of a user, with a label, or the one with ``token_id``; returns how many.

    Each revoked token is an audit row.
    """
    if user_id is None and label is None and token_id is None:
        raise ValueError("revoke needs a user, a label or a token id")
    stmt = select(TOKENS.c.id, TOKENS.c.user_id).where(TOKENS.c.revoked_at.is_(None))
    if user_id is not None:
        stmt = stmt.where(TOKENS.c.user_id == user_id)
    if label is not None:
        stmt = stmt.where(TOKENS.c.label == label)
    if token_id is not None:
        stmt = stmt.where(TOKENS.c.id == token_id)
    now = _now()
    with writing(engine) as conn:
        live = conn.execute(stmt).all()
        for tid, uid in live:
            conn.execute(update(TOKENS).where(TOKENS.c.id == tid).values(revoked_at=now))
            _audit_token(conn, "revoke", tid, uid, {"revoked_at": None}, {"revoked_at": now}, client)
    return len(live)


def token_id(engine: Engine, token: str) -> int:
    """The id of a token just minted (looked up by its hash)."""
    with reading(engine) as conn:
        return int(conn.execute(select(TOKENS.c.id).where(TOKENS.c.token_hash == hash_token(token))).scalar_one())


def token_owner(engine: Engine, token_id: int) -> tuple[str | None, bool]:
    """The e-mail of the user a token belongs to, and whether the token is live (not revoked); TokenError if none."""
    stmt = (
        select(USERS.c.email, TOKENS.c.revoked_at)
        .select_from(TOKENS.join(USERS, USERS.c.id == TOKENS.c.user_id))
        .where(TOKENS.c.id == token_id)
    )
    with reading(engine) as conn:
        row = conn.execute(stmt).first()
    if row is None:
        raise TokenError(f"no token with id {token_id}: `crmkit serve token` prints the id of each token it mints")
    return row[0], row[1] is None


def _audit_token(
    conn: Connection,
    action: str,
    token_id: int,
    user_id: int,
    before: dict[str, object] | None,
    after: dict[str, object],
    client: str,
) -> None:
    email = conn.execute(select(USERS.c.email).where(USERS.c.id == user_id)).scalar()
    row = {"at": _now(), "user_id": user_id, "user_email": email, "action": action, "entity": "tokens"}
    row |= {"entity_id": token_id, "token_id": token_id, "client": client}
    row |= {"before_json": _dumps(before) if before else None, "after_json": _dumps(after)}
    conn.execute(insert(AUDIT), row)


def _dumps(values: dict[str, object]) -> str:
    return json.dumps(values, default=str, ensure_ascii=False, sort_keys=True)


def authenticate(engine: Engine, token: str | None) -> Principal:
    """The user a bearer token belongs to; Unauthorized if it is not a live token of an active user."""
    return run_to_end(authenticate_in, Database(engine), token)  # type: ignore[no-any-return]


async def authenticate_in(database: Database, token: str | None) -> Principal:
    """:func:`authenticate` over the API's :class:`~api.db.Database`."""
    if not token or not token.startswith(PREFIX) or len(token) > 200:
        raise Unauthorized("a bearer token is required: mint one with `crmkit serve token --user EMAIL`")
    async with database.session() as db:
        row = await db.first(_AUTHENTICATE, {"token_hash": hash_token(token), "now": _now()})
    if row is None or row["role"] not in ROLES:
        raise Unauthorized("the token is unknown, revoked or expired, or its user is inactive")
    return Principal(
        user_id=row["id"],
        name=row["name"],
        email=row["email"],
        role=row["role"],
        department_id=row["department_id"],
        token_id=row["token_id"],
        scope=row["scope"],
    )


_AUTHENTICATE = (
    select(
        USERS.c.id,
        USERS.c.name,
        USERS.c.email,
        USERS.c.role,
        USERS.c.department_id,
        TOKENS.c.id.label("token_id"),
        TOKENS.c.scope,
    )
    .select_from(TOKENS.join(USERS, USERS.c.id == TOKENS.c.user_id))
    .where(
        TOKENS.c.token_hash == bindparam("token_hash"),
        TOKENS.c.revoked_at.is_(None),
        USERS.c.active.is_(True),
        or_(TOKENS.c.expires_at.is_(None), and_(TOKENS.c.expires_at > bindparam("now"))),
    )
)


class TokenCache:
    """Principals of recently seen tokens, for ``ttl`` seconds (0 turns caching off).

    Saves one query per request; the price is that revoking a token, or deactivating its
    user, takes effect within ``ttl`` seconds instead of at once.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token: str) -> Principal | None:
        hit = self._entries.get(token)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, token: str, who: Principal) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token] = (time.monotonic() + self.ttl, who)
