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

from sqlalchemy import (BindParameter, ColumnElement, Connection, Engine, Select, Table, and_, bindparam, exists, false,
                        insert, or_, select, update)
from sqlalchemy import exc as sa_exc

from api.db import reading, writing
from api.policy import Forbidden, Invalid, NotFound, Principal, Scope, Unavailable
from api.resources import RESOURCES, USERS, Resource
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
    department belongs to its account's).  Written with ``EXISTS`` rather than joins, so
    that the database can use the index on the record's own column and look parents up by key.
    """
    t = res.table
    inherited: ColumnElement[bool] | None = None
    for fk in reversed(res.department_via):
        target = res.refs[fk]
        if target == "users":
            via = exists().where(USERS.c.id == t.c[fk], USERS.c.department_id == dept)
        else:
            parent = RESOURCES[target]
            via = exists().where(parent.table.c.id == t.c[fk], in_department(parent, dept))
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


def list_records(engine: Engine, res: Resource, who: Principal, params: Mapping[str, Any]) -> dict[str, Any]:
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
    with _db_errors(), reading(engine) as conn:
        rows = [dict(r) for r in conn.execute(stmt, values).mappings()]
    more = len(rows) > limit
    return {"items": rows[:limit], "limit": limit, "offset": offset, "next_offset": offset + limit if more else None}


def get_record(engine: Engine, res: Resource, who: Principal, record_id: int) -> dict[str, Any]:
    stmt = _by_id(res, who.read_scope(res.name))
    with _db_errors(), reading(engine) as conn:
        row = conn.execute(stmt, {"rid": record_id, "dept": dept_param(who)}).mappings().first()
    if row is None:
        raise NotFound(f"no {res.name} record {record_id}")
    return dict(row)


def create_record(engine: Engine, res: Resource, who: Principal, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a record in the caller's scope; returns it as stored.  Audited."""
    scope = who.write_scope(res.name)
    values = dict(values)
    if "owner_id" in res.table.c and values.get("owner_id") is None:
        values["owner_id"] = who.user_id
    if scope == "department" and res.has_department:
        if values.get("department_id") is None:
            values["department_id"] = who.department_id
        _own_department(who, values)
    stmt = _cached(("insert", res.name), lambda: insert(res.table).returning(*_columns(res)))
    with _db_errors(), writing(engine) as conn:
        _check_refs(conn, res, who, values)
        after = dict(conn.execute(stmt, values).mappings().one())
        if scope == "department" and not res.has_department:  # its department comes from what it points at
            _visible(conn, res, who, scope, after["id"])
        _audit(conn, who, "create", res.name, after["id"], None, after)
    return after


def update_record(engine: Engine, res: Resource, who: Principal, record_id: int,
                  changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` to a record in the caller's scope; returns it as stored.  Audited."""
    scope = who.write_scope(res.name)
    t = res.table
    stmt_u = _cached(("update", res.name), lambda: update(t).where(t.c.id == bindparam("rid"))
                     .returning(*_columns(res)))
    with _db_errors(), writing(engine) as conn:
        row = conn.execute(_by_id(res, scope, lock=True), {"rid": record_id, "dept": dept_param(who)}).mappings().first()
        if row is None:
            raise NotFound(f"no {res.name} record {record_id}")
        before = dict(row)
        changes = {k: v for k, v in changes.items() if before.get(k) != v}
        if not changes:
            return before
        if scope == "department" and "department_id" in changes:
            _own_department(who, changes)
        _check_refs(conn, res, who, changes)
        after = dict(conn.execute(stmt_u, {"rid": record_id, **changes}).mappings().one())
        if scope == "department" and _DEPARTMENT_FIELDS[res.name] & changes.keys():
            _visible(conn, res, who, scope, record_id)  # the change may move it out of the department
        _audit(conn, who, "update", res.name, record_id, before, after)
    return after


def _own_department(who: Principal, values: Mapping[str, Any]) -> None:
    if values.get("department_id") != who.department_id:
        raise Invalid("you may only assign records to your own department "
                      f"({who.department_id})", field="department_id")


#: the columns that decide a record's department (its own, and the references it inherits through)
_DEPARTMENT_FIELDS = {name: frozenset(("department_id",) + r.department_via) for name, r in RESOURCES.items()}


def _visible(conn: Connection, res: Resource, who: Principal, scope: Scope, record_id: int) -> None:
    """Refuse (and so roll back) a write that leaves the record outside the caller's scope."""
    if conn.execute(_by_id(res, scope, id_only=True), {"rid": record_id, "dept": dept_param(who)}).first() is None:
        raise Invalid("the record would be outside your department: set account_id or department_id "
                      "to one of your department's", field="department_id")


_DEPARTMENT_EXISTS = select(DEPARTMENTS.c.id).where(DEPARTMENTS.c.id == bindparam("rid"))
_USER_EXISTS = select(USERS.c.id).where(USERS.c.id == bindparam("rid"))
_USER_IN_DEPARTMENT = _USER_EXISTS.where(USERS.c.department_id == bindparam("dept"))


def _check_refs(conn: Connection, res: Resource, who: Principal, values: Mapping[str, Any]) -> None:
    """Every id the record points at must exist and be visible to the caller."""
    if values.get("department_id") is not None:
        if conn.execute(_DEPARTMENT_EXISTS, {"rid": values["department_id"]}).first() is None:
            raise Invalid(f"no department {values['department_id']}", field="department_id")
    for column, target in res.refs.items():
        ref = values.get(column)
        if ref is None:
            continue
        if not _ref_visible(conn, who, res, target, ref):
            raise Invalid(f"no {target} record {ref} that you may see", field=column)


def _ref_visible(conn: Connection, who: Principal, res: Resource, target: str, ref: int) -> bool:
    params = {"rid": ref, "dept": dept_param(who)}
    if target == "users":
        stmt = _USER_IN_DEPARTMENT if who.read_scope(res.name) == "department" else _USER_EXISTS
        return conn.execute(stmt, params).first() is not None
    try:
        scope = who.read_scope(target)
    except Forbidden:
        return False
    return conn.execute(_by_id(RESOURCES[target], scope, id_only=True), params).first() is not None


def _json(row: Mapping[str, Any] | None) -> str | None:
    return None if row is None else json.dumps(dict(row), default=str, ensure_ascii=False, sort_keys=True)


_AUDIT_INSERT = insert(AUDIT)


def _audit(conn: Connection, who: Principal, action: str, entity: str, entity_id: int,
           before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> None:
    conn.execute(_AUDIT_INSERT, {
        "at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), "user_id": who.user_id,
        "user_email": who.email, "action": action, "entity": entity, "entity_id": entity_id,
        "before_json": _json(before), "after_json": _json(after)})


def audit_entries(engine: Engine, entity: str | None, entity_id: int | None, limit: int, offset: int
                  ) -> dict[str, Any]:
    """The audit log, newest first (admin only; the caller checks the role)."""
    stmt = select(AUDIT)
    if entity:
        stmt = stmt.where(AUDIT.c.entity == entity)
    if entity_id is not None:
        stmt = stmt.where(AUDIT.c.entity_id == entity_id)
    stmt = stmt.order_by(AUDIT.c.id.desc()).limit(limit + 1).offset(offset)
    with _db_errors(), reading(engine) as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    items = [{**{k: v for k, v in r.items() if not k.endswith("_json")},
              "before": json.loads(r["before_json"]) if r["before_json"] else None,
              "after": json.loads(r["after_json"])} for r in rows[:limit]]
    return {"items": items, "limit": limit, "offset": offset,
            "next_offset": offset + limit if len(rows) > limit else None}


class _db_errors:
    """Database failures a client can do something about become API errors, not 500s."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: Any) -> Literal[False]:
        if isinstance(exc, sa_exc.IntegrityError):
            raise Invalid(f"the database refused the change: {_first_line(exc)}") from None
        if isinstance(exc, sa_exc.DataError):
            raise Invalid(f"a value does not fit the database: {_first_line(exc)}") from None
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.TimeoutError)):
            raise Unavailable(f"the database is busy or unreachable, try again: {_first_line(exc)}") from None
        return False


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(exc).__name__
