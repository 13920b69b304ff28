"""Generate a coherent CRM world, column-wise, from a scenario and a seed.

Every column is built at once: numpy's ``Generator(PCG64)`` draws indices into the
locale's vocabulary (:mod:`training.vocab`) and polars assembles strings, dates and keys.
Each entity has its own random stream (seeded from the seed and the entity's name), so the
same seed always gives the same world, byte for byte.

References hold by construction: departments own users; accounts are owned by a sales user
of their department; contacts, opportunities and cases belong to an account of the same
department; activities point at an opportunity or a contact and at their account; cases
point at a contact of their own account.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from crmkit.schema.models import ENTITY_MODELS
from crmkit.schema.target import entities
from crmkit.schema.vocabulary import ROLES
from crmkit.training.errors import ScenarioError
from crmkit.training.scenario import Scenario
from crmkit.training.vocab import PHONES, Vocab, vocab

DAY_US = 86_400_000_000
EMAIL_NUMBERS = 100  # a person's e-mail may carry a number 1..99 to keep it unique
KEY_PREFIX = {
    "departments": "D",
    "users": "U",
    "accounts": "A",
    "contacts": "C",
    "leads": "L",
    "opportunities": "O",
    "activities": "V",
    "cases": "K",
    "tags": "T",
    "taggings": "G",
}
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
RNG = np.random.Generator


@dataclass
class World:
    """A generated world: one frame per CRM entity, in the target schema's columns."""

    scenario: Scenario
    seed: int
    tables: dict[str, pl.DataFrame]
    exercises: list[dict[str, Any]] = field(default_factory=list)

    @property
    def source_name(self) -> str:
        return f"training:{self.scenario.name}"[:100]

    def counts(self) -> dict[str, int]:
        return {t: f.height for t, f in self.tables.items()}


def rng_for(seed: int, stream: str) -> RNG:
    """An independent random stream per entity, fixed by the seed."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(stream.encode())])))


# --- small column helpers ---------------------------------------------------------------


def weighted(rng: RNG, mix: dict[str, float], n: int) -> pl.Series:
    keys = list(mix)
    w = np.array([mix[k] for k in keys], dtype=float)
    return pl.Series(keys, dtype=pl.String).gather(rng.choice(len(keys), size=n, p=w / w.sum()))


def pick_in_blocks(rng: RNG, group: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """For each row, a random index inside its group's block [start, start + count)."""
    u = rng.random(group.shape[0])
    return start[group] + np.floor(u * count[group]).astype(np.int64)


def days(values: np.ndarray) -> pl.Series:
    return pl.Series(values.astype(np.int32)).cast(pl.Date)


def micros(values: np.ndarray) -> pl.Series:
    return pl.Series(values.astype(np.int64)).cast(pl.Datetime("us"))


def epoch_day(d: Any) -> int:
    import datetime as dt

    return (d - dt.date(1970, 1, 1)).days


def key_series(entity: str, n: int) -> pl.Series:
    width = max(4, len(str(n)))
    s = pl.Series("k", np.arange(1, n + 1, dtype=np.int64)).cast(pl.String).str.zfill(width)
    return (KEY_PREFIX[entity] + s).alias("legacy_key")


def finish(entity: str, n: int, cols: dict[str, pl.Series | Any], source: str) -> pl.DataFrame:
    """The entity's frame with every model column, in model order, typed."""
    fields = entities()[entity].fields
    data: dict[str, pl.Series] = {
        "id": pl.Series(np.arange(1, n + 1, dtype=np.int64)),
        "source_name": pl.Series([source], dtype=pl.String).gather(np.zeros(n, dtype=np.int64)),
        "legacy_key": key_series(entity, n),
        "row_hash": pl.Series([None] * n, dtype=pl.Int64),
        "run_id": pl.Series([None] * n, dtype=pl.Int64),
    }
    for name, f in fields.items():
        value = cols.get(name)
        dtype = pl.Int64 if f.kind == "integer" else f.dtype
        if value is None:
            data[name] = pl.Series([None] * n, dtype=dtype)
        elif isinstance(value, pl.Series):
            data[name] = value.cast(dtype)
        else:
            data[name] = pl.Series([value], dtype=dtype).gather(np.zeros(n, dtype=np.int64))
    order = [c.name for c in ENTITY_MODELS[entity].__table__.columns]  # type: ignore[attr-defined]
    order = ["id"] + [c for c in order if c != "id"]
    return pl.DataFrame({c: data[c].alias(c) for c in order})


# --- capacity of unique fields ----------------------------------------------------------------


def company_space(v: Vocab) -> int:
    cities = v.cities.len() if v.locale == "zh_CN" else 1
    return v.company_space * cities


def capacity(field_name: str, v: Vocab) -> int:
    """How many distinct values the vocabulary can give ``entity.field``."""
    if field_name == "accounts.name":
        return company_space(v)
    if field_name.endswith(".email"):
        return v.person_space * EMAIL_NUMBERS
    return v.person_space


def _size(scenario: Scenario, entity: str) -> int:
    if entity == "users":
        return sum(d.users.total for d in scenario.departments)
    return sum(getattr(d, entity) for d in scenario.departments)


def check_capacity(scenario: Scenario, where: str) -> None:
    """Before anything is generated: every unique field can take enough distinct values."""
    v = vocab(scenario.locale, 0)
    for name in scenario.unique:
        entity = name.split(".")[0]
        n, cap = _size(scenario, entity), capacity(name, v)
        if n > cap:
            raise ScenarioError(
                f"{where}: unique: {name} cannot be unique for {n:,} {entity}: the {scenario.locale} vocabulary "
                f"forms at most {cap:,} distinct values (lower the count, or take {name} out of unique)"
            )


# --- people and companies --------------------------------------------------------------------


@dataclass
class People:
    first: pl.Series
    last: pl.Series
    full: pl.Series
    local: pl.Series  # e-mail local part, first.last[N]


def people(rng: RNG, v: Vocab, n: int, unique_name: bool, unique_email: bool) -> People:
    nf, nl = v.first.len(), v.last.len()
    if unique_name or unique_email:
        k = 1 if unique_name else int(min(EMAIL_NUMBERS, max(1, -(-3 * n // (nf * nl)))))
        space = nf * nl * k
        codes = rng.choice(space, size=n, replace=False) if n else np.zeros(0, dtype=np.int64)
        f, rest = codes % nf, codes // nf
        last_i, num = rest % nl, rest // nl
    else:
        f, last_i = rng.integers(0, nf, n), rng.integers(0, nl, n)
        num = np.where(rng.random(n) < 0.15, rng.integers(1, EMAIL_NUMBERS, n), 0)
    first, last = v.first.gather(f), v.last.gather(last_i)
    sep = "" if v.locale == "zh_CN" else " "
    full = (last + first) if v.locale == "zh_CN" else (first + sep + last)
    suffix = pl.Series(num).cast(pl.String).replace("0", "")
    local = v.first_ascii.gather(f) + "." + v.last_ascii.gather(last_i) + suffix
    return People(first, last, full, local)


@dataclass
class Companies:
    name: pl.Series
    domain: pl.Series


def companies(rng: RNG, v: Vocab, n: int, unique: bool) -> Companies:
    na, nb, ns = v.company_a.len(), v.company_b.len(), v.suffixes.len()
    nc = v.cities.len() if v.locale == "zh_CN" else 1
    if unique:
        codes = rng.choice(na * nb * ns * nc, size=n, replace=False) if n else np.zeros(0, dtype=np.int64)
    else:
        codes = rng.integers(0, na * nb * ns * nc, n)
    a, rest = codes % na, codes // na
    b, rest = rest % nb, rest // nb
    s, c = rest % ns, rest // ns
    if v.locale == "zh_CN":
        name = v.cities.gather(c) + v.company_a.gather(a) + v.company_b.gather(b) + v.suffixes.gather(s)
    else:
        name = v.company_a.gather(a) + " " + v.company_b.gather(b) + " " + v.suffixes.gather(s)
    domain = v.company_a_ascii.gather(a) + v.company_b_ascii.gather(b) + "." + v.tld
    return Companies(name, domain)


def phones(rng: RNG, locale: str, kind: str, n: int) -> pl.Series:
    """Valid E.164 numbers of the locale's numbering plan."""
    plan = PHONES[locale][kind]
    which = rng.integers(0, len(plan), n)
    nd = np.array([p[1] for p in plan])[which]
    first, last = (5, 8) if (locale, kind) == ("zh_CN", "landline") else (2, 10)  # CN 800/400 are not landlines
    low, high = first * 10 ** (nd - 1), last * 10 ** (nd - 1)
    number = low + np.floor(rng.random(n) * (high - low)).astype(np.int64)
    if locale == "en_US":  # no N11 or 555 exchange
        exchange = number // 10_000
        number = np.where((exchange % 100 == 11) | (exchange == 555), number + 10_000, number)
    prefixes = pl.Series([p[0] for p in plan], dtype=pl.String).gather(which)
    return prefixes + pl.Series(number).cast(pl.String)


def addresses(rng: RNG, v: Vocab, n: int) -> pl.Series:
    street = v.streets.gather(rng.integers(0, v.streets.len(), n))
    number = pl.Series(rng.integers(1, 300, n)).cast(pl.String)
    if v.locale == "en_US":
        return number + " " + street
    if v.locale == "de_DE":
        return street + " " + number
    return street + number + "号"


# --- the entities --------------------------------------------------------------------------


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
        for i, d in enumerate(self.s.departments):  # manager, sales, service, admin: pools stay contiguous
            for role in ("manager", "sales", "service", "admin"):
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
            sales = [j for j in idx if rows[j][1] in ("manager", "sales")]
            svc = [j for j in idx if rows[j][1] == "service"] or sales or idx
            if sales:
                self.sales_start[i], self.sales_count[i] = sales[0], len(sales)
            if svc:
                self.svc_start[i], self.svc_count[i] = svc[0], len(svc)

    def accounts(self) -> None:
        r, b = self.rng("accounts"), self.blocks("accounts")
        n = b.dept.shape[0]
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
        n = b.dept.shape[0]
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
        notes = _fill(text, p=p.full, ph=mobile, em=email)
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
        n = b.dept.shape[0]
        p = people(r, self.v, n, "leads.full_name" in self.unique, "leads.email" in self.unique)
        c = companies(r, self.v, n, False)
        status = weighted(r, {"new": 30, "working": 25, "qualified": 15, "lost": 15, "converted": 15}, n)
        created = self.start + np.floor(r.random(n) * (self.end - self.start)).astype(np.int64)
        self.t["leads"] = finish(
            "leads",
            n,
            {
                "full_name": p.full,
                "company": c.name,
                "email": p.local + "@" + c.domain,
                "phone": phones(r, self.s.locale, "mobile", n),
                "lead_source": weighted(r, {"web": 35, "referral": 20, "event": 20, "partner": 10, "cold_call": 15}, n),
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
        n = b.dept.shape[0]
        acc = pick_in_blocks(r, b.dept, ab.start, ab.count)
        a = self.t["accounts"]
        stage = weighted(r, self.s.pipeline, n)
        base = a["segment"].gather(acc).replace_strict(SEGMENT_AMOUNT, default=20_000.0, return_dtype=pl.Float64)
        amount = (base.to_numpy() * r.lognormal(0.0, 0.6, n) / 100).round() * 100
        created, close = self._pipeline_dates(r, stage, a["created_at"].to_physical().to_numpy().astype(np.int64)[acc])
        product = pl.Series(self.v.text["product"]).gather(r.integers(0, len(self.v.text["product"]), n))  # type: ignore[arg-type]
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
        n = b.dept.shape[0]
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
        typ = weighted(r, {"call": 30, "email": 30, "meeting": 15, "task": 15, "note": 10}, n)
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
                "contact_id": _nullable(con),
                "opportunity_id": _nullable(opp),
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
        for kind in ("call", "meeting", "email", "note", "task"):
            options = list(self.v.text[kind])  # type: ignore[call-overload]
            tmpl = pl.Series(options).gather(r.integers(0, len(options), typ.len()))
            who = pl.select(pl.when(pl.Series(has_person)).then(person).otherwise(account)).to_series()
            text = _fill_template(tmpl, p=who, a=account)
            out = pl.select(pl.when(typ == kind).then(text).otherwise(out)).to_series()
        return out

    def cases(self) -> None:
        r, b = self.rng("cases"), self.blocks("cases")
        n = b.dept.shape[0]
        ab = self.blocks("accounts")
        acc = pick_in_blocks(r, b.dept, ab.start, ab.count)
        con = self._contacts_of(acc, r, share=0.8)
        c = self.t["contacts"]
        priority = weighted(r, {"low": 30, "medium": 40, "high": 20, "urgent": 10}, n)
        sla = priority.replace_strict(SLA_HOURS, return_dtype=pl.Int64).to_numpy() * 3_600_000_000
        opened = (self.start * DAY_US + np.floor(r.random(n) * ((self.end + 1 - self.start) * DAY_US))).astype(np.int64)
        opened = opened // 60_000_000 * 60_000_000
        resolve = (np.floor(r.exponential(0.7, n) * sla / 60_000_000) * 60_000_000).astype(np.int64) + 600_000_000
        now = (self.end + 1) * DAY_US
        recent = opened > now - 14 * DAY_US
        closed = (opened + resolve < now) & (r.random(n) < np.where(recent, 0.4, 0.97))
        status = pl.Series(np.where(closed, "closed", np.array(["new", "open", "pending"])[r.integers(0, 3, n)]))
        subjects = list(self.v.text["case"])  # type: ignore[call-overload]
        described = _fill(
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
                "contact_id": _nullable(con),
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
                "account_id": _nullable(np.concatenate([acc, np.full(con.shape[0], -1)])),
                "contact_id": _nullable(np.concatenate([np.full(acc.shape[0], -1), con])),
            },
            self.source,
        )


def epoch_day_np(year: int) -> int:
    import datetime as dt

    return epoch_day(dt.date(year, 1, 1))


def _nullable(index: np.ndarray) -> pl.Series:
    """0-based row indices (-1 = none) as 1-based ids with nulls."""
    s = pl.Series(index.astype(np.int64) + 1)
    return pl.select(pl.when(s > 0).then(s)).to_series()


def _fill_template(tmpl: pl.Series, **parts: pl.Series) -> pl.Series:
    """Fill ``{p}``-style placeholders row by row, column-wise (a template per row)."""
    out = tmpl
    for key, values in parts.items():
        pieces = out.str.split_exact("{" + key + "}", 1)
        head, tail = pieces.struct.field("field_0"), pieces.struct.field("field_1")
        out = pl.select(pl.when(tail.is_null()).then(head).otherwise(head + values + tail)).to_series()
    return out


def _fill(template: str, **parts: pl.Series) -> pl.Series:
    """One template for every row: literal pieces around the given columns."""
    import re

    pieces: list[pl.Expr] = []
    pos = 0
    for m in re.finditer(r"\{(\w+)\}", template):
        pieces += [pl.lit(template[pos : m.start()]), pl.col(m.group(1))]
        pos = m.end()
    pieces.append(pl.lit(template[pos:]))
    return pl.DataFrame(parts).select(pl.concat_str(pieces).alias("text")).to_series()


def generate(scenario: Scenario, seed: int, where: str = "scenario") -> World:
    """The world of ``scenario`` for ``seed``: same seed, same world."""
    check_capacity(scenario, where)
    tables = Builder(scenario, seed).build()
    world = World(scenario, seed, tables)
    from crmkit.training.exercises import plant

    plant(world)
    return world
