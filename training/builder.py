"""The entities of a generated training world, built column-wise in dependency order.

References hold by construction: departments own users; accounts are owned by a sales user
of their department; contacts, opportunities and cases belong to an account of the same
department; activities point at an opportunity or a contact and at their account; cases
point at a contact of their own account.  The value mixes below draw from the schema's
vocabularies (:mod:`crmkit.schema.vocabulary`; tests/unit/test_vocabulary.py keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from crmkit.schema.vocabulary import ACTIVITY_TYPES, OPEN_CASE_STATUSES, ROLES
from crmkit.training.columns import (
    DAY_US,
    RNG,
    addresses,
    companies,
    days,
    epoch_day,
    epoch_day_np,
    fill,
    fill_template,
    finish,
    micros,
    nullable,
    people,
    phones,
    pick_in_blocks,
    rng_for,
    weighted,
)
from crmkit.training.scenario import Scenario
from crmkit.training.vocab import vocab

PROBABILITY = {
    "prospecting": 10,
    "qualification": 20,
    "proposal": 40,
    "negotiation": 60,
    "closed_won": 100,
    "closed_lost": 0,
}
#: days an open opportunity has typically been in its stage (min, max)
STAGE_AGE = {"prospecting": (0, 30), "qualification": (15, 60), "proposal": (30, 90), "negotiation": (45, 120)}
SEGMENT_AMOUNT = {"enterprise": 120_000.0, "mid_market": 30_000.0, "smb": 6_000.0}
SEGMENT_TIER = {"enterprise": "A", "mid_market": "B", "smb": "C"}
SLA_HOURS = {"low": 120, "medium": 72, "high": 24, "urgent": 4}
#: weights of the drawn values (their order is the draw's: keep it, the output is pinned per seed)
LEAD_STATUS_MIX: dict[str, float] = {"new": 30, "working": 25, "qualified": 15, "lost": 15, "converted": 15}
LEAD_SOURCE_MIX: dict[str, float] = {"web": 35, "referral": 20, "event": 20, "partner": 10, "cold_call": 15}
ACTIVITY_MIX: dict[str, float] = {"call": 30, "email": 30, "meeting": 15, "task": 15, "note": 10}
PRIORITY_MIX: dict[str, float] = {"low": 30, "medium": 40, "high": 20, "urgent": 10}
#: roles in the order of each department's block of users (pools stay contiguous)
ROLE_ORDER = ("manager", "sales", "service", "admin")
OWNER_ROLES = ("manager", "sales")


@dataclass
class Blocks:
    """Rows of one entity grouped by department: row -> department, and each department's block."""

    dept: np.ndarray
    start: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, counts: list[int]) -> Blocks:
        c = np.array(counts, dtype=np.int64)
        return cls(np.repeat(np.arange(len(c)), c), np.concatenate([[0], np.cumsum(c)[:-1]]).astype(np.int64), c)


class Builder:
    """Builds the world entity by entity; later entities read the frames of earlier ones."""

    def __init__(self, scenario: Scenario, seed: int):
        self.s, self.seed = scenario, seed
        self.v = vocab(scenario.locale, seed)
        self.source = f"training:{scenario.name}"[:100]
        self.t: dict[str, pl.DataFrame] = {}
        self.start = epoch_day(scenario.dates.start)
        self.end = epoch_day(scenario.dates.end)
        self.unique = set(scenario.unique)

    def rng(self, stream: str) -> RNG:
        return rng_for(self.seed, stream)

    def blocks(self, entity: str) -> Blocks:
        return Blocks.of([getattr(d, entity) for d in self.s.departments])

    def build(self) -> dict[str, pl.DataFrame]:
        for step in (
            self.departments,
            self.users,
            self.accounts,
            self.contacts,
            self.leads,
            self.opportunities,
            self.activities,
            self.cases,
            self.tags,
            self.taggings,
        ):
            step()
        return self.t

    def departments(self) -> None:
        d = self.s.departments
        self.t["departments"] = finish(
            "departments",
            len(d),
            {
                "code": pl.Series([x.code for x in d]),
                "name": pl.Series([x.name for x in d]),
                "region": pl.Series([x.region for x in d], dtype=pl.String),
            },
            self.source,
        )

    def users(self) -> None:
        rows: list[tuple[int, str]] = []
        for i, d in enumerate(self.s.departments):
            for role in ROLE_ORDER:
                rows += [(i, role)] * getattr(d.users, role)
        assert {r for _, r in rows} <= set(ROLES)
        n = len(rows)
        p = people(self.rng("users"), self.v, n, "users.name" in self.unique, "users.email" in self.unique)
        dept = np.array([r[0] for r in rows], dtype=np.int64)
        self.t["users"] = finish(
            "users",
            n,
            {
                "name": p.full,
                "email": p.local + "@" + self.s.domain,
                "department_id": pl.Series(dept + 1),
                "role": pl.Series([r[1] for r in rows], dtype=pl.String),
                "active": True,
            },
            self.source,
        )
        self._pools(rows)

    def _pools(self, rows: list[tuple[int, str]]) -> None:
        """Per department, the block of users who own customers (managers + sales) and of service users."""
        nd = len(self.s.departments)
        self.sales_start, self.sales_count = np.zeros(nd, np.int64), np.zeros(nd, np.int64)
        self.svc_start, self.svc_count = np.zeros(nd, np.int64), np.zeros(nd, np.int64)
        for i in range(nd):
            idx = [j for j, r in enumerate(rows) if r[0] == i]
            sales = [j for j in idx if rows[j][1] in OWNER_ROLES]
            svc = [j for j in idx if rows[j][1] == "service"] or sales or idx
            if sales:
                self.sales_start[i], self.sales_count[i] = sales[0], len(sales)
            if svc:
                self.svc_start[i], self.svc_count[i] = svc[0], len(svc)

    def accounts(self) -> None:
        r, b = self.rng("accounts"), self.blocks("accounts")
        n: int = b.dept.shape[0]
        c = companies(r, self.v, n, "accounts.name" in self.unique)
        segment = weighted(r, self.s.segments, n)
        created = self.start + np.floor(r.random(n) * max(1, self.end - self.start - 30)).astype(np.int64)
        owner = pick_in_blocks(r, b.dept, self.sales_start, self.sales_count) + 1
        mailbox = pl.Series(["info", "sales", "contact", "office"]).gather(r.integers(0, 4, n))
        self.t["accounts"] = finish(
            "accounts",
            n,
            {
                "name": c.name,
                "industry": weighted(r, self.s.industries, n),
                "website": "www." + c.domain,
                "phone": phones(r, self.s.locale, "landline", n),
                "email": mailbox + "@" + c.domain,
                "address": addresses(r, self.v, n),
                "city": self.v.cities.gather(r.integers(0, self.v.cities.len(), n)),
                "country": self.v.country,
                "segment": segment,
                "tier": segment.replace_strict(SEGMENT_TIER, default="B", return_dtype=pl.String),
                "owner_id": pl.Series(owner),
                "department_id": pl.Series(b.dept + 1),
                "created_at": days(created),
                "active": pl.Series(r.random(n) >= 0.05),
            },
            self.source,
        )
        self.domains = c.domain

    def contacts(self) -> None:
        r, b = self.rng("contacts"), self.blocks("contacts")
        ab = self.blocks("accounts")
        n: int = b.dept.shape[0]
        acc = pick_in_blocks(r, b.dept, ab.start, ab.count)
        a = self.t["accounts"]
        p = people(r, self.v, n, "contacts.full_name" in self.unique, "contacts.email" in self.unique)
        email = p.local + "@" + self.domains.gather(acc)
        phone, mobile = phones(r, self.s.locale, "landline", n), phones(r, self.s.locale, "mobile", n)
        acc_created = a["created_at"].to_physical().to_numpy().astype(np.int64)[acc]
        created = acc_created + np.floor(r.random(n) * np.maximum(1, self.end - acc_created)).astype(np.int64)
        birth = epoch_day_np(1955) + np.floor(r.random(n) * (epoch_day_np(2001) - epoch_day_np(1955))).astype(np.int64)
        consent = pl.Series(np.where(r.random(n) < 0.6, 1, np.where(r.random(n) < 0.5, 0, -1)))
        same_address = r.random(n) < 0.7
        own_address = addresses(r, self.v, n)
        text = str(self.v.text["note_text"])
        notes = fill(text, p=p.full, ph=mobile, em=email)
        self.t["contacts"] = finish(
            "contacts",
            n,
            {
                "account_id": pl.Series(acc + 1),
                "first_name": p.first,
                "last_name": p.last,
                "full_name": p.full,
                "email": email,
                "phone": phone,
                "mobile": mobile,
                "title": self.v.jobs.gather(r.integers(0, self.v.jobs.len(), n)),
                "address": pl.select(
                    pl.when(pl.Series(same_address)).then(a["address"].gather(acc)).otherwise(own_address)
                ).to_series(),
                "city": a["city"].gather(acc),
                "country": self.v.country,
                "birth_date": days(birth),
                "consent_to_contact": consent.replace_strict({1: True, 0: False, -1: None}, return_dtype=pl.Boolean),
                "owner_id": a["owner_id"].gather(acc),
                "department_id": a["department_id"].gather(acc),
                "notes": pl.select(pl.when(pl.Series(r.random(n) < 0.2)).then(notes)).to_series(),
                "created_at": days(created),
                "active": pl.Series(r.random(n) >= 0.03),
            },
            self.source,
        )

    def leads(self) -> None:
        r, b = self.rng("leads"), self.blocks("leads")
        n: int = b.dept.shape[0]
        p = people(r, self.v, n, "leads.full_name" in self.unique, "leads.email" in self.unique)
        c = companies(r, self.v, n, False)
        status = weighted(r, LEAD_STATUS_MIX, n)
        created = self.start + np.floor(r.random(n) * (self.end - self.start)).astype(np.int64)
        self.t["leads"] = finish(
            "leads",
            n,
            {
                "full_name": p.full,
                "company": c.name,
                "email": p.local + "@" + c.domain,
                "phone": phones(r, self.s.locale, "mobile", n),
                "lead_source": weighted(r, LEAD_SOURCE_MIX, n),
                "status": status,
                "owner_id": pl.Series(pick_in_blocks(r, b.dept, self.sales_start, self.sales_count) + 1),
                "department_id": pl.Series(b.dept + 1),
                "created_at": days(created),
            },
            self.source,
        )

    def opportunities(self) -> None:
        r, b = self.rng("opportunities"), self.blocks("opportunities")
        ab = self.blocks("accounts")
        n: int = b.dept.shape[0]
        acc = pick_in_blocks(r, b.dept, ab.start, ab.count)
        a = self.t["accounts"]
        stage = weighted(r, self.s.pipeline, n)
        base = a["segment"].gather(acc).replace_strict(SEGMENT_AMOUNT, default=20_000.0, return_dtype=pl.Float64)
        amount = (base.to_numpy() * r.lognormal(0.0, 0.6, n) / 100).round() * 100
        created, close = self._pipeline_dates(r, stage, a["created_at"].to_physical().to_numpy().astype(np.int64)[acc])
        product = pl.Series(self.v.text["product"]).gather(r.integers(0, len(self.v.text["product"]), n))
        self.t["opportunities"] = finish(
            "opportunities",
            n,
            {
                "account_id": pl.Series(acc + 1),
                "name": a["name"].gather(acc) + " - " + product,
                "stage": stage,
                "amount": pl.Series(np.maximum(amount, 500.0)),
                "currency": self.s.currency_code,
                "close_date": days(close),
                "probability": stage.replace_strict(PROBABILITY, return_dtype=pl.Int64),
                "owner_id": a["owner_id"].gather(acc),
                "department_id": a["department_id"].gather(acc),
                "created_at": days(created),
            },
            self.source,
        )

    def _pipeline_dates(self, r: RNG, stage: pl.Series, acc_created: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Open deals: created 'stage age' days ago, closing ahead; closed deals: a 30-180 day cycle."""
        n = stage.len()
        st = stage.to_numpy()
        age_lo = np.select([st == k for k in STAGE_AGE], [v[0] for v in STAGE_AGE.values()], 0)
        age_hi = np.select([st == k for k in STAGE_AGE], [v[1] for v in STAGE_AGE.values()], 0)
        is_open = np.isin(st, list(STAGE_AGE))
        open_created = self.end - (age_lo + np.floor(r.random(n) * (age_hi - age_lo + 1))).astype(np.int64)
        open_close = self.end + 7 + np.floor(r.random(n) * 120).astype(np.int64)
        cycle = 30 + np.floor(r.random(n) * 150).astype(np.int64)
        first = np.maximum(acc_created, self.start)
        closed_created = first + np.floor(r.random(n) * np.maximum(1, self.end - first - cycle)).astype(np.int64)
        created = np.maximum(np.where(is_open, open_created, closed_created), acc_created)
        close = np.where(is_open, open_close, np.minimum(closed_created + cycle, self.end))
        return created, np.maximum(close, created)

    def activities(self) -> None:
        r, b = self.rng("activities"), self.blocks("activities")
        n: int = b.dept.shape[0]
        ob, cb = self.blocks("opportunities"), self.blocks("contacts")
        o, c, a = self.t["opportunities"], self.t["contacts"], self.t["accounts"]
        on_opp = (r.random(n) < 0.6) & (ob.count[b.dept] > 0) | (cb.count[b.dept] == 0)
        opp = np.where(on_opp, pick_in_blocks(r, b.dept, ob.start, np.maximum(ob.count, 1)), -1)
        con = np.where(~on_opp, pick_in_blocks(r, b.dept, cb.start, np.maximum(cb.count, 1)), -1)
        acc = np.where(
            on_opp,
            o["account_id"].to_numpy()[np.maximum(opp, 0)] - 1,
            c["account_id"].to_numpy()[np.maximum(con, 0)] - 1,
        )
        by_acc = self._contacts_of(acc, r, share=0.5)
        con = np.where(on_opp, by_acc, con)
        typ = weighted(r, ACTIVITY_MIX, n)
        first = np.maximum(a["created_at"].to_physical().to_numpy().astype(np.int64)[acc], self.start)
        when = first * DAY_US + np.floor(r.random(n) * ((self.end + 30 - first) * DAY_US)).astype(np.int64)
        when = when // 60_000_000 * 60_000_000
        person = c["full_name"].gather(np.maximum(con, 0))
        subject = self._subjects(r, typ, person, a["name"].gather(acc), con >= 0)
        self.t["activities"] = finish(
            "activities",
            n,
            {
                "type": typ,
                "subject": subject,
                "occurred_at": micros(when),
                "done": pl.Series(when < (self.end + 1) * DAY_US),
                "account_id": pl.Series(acc + 1),
                "contact_id": nullable(con),
                "opportunity_id": nullable(opp),
                "owner_id": a["owner_id"].gather(acc),
            },
            self.source,
        )

    def _contacts_of(self, acc: np.ndarray, r: RNG, share: float) -> np.ndarray:
        """For each row's account, one of its contacts (index), or -1 (none, or not chosen)."""
        ca = self.t["contacts"]["account_id"].to_numpy() - 1
        na = self.t["accounts"].height
        order = np.argsort(ca, kind="stable")
        cnt = np.bincount(ca, minlength=na)
        off = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        has = (cnt[acc] > 0) & (r.random(acc.shape[0]) < share)
        pos = off[acc] + np.floor(r.random(acc.shape[0]) * np.maximum(cnt[acc], 1)).astype(np.int64)
        return np.where(has, order[np.minimum(pos, max(order.shape[0] - 1, 0))] if order.shape[0] else -1, -1)

    def _subjects(
        self, r: RNG, typ: pl.Series, person: pl.Series, account: pl.Series, has_person: np.ndarray
    ) -> pl.Series:
        out = pl.Series([""] * typ.len(), dtype=pl.String)
        for kind in ACTIVITY_TYPES:
            options = list(self.v.text[kind])
            tmpl = pl.Series(options).gather(r.integers(0, len(options), typ.len()))
            who = pl.select(pl.when(pl.Series(has_person)).then(person).otherwise(account)).to_series()
            text = fill_template(tmpl, p=who, a=account)
            out = pl.select(pl.when(typ == kind).then(text).otherwise(out)).to_series()
        return out

    def cases(self) -> None:
        r, b = self.rng("cases"), self.blocks("cases")
        n: int = b.dept.shape[0]
        ab = self.blocks("accounts")
        acc = pick_in_blocks(r, b.dept, ab.start, ab.count)
        con = self._contacts_of(acc, r, share=0.8)
        c = self.t["contacts"]
        priority = weighted(r, PRIORITY_MIX, n)
        sla = priority.replace_strict(SLA_HOURS, return_dtype=pl.Int64).to_numpy() * 3_600_000_000
        opened = (self.start * DAY_US + np.floor(r.random(n) * ((self.end + 1 - self.start) * DAY_US))).astype(np.int64)
        opened = opened // 60_000_000 * 60_000_000
        resolve = (np.floor(r.exponential(0.7, n) * sla / 60_000_000) * 60_000_000).astype(np.int64) + 600_000_000
        now = (self.end + 1) * DAY_US
        recent = opened > now - 14 * DAY_US
        closed = (opened + resolve < now) & (r.random(n) < np.where(recent, 0.4, 0.97))
        still_open = np.array(OPEN_CASE_STATUSES)[r.integers(0, len(OPEN_CASE_STATUSES), n)]
        status = pl.Series(np.where(closed, "closed", still_open))
        subjects = list(self.v.text["case"])
        described = fill(
            str(self.v.text["case_text"]),
            p=c["full_name"].gather(np.maximum(con, 0)),
            ph=c["phone"].gather(np.maximum(con, 0)),
            em=c["email"].gather(np.maximum(con, 0)),
        )
        self.t["cases"] = finish(
            "cases",
            n,
            {
                "account_id": pl.Series(acc + 1),
                "contact_id": nullable(con),
                "subject": pl.Series(subjects).gather(r.integers(0, len(subjects), n)),
                "description": pl.select(pl.when(pl.Series(con >= 0)).then(described)).to_series(),
                "status": status,
                "priority": priority,
                "opened_at": micros(opened),
                "closed_at": pl.select(pl.when(pl.Series(closed)).then(micros(opened + resolve))).to_series(),
                "sla_due_at": micros(opened + sla),
                "owner_id": pl.Series(pick_in_blocks(r, b.dept, self.svc_start, self.svc_count) + 1),
                "department_id": pl.Series(b.dept + 1),
            },
            self.source,
        )

    def tags(self) -> None:
        specs = [(t.name, t.category) for t in self.s.tags]
        specs += [(f"answer:{e.id}", "exercise") for e in self.s.exercises if e.kind == "largest_open_pipeline"]
        self.t["tags"] = finish(
            "tags",
            len(specs),
            {
                "name": pl.Series([x[0] for x in specs], dtype=pl.String),
                "category": pl.Series([x[1] for x in specs], dtype=pl.String),
            },
            self.source,
        )

    def taggings(self) -> None:
        r = self.rng("taggings")
        ntags = len(self.s.tags)
        na, nc = self.t["accounts"].height, self.t["contacts"].height
        if ntags == 0:
            self.t["taggings"] = finish("taggings", 0, {}, self.source)
            return
        acc = np.flatnonzero(r.random(na) < 0.3)
        con = np.flatnonzero(r.random(nc) < 0.1)
        n = acc.shape[0] + con.shape[0]
        self.t["taggings"] = finish(
            "taggings",
            n,
            {
                "tag_id": pl.Series(r.integers(0, ntags, n) + 1),
                "account_id": nullable(np.concatenate([acc, np.full(con.shape[0], -1)])),
                "contact_id": nullable(np.concatenate([np.full(acc.shape[0], -1), con])),
            },
            self.source,
        )
