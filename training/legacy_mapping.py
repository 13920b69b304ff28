"""The crmkit mapping that migrates a training legacy estate (rendered for its locale and headers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from crmkit.training.legacy import CODES, HEADERS, HOUSE_DATE, OTHER_DATES, ROLE_CODES
from crmkit.training.scenario import Scenario
from crmkit.training.vocab import COUNTRY


def _q(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


def _map(codes: dict[str, str]) -> str:
    return "{" + ", ".join(f"{_q(legacy)}: {_q(target)}" for target, legacy in codes.items()) + "}"


def _countries() -> str:
    pairs = {name: code for lang in CODES.values() for code, name in lang["country"].items()}
    pairs.update({c: c for c in COUNTRY.values()})
    return "{" + ", ".join(f"{_q(k)}: {_q(v)}" for k, v in pairs.items()) + "}"


@dataclass(frozen=True)
class _Parts:
    """The pieces of a mapping that depend on the scenario's locale and headers."""

    h: dict[str, str]  # legacy headers
    c: dict[str, dict[str, str]]  # legacy codes
    base: str
    db_url: str
    date: str
    phone: str
    number: str
    full: str
    roles: str
    dt: str = '{datetime: ["%Y-%m-%d %H:%M:%S"]}'

    def col(self, key: str, transform: str) -> str:
        return f"{{column: {_q(self.h[key])}, transform: {transform}}}"

    def sql(self, table: str) -> str:
        return (
            f"{{kind: sql, url: {_q(self.db_url.replace('sqlite:///', 'sqlite:///' + self.base, 1))}, table: {table}}}"
        )


def _parts(s: Scenario, base: str, db_url: str) -> _Parts:
    h = HEADERS[s.headers]
    house = HOUSE_DATE[s.locale]
    dates = _q([house] + [f for f in OTHER_DATES if f != house])
    full = (
        f'{{columns: [{_q(h["last"])}, {_q(h["first"])}], sep: "", transform: [nfkc, collapse_spaces]}}'
        if s.locale == "zh_CN"
        else f'{{columns: [{_q(h["first"])}, {_q(h["last"])}], sep: " ", transform: [nfkc, collapse_spaces]}}'
    )
    return _Parts(
        h=h,
        c=CODES[s.headers],
        base=base,
        db_url=db_url,
        date=f"{{date: {dates}}}",
        phone=f"{{phone: {{region: {COUNTRY[s.locale]}}}}}",
        number="{number: {decimal: ','}}" if s.locale == "de_DE" else "number",
        full=full,
        roles=_map(ROLE_CODES),
    )


def _header(s: Scenario, name: str) -> str:
    return f"""# Migrates a training legacy estate made by `crmkit training legacy`
# (locale {s.locale}, {s.headers} headers).  Paths are relative to this file.
#   crmkit migrate plan  <this file>
#   crmkit migrate run   <this file> --target sqlite:///crm.db
# answer_key.json beside the estate lists every row a correct run must reject.
version: 1
name: {name}
description: Training legacy estate (ERP database + contact spreadsheet + GB18030 lead list)
# The estate has injected problems on purpose: the run passes while rejects stay under this share.
max_rejects: 30%

"""


def _sources(x: _Parts) -> str:
    return f"""sources:
  org_unit:       {x.sql("ORG_UNIT")}
  staff:          {x.sql("STAFF")}
  customer:       {x.sql("CUSTOMER")}
  deal:           {x.sql("DEAL")}
  ticket:         {x.sql("TICKET")}
  interaction:    {x.sql("INTERACTION")}
  contacts_sheet: {{kind: xlsx, path: {_q(x.base + "contacts.xlsx")}, sheet: {_q(x.h["sheet"])}, header_row: 3}}
  leads_list:     {{kind: csv, path: {_q(x.base + "leads.csv")}, encoding: gb18030}}

"""


def _organisation(x: _Parts) -> str:
    """Departments, users and accounts, from the ERP database."""
    return f"""entities:
  departments:
    from: org_unit
    key: UNIT_CD
    fields:
      code:   {{column: UNIT_CD, transform: [strip, upper]}}
      name:   {{column: UNIT_NAME, transform: [nfkc, strip]}}
      region: {{column: AREA, transform: strip}}

  users:
    from: staff
    key: STAFF_NO
    fields:
      name:       {{column: STAFF_NAME, transform: [nfkc, collapse_spaces]}}
      email:      {{column: MAIL_ADDR, transform: email}}
      role:       {{column: ROLE_CD, transform: strip, map: {x.roles}}}
      department: {{ref: departments, column: UNIT_CD}}

  accounts:
    from: customer
    key: CUST_ID
    fields:
      name:       {{column: CUST_NAME, transform: [nfkc, collapse_spaces]}}
      industry:   {{column: TRADE, transform: strip}}
      segment:    {{column: SEG_CD, transform: [strip, lower]}}
      tier:       {{column: TIER_CD, transform: [strip, upper]}}
      phone:      {{column: TEL, transform: {x.phone}}}
      email:      {{column: MAIL, transform: email}}
      website:    {{column: WEB, transform: [strip, lower]}}
      address:    {{column: ADDR, transform: [nfkc, strip]}}
      city:       {{column: CITY, transform: strip}}
      country:    {{column: CTRY, transform: strip, map: {_countries()}}}
      owner:      {{ref: users, column: REP_NO}}
      department: {{ref: departments, column: UNIT_CD}}
      created_at: {{column: OPEN_DT, transform: {x.date}}}
      active:     {{column: ACTIVE_FLAG, transform: bool}}

"""


def _people(x: _Parts) -> str:
    """Contacts from the spreadsheet, leads from the GB18030 list."""
    return f"""  contacts:
    from: contacts_sheet
    key: {_q(x.h["key"])}
    fields:
      account:    {{ref: accounts, column: {_q(x.h["account"])}}}
      first_name: {x.col("first", "[nfkc, collapse_spaces]")}
      last_name:  {x.col("last", "[nfkc, collapse_spaces]")}
      full_name:  {x.full}
      title:      {x.col("title", "strip")}
      phone:      {x.col("phone", x.phone)}
      mobile:     {x.col("mobile", x.phone)}
      email:      {x.col("email", "email")}
      address:    {x.col("address", "[nfkc, strip]")}
      city:       {x.col("city", "strip")}
      birth_date: {x.col("birth", x.date)}
      consent_to_contact: {x.col("consent", "bool")}
      notes:      {x.col("notes", "strip")}
      created_at: {x.col("created", x.date)}

  leads:
    from: leads_list
    key: {_q(x.h["lead_key"])}
    fields:
      full_name:   {x.col("lead_name", "[nfkc, collapse_spaces]")}
      company:     {x.col("company", "[nfkc, collapse_spaces]")}
      email:       {x.col("lead_email", "email")}
      phone:       {x.col("lead_phone", x.phone)}
      lead_source: {{column: {_q(x.h["source"])}, transform: strip, map: {_map(x.c["lead_source"])}}}
      status:      {{column: {_q(x.h["status"])}, transform: strip, map: {_map(x.c["lead_status"])}}}
      owner:       {{ref: users, column: {_q(x.h["owner"])}}}
      department:  {{ref: departments, column: {_q(x.h["dept"])}}}
      created_at:  {x.col("date", x.date)}

"""


def _business(x: _Parts) -> str:
    """Opportunities, cases and activities, from the ERP database."""
    return f"""  opportunities:
    from: deal
    key: DEAL_ID
    fields:
      account:     {{ref: accounts, column: CUST_ID}}
      name:        {{column: DEAL_NAME, transform: [nfkc, strip]}}
      stage:       {{column: PHASE, transform: strip, map: {_map(x.c["stage"])}}}
      amount:      {{column: AMT, transform: {x.number}}}
      currency:    {{column: CCY, transform: [strip, upper]}}
      close_date:  {{column: EXP_CLOSE, transform: {x.date}}}
      probability: {{column: PROB, transform: integer}}
      owner:       {{ref: users, column: REP_NO}}
      department:  {{ref: departments, column: UNIT_CD}}
      created_at:  {{column: CREATED, transform: {x.date}}}

  cases:
    from: ticket
    key: TICKET_ID
    fields:
      account:     {{ref: accounts, column: CUST_ID}}
      contact:     {{ref: contacts, column: PERSON_ID}}
      subject:     {{column: TITLE, transform: strip}}
      description: {{column: DETAIL, transform: strip}}
      status:      {{column: STATE, transform: strip, map: {_map(x.c["case_status"])}}}
      priority:    {{column: PRIO, transform: strip, map: {_map(x.c["priority"])}}}
      opened_at:   {{column: OPENED, transform: {x.dt}}}
      closed_at:   {{column: CLOSED, transform: {x.dt}}}
      sla_due_at:  {{column: DUE, transform: {x.dt}}}
      owner:       {{ref: users, column: AGENT_NO}}
      department:  {{ref: departments, column: UNIT_CD}}

  activities:
    from: interaction
    key: INT_ID
    fields:
      type:        {{column: KIND, transform: strip, map: {_map(x.c["activity"])}}}
      subject:     {{column: SUBJ, transform: strip}}
      body:        {{column: NOTE_TXT, transform: strip}}
      occurred_at: {{column: WHEN_TS, transform: {x.dt}}}
      done:        {{column: DONE_YN, transform: bool}}
      account:     {{ref: accounts, column: CUST_ID}}
      contact:     {{ref: contacts, column: PERSON_ID}}
      opportunity: {{ref: opportunities, column: DEAL_ID}}
      owner:       {{ref: users, column: STAFF_NO}}
"""


def render_mapping(s: Scenario, base: str, db_url: str, name: str = "training-legacy") -> str:
    """Mapping YAML for an estate of ``s``; ``base`` prefixes file paths (relative to the mapping)."""
    x = _parts(s, base, db_url)
    return _header(s, name) + _sources(x) + _organisation(x) + _people(x) + _business(x)
