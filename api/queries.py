"""Reading and writing CRM records within the caller's scope, with an audit row for every write.

The department scope is part of each statement (:func:`in_department`): a record outside
the caller's scope is simply not found (404).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    false,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import exc as sa_exc

from crmkit.api.db import AsyncSession, Database, PoolTimeout
from crmkit.api.policy import ApiError, Forbidden, Invalid, NotFound, Principal, Scope, Unavailable
from crmkit.api.resources import RESOURCES, USERS, Resource
from crmkit.schema.api_models import ApiAudit
from crmkit.schema.models import Department

AUDIT = cast(Table, ApiAudit.__table__)
DEPARTMENTS = cast(Table, Department.__table__)
_PHONEISH = re.compile(r"[+\d\s().\-/]+")


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def phone_digits(q: str) -> str | None:
    """The digits to look for in E.164 phone columns, if ``q`` looks like a phone number."""
    if not _PHONEISH.fullmatch(q):
        return None
    digits = re.sub(r"\D", "", q).lstrip("0")  # national trunk prefix / 00 international prefix
    return digits if len(digits) >= 4 else None


def _columns(res: Resource) -> list[Any]:
    return [res.table.c[name] for name in res.out.model_fields]


def in_department(res: Resource, dept: int | BindParameter[Any]) -> ColumnElement[bool]:
    """The condition "this record belongs to department ``dept``", as SQL.

    A record's department is its own ``department_id``; when that is NULL, that of the first
    of :attr:`Resource.department_via` that is set (recursively: an opportunity without a
    department belongs to its account's).  Written as a condition on the record's own column
    and, only for a record without a department, a lookup of its parent by key: a scalar
    subquery (``(SELECT true FROM parent WHERE parent.id = fk AND ...)``: true or NULL) rather
    than ``EXISTS``, which PostgreSQL turns into a hash of every parent in the department,
    built in full (1-3 ms) even when a query meets only a few records without a department.
    """
    t = res.table
    inherited: ColumnElement[bool] | None = None
    for fk in reversed(res.department_via):
        target = res.refs[fk]
        if target == "users":
            cond = and_(USERS.c.id == t.c[fk], USERS.c.department_id == dept)
        else:
            parent = RESOURCES[target]
            cond = and_(parent.table.c.id == t.c[fk], in_department(parent, dept))
        via = select(true()).where(cond).scalar_subquery()  # at most one row: the parent, by key
        inherited = via if inherited is None else or_(via, and_(t.c[fk].is_(None), inherited))
    if not res.has_department:
        return inherited if inherited is not None else false()
    own = t.c.department_id == dept
    return own if inherited is None else or_(own, and_(t.c.department_id.is_(None), inherited))


# --- statements built once, executed with parameters -----------------------------------
#
# Building a statement and computing its cache key costs about as much as a PostgreSQL
# round trip; the hot paths reuse one statement object per shape, with bound parameters.
# The department is the parameter ``dept`` (a caller without a department passes -1,
# which matches nothing).

_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


def _base(res: Resource, scope: Scope, *cols: Any) -> Select[Any]:
    stmt = select(*(cols or _columns(res))).select_from(res.table)
    return stmt if scope == "all" else stmt.where(in_department(res, bindparam("dept")))


def dept_param(who: Principal) -> int:
    """The value of the ``dept`` parameter for ``who``."""
    return who.department_id if who.department_id is not None else -1


def _by_id(res: Resource, scope: Scope, id_only: bool = False, lock: bool = False) -> Select[Any]:
    def build() -> Select[Any]:
        cols = (res.table.c.id,) if id_only else ()
        stmt = _base(res, scope, *cols).where(res.table.c.id == bindparam("rid"))
        return stmt.with_for_update() if lock else stmt

    return _cached(("by_id", res.name, scope, id_only, lock), build)  # type: ignore[no-any-return]


def search_clause(res: Resource, phone_search: bool) -> ColumnElement[bool]:
    """Substring match of the ``pattern`` parameter on the search columns, ``digits`` on phones."""
    conds = [res.table.c[c].ilike(bindparam("pattern"), escape="\\") for c in res.search]
    if phone_search:
        conds += [res.table.c[c].like(bindparam("digits")) for c in res.phones]
    return or_(*conds)


def _list_stmt(res: Resource, scope: Scope, filters: tuple[str, ...], q: bool, phone: bool) -> Select[Any]:
    def build() -> Select[Any]:
        stmt = _base(res, scope)
        for name in filters:
            stmt = stmt.where(res.table.c[name] == bindparam(f"f_{name}"))
        if q:
            stmt = stmt.where(search_clause(res, phone))
        return stmt.order_by(res.table.c.id).limit(bindparam("lim")).offset(bindparam("off"))

    return _cached(("list", res.name, scope, filters, q, phone), build)  # type: ignore[no-any-return]


async def list_records(database: Database, res: Resource, who: Principal, params: Mapping[str, Any]) -> dict[str, Any]:
    """One page of the records ``who`` may see, filtered by ``params`` (q, limit, offset, columns)."""
    scope = who.read_scope(res.name)
    limit, offset = int(params["limit"]), int(params["offset"])
    filters = tuple(sorted(k for k, v in params.items() if k not in ("q", "limit", "offset") and v is not None))
    values: dict[str, Any] = {f"f_{k}": params[k] for k in filters}
    q = str(params.get("q") or "").strip()
    digits = phone_digits(q) if q and res.phones else None
    if q:
        values["pattern"] = f"%{escape_like(q)}%"
    if digits:
        values["digits"] = f"%{digits}%"
    stmt = _list_stmt(res, scope, filters, bool(q), bool(digits))
    values.update(dept=dept_param(who), lim=limit + 1, off=offset)
    async with _db_errors(), database.session() as db:
        rows = await db.rows(stmt, values)
    more = len(rows) > limit
    return {"items": rows[:limit], "limit": limit, "offset": offset, "next_offset": offset + limit if more else None}


async def get_record(database: Database, res: Resource, who: Principal, record_id: int) -> dict[str, Any]:
    stmt = _by_id(res, who.read_scope(res.name))
    async with _db_errors(), database.session() as db:
        row = await db.first(stmt, {"rid": record_id, "dept": dept_param(who)})
    if row is None:
        raise NotFound(f"no {res.name} record {record_id}")
    return row


async def create_record(database: Database, res: Resource, who: Principal, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a record in the caller's scope; returns it as stored.  Audited.

    Set by the server: ``owner_id`` (the caller, if not given), ``department_id`` (if not
    given: the caller's; for a caller who sees every department, that of the record's account
    if it has one, else the caller's), ``created_at`` (today, UTC) and a case's ``opened_at``
    (now, if not given).
    """
    scope = who.write_scope(res.name)
    values = dict(values)
    if "owner_id" in res.table.c and values.get("owner_id") is None:
        values["owner_id"] = who.user_id
    if scope == "department" and res.has_department:
        if values.get("department_id") is None:
            values["department_id"] = who.department_id
        _own_department(who, values)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if "created_at" in res.table.c:
        values["created_at"] = now.date()
    if "opened_at" in res.table.c and values.get("opened_at") is None:
        values["opened_at"] = now.replace(microsecond=0)
    stmt = _cached(("insert", res.name), lambda: insert(res.table).returning(*_columns(res)))
    async with _db_errors(), database.session(write=True) as db:
        in_dept = await _check_refs(db, res, who, values)
        await _check_same_account(db, res, values)
        if scope == "all" and res.has_department and values.get("department_id") is None:
            values["department_id"] = await _default_department(db, who, values)
        after = _one(await db.first(stmt, values))
        if scope == "department" and not res.has_department and not _inherits_department(res, values, in_dept):
            await _visible(db, res, who, scope, after["id"])  # its department comes from what it points at
        await _audit(db, who, "create", res.name, after["id"], None, after)
    return after


async def update_record(
    database: Database, res: Resource, who: Principal, record_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Apply ``changes`` to a record in the caller's scope; returns it as stored.  Audited."""
    scope = who.write_scope(res.name)
    t = res.table
    stmt_u = _cached(
        ("update", res.name), lambda: update(t).where(t.c.id == bindparam("rid")).returning(*_columns(res))
    )
    async with _db_errors(), database.session(write=True) as db:
        before = await db.first(_by_id(res, scope, lock=True), {"rid": record_id, "dept": dept_param(who)})
        if before is None:
            raise NotFound(f"no {res.name} record {record_id}")
        changes = {k: v for k, v in changes.items() if before.get(k) != v}
        if not changes:
            return before
        if scope == "department" and "department_id" in changes:
            _own_department(who, changes)
        await _check_refs(db, res, who, changes)
        if changes.keys() & {"account_id", *res.same_account}:
            await _check_same_account(db, res, {**before, **changes})
        after = _one(await db.first(stmt_u, {"rid": record_id, **changes}))
        if scope == "department" and _DEPARTMENT_FIELDS[res.name] & changes.keys():
            await _visible(db, res, who, scope, record_id)  # the change may move it out of the department
        await _audit(db, who, "update", res.name, record_id, before, after)
    return after


def _one(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:  # INSERT/UPDATE ... RETURNING of a row just made or locked: cannot happen
        raise RuntimeError("the database returned no row")
    return row


def _own_department(who: Principal, values: Mapping[str, Any]) -> None:
    if values.get("department_id") != who.department_id:
        raise Invalid(
            f"you may only assign records to your own department ({who.department_id})", field="department_id"
        )


#: the columns that decide a record's department (its own, and the references it inherits through)
_DEPARTMENT_FIELDS = {name: frozenset(("department_id",) + r.department_via) for name, r in RESOURCES.items()}


def _inherits_department(res: Resource, values: Mapping[str, Any], in_dept: frozenset[str]) -> bool:
    """True if a new record without a department column is, by what it points at, in the caller's department.

    Its department is that of the first reference of :attr:`Resource.department_via` that is
    set; when :func:`_check_refs` has just found that record within the caller's department,
    so is the new one, and looking it up again would tell nothing new.
    """
    for fk in res.department_via:
        if values.get(fk) is not None:
            return fk in in_dept
    return False


async def _visible(db: AsyncSession, res: Resource, who: Principal, scope: Scope, record_id: int) -> None:
    """Refuse (and so roll back) a write that leaves the record outside the caller's scope."""
    if await db.first(_by_id(res, scope, id_only=True), {"rid": record_id, "dept": dept_param(who)}) is None:
        raise Invalid(
            "the record would be outside your department: set account_id or department_id to one of your department's",
            field="department_id",
        )


_DEPARTMENT_EXISTS = select(DEPARTMENTS.c.id).where(DEPARTMENTS.c.id == bindparam("rid"))
_USER_EXISTS = select(USERS.c.id).where(USERS.c.id == bindparam("rid"))
_USER_IN_DEPARTMENT = _USER_EXISTS.where(USERS.c.department_id == bindparam("dept"))


async def _check_refs(db: AsyncSession, res: Resource, who: Principal, values: Mapping[str, Any]) -> frozenset[str]:
    """Every id the record points at must exist and be visible to the caller.

    Returns the reference columns whose record was found within the caller's department
    (checked in department scope).
    """
    if values.get("department_id") is not None:
        if await db.first(_DEPARTMENT_EXISTS, {"rid": values["department_id"]}) is None:
            raise Invalid(f"no department {values['department_id']}", field="department_id")
    in_dept = []
    for column, target in res.refs.items():
        ref = values.get(column)
        if ref is None:
            continue
        scope = await _ref_visible(db, who, res, target, ref)
        if scope is None:
            raise Invalid(f"no {target} record {ref} that you may see", field=column)
        if scope == "department":
            in_dept.append(column)
    return frozenset(in_dept)


async def _ref_visible(db: AsyncSession, who: Principal, res: Resource, target: str, ref: int) -> Scope | None:
    """The scope in which record ``ref`` of ``target`` is visible to ``who``, or None if it is not."""
    params = {"rid": ref, "dept": dept_param(who)}
    if target == "users":
        scope = who.read_scope(res.name)
        if scope == "department" and ref == who.user_id and who.department_id is not None:
            return scope  # the caller, in their own department: nothing to look up
        stmt = _USER_IN_DEPARTMENT if scope == "department" else _USER_EXISTS
        return scope if await db.first(stmt, params) is not None else None
    try:
        scope = who.read_scope(target)
    except Forbidden:
        return None
    return scope if await db.first(_by_id(RESOURCES[target], scope, id_only=True), params) is not None else None


def _account_of(target: str) -> Any:
    t = RESOURCES[target].table
    return _cached(("account_of", target), lambda: select(t.c.account_id).where(t.c.id == bindparam("rid")))


async def _check_same_account(db: AsyncSession, res: Resource, values: Mapping[str, Any]) -> None:
    """A record with an account may point only at a contact (or opportunity) of that same account."""
    account = values.get("account_id")
    if account is None:
        return
    for column in res.same_account:
        ref = values.get(column)
        if ref is None:
            continue
        row = await db.first(_account_of(res.refs[column]), {"rid": ref})
        theirs = row["account_id"] if row else None
        if theirs != account:
            kind = RESOURCES[res.refs[column]].singular
            raise Invalid(
                f"{kind} {ref} belongs to {f'account {theirs}' if theirs else 'no account'}, not to account {account}: "
                f"the {kind} must belong to the {res.singular}'s account (change account_id or {column})",
                field=column,
            )


async def _default_department(db: AsyncSession, who: Principal, values: Mapping[str, Any]) -> int | None:
    """The department of a new record whose creator sees every department: its account's, else the creator's."""
    if values.get("account_id") is not None:
        row = await db.first(_DEPARTMENT_OF_ACCOUNT, {"rid": values["account_id"]})
        if row is not None and row["department_id"] is not None:
            return int(row["department_id"])
    return who.department_id


_ACCOUNTS = RESOURCES["accounts"].table
_DEPARTMENT_OF_ACCOUNT = select(_ACCOUNTS.c.department_id).where(_ACCOUNTS.c.id == bindparam("rid"))


def _json(row: Mapping[str, Any] | None) -> str | None:
    return None if row is None else json.dumps(dict(row), default=str, ensure_ascii=False, sort_keys=True)


_AUDIT_INSERT = insert(AUDIT)


async def _audit(
    db: AsyncSession,
    who: Principal,
    action: str,
    entity: str,
    entity_id: int,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
) -> None:
    """The audit row of a write, in its transaction (on PostgreSQL it travels with the COMMIT)."""
    await db.run(
        _AUDIT_INSERT,
        {
            "at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            "user_id": who.user_id,
            "user_email": who.email,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "before_json": _json(before),
            "after_json": _json(after),
            "token_id": who.token_id,
            "client": who.client,
        },
    )


async def audit_entries(
    database: Database, entity: str | None, entity_id: int | None, limit: int, offset: int
) -> dict[str, Any]:
    """The audit log, newest first (admin only; the caller checks the role)."""

    def build() -> Select[Any]:
        stmt = select(AUDIT)
        if entity:
            stmt = stmt.where(AUDIT.c.entity == bindparam("entity"))
        if entity_id is not None:
            stmt = stmt.where(AUDIT.c.entity_id == bindparam("entity_id"))
        return stmt.order_by(AUDIT.c.id.desc()).limit(bindparam("lim")).offset(bindparam("off"))

    stmt = _cached(("audit", bool(entity), entity_id is not None), build)
    values: dict[str, Any] = {"lim": limit + 1, "off": offset}
    if entity:
        values["entity"] = entity
    if entity_id is not None:
        values["entity_id"] = entity_id
    async with _db_errors(), database.session() as db:
        rows = await db.rows(stmt, values)
    items = [
        {
            **{k: v for k, v in r.items() if not k.endswith("_json")},
            "before": json.loads(r["before_json"]) if r["before_json"] else None,
            "after": json.loads(r["after_json"]),
        }
        for r in rows[:limit]
    ]
    return {
        "items": items,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(rows) > limit else None,
    }


class _db_errors:
    """Database failures a client can do something about become API errors, not 500s."""

    def __enter__(self) -> None:
        return None

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: Any) -> Literal[False]:
        return self.__exit__(typ, exc, tb)

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None or isinstance(exc, ApiError):
            return False
        integrity, data, operational = _PG_ERRORS or _pg_errors()
        if isinstance(exc, (sa_exc.IntegrityError, integrity)):
            raise Invalid(f"the database refused the change: {_first_line(exc)}") from None
        if isinstance(exc, (sa_exc.DataError, data)):
            raise Invalid(f"a value does not fit the database: {_first_line(exc)}") from None
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.TimeoutError, PoolTimeout, operational)):
            raise Unavailable(f"the database is busy or unreachable, try again: {_first_line(exc)}") from None
        return False


_PG_ERRORS: tuple[Any, ...] = ()


def _pg_errors() -> tuple[Any, ...]:
    """psycopg's error classes (raised by the PostgreSQL fast path of api.db), else classes nothing raises."""
    global _PG_ERRORS
    try:
        import psycopg

        _PG_ERRORS = (psycopg.IntegrityError, psycopg.DataError, psycopg.OperationalError)
    except ImportError:  # pragma: no cover (SQLite only)

        class _Never(Exception):
            pass

        _PG_ERRORS = (_Never, _Never, _Never)
    return _PG_ERRORS


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(exc).__name__
