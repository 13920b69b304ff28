"""The load-test personas: each one's CRM role, its endpoint groups and its tasks, registered together.

A persona is one ``persona(...)`` call here with its task functions (plain functions of the
Locust user: ``user.client``, ``user.slot`` (its test data), ``user.get``, ``user.term``);
``locustfile.py`` makes a Locust user class of each, and profiles may name it. This module
imports no Locust, so that profiles are checked without it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crmkit.registry import Registry

Task = Callable[[Any], None]


@dataclass(frozen=True)
class PersonaKind:
    """A persona: the CRM role it acts as, the endpoint groups it sends, its tasks by weight."""

    role: str
    groups: tuple[str, ...]
    tasks: dict[Task, int] = field(default_factory=dict)
    doc: str = ""


#: the personas a profile may name
PERSONAS: Registry[PersonaKind] = Registry("persona")


def persona(name: str, role: str, groups: tuple[str, ...], tasks: dict[Task, int], *, summary: str, doc: str) -> None:
    """Register a persona with its tasks (``{function: weight}``, as Locust's ``tasks``)."""
    PERSONAS.add(name, PersonaKind(role, groups, tasks, doc), summary=summary)


NEXT_STATUS = {"new": "open", "open": "pending", "pending": "closed", "closed": "open"}


def sales_search_accounts(user: Any) -> None:
    if user.slot:
        user.client.get("/accounts", params={"q": user.term("account"), "limit": 20}, name="search /accounts?q")


def sales_search_contacts(user: Any) -> None:
    if user.slot:
        user.client.get("/contacts", params={"q": user.term("contact"), "limit": 20}, name="search /contacts?q")


def sales_open_account(user: Any) -> None:
    if user.slot:
        acct = random.choice(user.slot["accounts"])
        user.get("read /accounts/{id}", f"/accounts/{acct}")
        user.client.get("/contacts", params={"account_id": acct}, name="read /contacts?account_id")
        user.client.get("/opportunities", params={"account_id": acct}, name="read /opportunities?account_id")


def sales_update_opportunity(user: Any) -> None:
    if user.slot and user.slot["opportunities"]:
        opp = random.choice(user.slot["opportunities"])
        stage = random.choice(("qualification", "proposal", "negotiation"))
        user.client.patch(
            f"/opportunities/{opp}",
            json={"stage": stage, "probability": random.randint(10, 90)},
            name="write PATCH /opportunities/{id}",
        )


def sales_update_account(user: Any) -> None:
    if user.slot:
        acct = random.choice(user.slot["accounts"])
        user.client.patch(f"/accounts/{acct}", json={"tier": random.choice("ABC")}, name="write PATCH /accounts/{id}")


def sales_log_call(user: Any) -> None:
    if user.slot:
        acct = random.choice(user.slot["accounts"])
        user.client.post(
            "/activities",
            json={"type": "call", "subject": "[loadtest] follow-up call", "account_id": acct},
            name="write POST /activities",
        )


def service_find_caller(user: Any) -> None:
    if user.slot:
        user.client.get("/contacts", params={"q": user.term("contact"), "limit": 20}, name="search /contacts?q")


def service_queue(user: Any) -> None:
    if user.slot:
        user.client.get("/cases", params={"status": "open", "limit": 20}, name="read /cases?status")


def service_work_case(user: Any) -> None:
    if user.slot:
        case = random.choice(user.slot["cases"])
        user.get("read /cases/{id}", f"/cases/{case['id']}")
        status = NEXT_STATUS.get(case["status"], "open")
        body: dict[str, Any] = {"status": status}
        body["closed_at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) if status == "closed" else None
        with user.client.patch(
            f"/cases/{case['id']}", json=body, name="write PATCH /cases/{id}", catch_response=True
        ) as resp:
            if resp.status_code == 200:
                case["status"] = status


def service_log_note(user: Any) -> None:
    if user.slot:
        case = random.choice(user.slot["cases"])
        body = {"type": "note", "subject": f"[loadtest] case {case['id']}", "account_id": case["account_id"]}
        user.client.post("/activities", json=body, name="write POST /activities")


def manager_pipeline(user: Any) -> None:
    if user.slot:
        user.get("report /reports/pipeline", "/reports/pipeline")


def manager_deals(user: Any) -> None:
    if user.slot:
        user.client.get(
            "/opportunities", params={"stage": "negotiation", "limit": 50}, name="read /opportunities?stage"
        )


def manager_search(user: Any) -> None:
    if user.slot:
        user.client.get("/accounts", params={"q": user.term("account"), "limit": 20}, name="search /accounts?q")


def manager_open_account(user: Any) -> None:
    if user.slot:
        user.get("read /accounts/{id}", f"/accounts/{random.choice(user.slot['accounts'])}")


persona(
    "sales",
    "sales",
    ("search", "read", "write"),
    {
        sales_search_accounts: 4,
        sales_search_contacts: 2,
        sales_open_account: 3,
        sales_update_opportunity: 2,
        sales_update_account: 1,
        sales_log_call: 2,
    },
    summary="acts as `sales`: `search` accounts and contacts; `read` an account with its contacts and "
    "opportunities; `write`: move an opportunity's stage, change an account's tier, log a call",
    doc="Searches customers, opens accounts, moves deals along, logs calls.",
)
persona(
    "service",
    "service",
    ("search", "read", "write"),
    {service_find_caller: 3, service_queue: 3, service_work_case: 3, service_log_note: 1},
    summary="acts as `service`: `search` contacts by phone or e-mail; `read` the open-case queue and a case; "
    "`write`: move a case along new → open → pending → closed (and reopen it), log a note",
    doc="Finds callers by phone or email, works the case queue, opens and closes cases.",
)
persona(
    "manager",
    "manager",
    ("search", "read", "report"),
    {manager_pipeline: 3, manager_deals: 2, manager_search: 2, manager_open_account: 1},
    summary="acts as `manager`: `report` the pipeline; `read` deals in negotiation and accounts; `search` accounts",
    doc="Runs the pipeline report, reviews deals in negotiation, looks customers up.",
)
