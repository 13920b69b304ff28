"""The pipeline report: open and closed opportunity value, by stage and by owner, within scope."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, func, select

from crmkit.api.db import Database
from crmkit.api.policy import Principal, Scope
from crmkit.api.queries import _db_errors, dept_param, in_department
from crmkit.api.resources import RESOURCES, USERS
from crmkit.schema.vocabulary import STAGES


async def pipeline(database: Database, who: Principal, department_id: int | None = None) -> dict[str, Any]:
    """Count and sum of amount per (stage, owner), and per stage, of the opportunities in scope.

    Admins see every department, or the one they ask for; managers and sales reps their own.
    """
    scope = who.report_scope()
    filtered = scope == "all" and department_id is not None
    dept = dept_param(who) if scope == "department" else department_id
    async with _db_errors(), database.session() as db:
        rows = await db.rows(_statement(scope, filtered), {"dept": dept})
    for r in rows:
        r["amount"] = Decimal(r["amount"]).quantize(Decimal("0.01"))
    return {
        "by_owner": rows,
        "by_stage": _by_stage(rows),
        "department_id": who.department_id if scope == "department" else department_id,
    }


@functools.cache
def _statement(scope: Scope, filtered: bool) -> Any:
    """Grouped by stage and owner in the database, owners' names joined to the (few) groups."""
    res = RESOURCES["opportunities"]
    o = res.table
    agg = select(
        o.c.stage, o.c.owner_id, func.count().label("count"), func.coalesce(func.sum(o.c.amount), 0).label("amount")
    ).select_from(o)
    if scope == "department" or filtered:
        agg = agg.where(in_department(res, bindparam("dept")))
    sub = agg.group_by(o.c.stage, o.c.owner_id).subquery("agg")
    return (
        select(sub.c.stage, sub.c.owner_id, USERS.c.name.label("owner_name"), sub.c["count"], sub.c.amount)
        .select_from(sub.outerjoin(USERS, USERS.c.id == sub.c.owner_id))
        .order_by(sub.c.stage, sub.c.owner_id)
    )


def _by_stage(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = totals.setdefault(r["stage"], {"stage": r["stage"], "count": 0, "amount": Decimal("0.00")})
        t["count"] += r["count"]
        t["amount"] += r["amount"]
    order = {s: i for i, s in enumerate(STAGES)}
    return sorted(totals.values(), key=lambda t: (order.get(t["stage"], len(order)), t["stage"]))
