"""Test data for the virtual users: real ids and search terms from the target, partitioned.

Each persona gets a list of *slots*.  A slot is what one virtual user works with: the token
of a CRM user of the persona's role, the records it may change, and search terms that hit
real rows of its scope.  The records a persona changes are split so that no two slots share
one: sales slots own disjoint accounts (with their contacts and opportunities) of their
user's department, service slots own disjoint cases.  Managers only read.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from crmkit.errors import CrmkitError
from crmkit.loadtest.personas import PERSONAS
from crmkit.schema.models import Account, Case, Contact, Opportunity, User

TERMS_PER_SLOT = 40
READ_IDS_PER_SLOT = 200


class DataError(CrmkitError):
    """The target does not hold the users or records the profile needs."""


@dataclass
class Estate:
    """What the target holds, as plain lists (read once, before the run)."""

    users: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    contacts: list[dict[str, Any]]
    opportunities: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    tokens: dict[int, str] = field(default_factory=dict)


def read_estate(engine: Engine) -> Estate:
    u, a, c, o, k = (m.__table__ for m in (User, Account, Contact, Opportunity, Case))
    acct = a.alias("acct")
    queries = {
        "users": select(u.c.id, u.c.email, u.c.role, u.c.department_id).where(u.c.active.is_(True)).order_by(u.c.id),
        "accounts": select(a.c.id, a.c.name, a.c.phone, a.c.email, a.c.department_id).order_by(a.c.id),
        "contacts": select(
            c.c.id,
            c.c.account_id,
            c.c.full_name,
            c.c.email,
            c.c.phone,
            c.c.mobile,
            func.coalesce(c.c.department_id, acct.c.department_id).label("department_id"),
        )
        .select_from(c.outerjoin(acct, acct.c.id == c.c.account_id))
        .order_by(c.c.id),
        "opportunities": select(
            o.c.id,
            o.c.account_id,
            o.c.stage,
            func.coalesce(o.c.department_id, acct.c.department_id).label("department_id"),
        )
        .select_from(o.outerjoin(acct, acct.c.id == o.c.account_id))
        .order_by(o.c.id),
        "cases": select(k.c.id, k.c.account_id, k.c.status).order_by(k.c.id),
    }
    with engine.connect() as conn:
        rows = {name: [dict(r) for r in conn.execute(q).mappings()] for name, q in queries.items()}
    return Estate(
        users=rows["users"],
        accounts=rows["accounts"],
        contacts=rows["contacts"],
        opportunities=rows["opportunities"],
        cases=rows["cases"],
    )


def _name_term(name: str | None) -> str | None:
    if not name:
        return None
    first = name.split()[0] if " " in name.strip() else name.strip()[:4]
    return first if len(first) >= 2 else None


def _phone_term(phone: str | None) -> str | None:
    digits = re.sub(r"\D", "", phone or "")
    return digits[-8:] if len(digits) >= 8 else None


def _sample(rng: random.Random, terms: set[str]) -> list[str]:
    ordered = sorted(terms)
    return rng.sample(ordered, min(TERMS_PER_SLOT, len(ordered)))


def _terms(rng: random.Random, accounts: list[dict[str, Any]], contacts: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What people type to find an account (part of its name, its phone, its e-mail) or a contact."""
    acct = {t for a in accounts for t in (_name_term(a["name"]), _phone_term(a["phone"]), a["email"]) if t}
    cont = {t for c in contacts for t in (_name_term(c["full_name"]), c["email"], _phone_term(c["mobile"])) if t}
    return {"account_terms": _sample(rng, acct), "contact_terms": _sample(rng, cont)}


def _users(estate: Estate, persona: str) -> list[dict[str, Any]]:
    role = PERSONAS.get(persona).role
    users = [u for u in estate.users if u["role"] == role]
    if role != "service":
        users = [u for u in users if u["department_id"] is not None]
    if not users:
        raise DataError(
            f"persona {persona} acts as active users with role {role} (and a department), "
            f"and the target has none: add such users, or drop {persona} from the profile"
        )
    return users


def _by(rows: list[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r[key]].append(r)
    return out


def sales_slots(estate: Estate, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` slots; each owns disjoint accounts of its user's department, with their contacts and deals."""
    users = _users(estate, "sales")
    owners = [users[i % len(users)] for i in range(n)]
    accounts_by_dept = _by(estate.accounts, "department_id")
    contacts_by_acct = _by(estate.contacts, "account_id")
    opps_by_acct = _by(estate.opportunities, "account_id")
    slot_idx_by_dept = _by([{"i": i, "d": u["department_id"]} for i, u in enumerate(owners)], "d")
    slots: list[dict[str, Any]] = [{} for _ in range(n)]
    for dept, members in slot_idx_by_dept.items():
        accounts = accounts_by_dept.get(dept, [])
        if len(accounts) < len(members):
            raise DataError(
                f"persona sales needs {len(members)} virtual users with accounts of their own in "
                f"department {dept}, which has {len(accounts)} accounts: lower --users, or seed "
                f"more accounts"
            )
        dept_contacts = [c for c in estate.contacts if c["department_id"] == dept]
        for j, m in enumerate(members):
            mine = accounts[j :: len(members)]
            contacts = [c for a in mine for c in contacts_by_acct.get(a["id"], [])]
            opps = [o for a in mine for o in opps_by_acct.get(a["id"], [])]
            slots[m["i"]] = {
                "user_id": owners[m["i"]]["id"],
                "department_id": dept,
                "accounts": [a["id"] for a in mine],
                "contacts": [c["id"] for c in contacts],
                "opportunities": [o["id"] for o in opps],
                **_terms(rng, accounts, dept_contacts),
            }
    return slots


def service_slots(estate: Estate, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` slots; each owns disjoint cases (service agents work every department's cases)."""
    users = _users(estate, "service")
    if len(estate.cases) < n:
        raise DataError(
            f"persona service needs {n} virtual users with cases of their own and the target "
            f"has {len(estate.cases)} cases: lower --users or the service weight, or seed more cases"
        )
    return [
        {
            "user_id": users[i % len(users)]["id"],
            "department_id": users[i % len(users)]["department_id"],
            "cases": [
                {"id": k["id"], "status": k["status"], "account_id": k["account_id"]} for k in estate.cases[i::n]
            ],
            **_terms(rng, estate.accounts, estate.contacts),
        }
        for i in range(n)
    ]


def manager_slots(estate: Estate, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """``n`` read-only slots: a manager's token, ids and terms of their department."""
    users = _users(estate, "manager")
    accounts_by_dept = _by(estate.accounts, "department_id")
    slots = []
    for i in range(n):
        user = users[i % len(users)]
        accounts = accounts_by_dept.get(user["department_id"], [])
        if not accounts:
            raise DataError(
                f"manager {user['email']} has no accounts in department {user['department_id']}: "
                "managers need accounts to read"
            )
        ids = [a["id"] for a in accounts]
        contacts = [c for c in estate.contacts if c["department_id"] == user["department_id"]]
        slots.append(
            {
                "user_id": user["id"],
                "department_id": user["department_id"],
                "accounts": rng.sample(ids, min(READ_IDS_PER_SLOT, len(ids))),
                **_terms(rng, accounts, contacts),
            }
        )
    return slots


BUILDERS = {"sales": sales_slots, "service": service_slots, "manager": manager_slots}


def build_slots(estate: Estate, needed: dict[str, int], seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    return {persona: BUILDERS[persona](estate, n, rng) for persona, n in needed.items()}


def mint_tokens(engine: Engine, slots: dict[str, list[dict[str, Any]]], label: str, valid_for_s: float) -> int:
    """Mint one token per CRM user the slots act as and put it into each slot; returns how many."""
    from crmkit.api import auth

    user_ids = sorted({s["user_id"] for persona in slots.values() for s in persona})
    expires = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=valid_for_s)
    tokens = auth.mint(engine, user_ids, label=label, expires_at=expires)
    for persona in slots.values():
        for s in persona:
            s["token"] = tokens[s["user_id"]]
    return len(tokens)
