"""The crmkit mapping that migrates a training legacy estate (rendered for its locale and headers)."""

from __future__ import annotations

import json
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


def render_mapping(s: Scenario, base: str, db_url: str, name: str = "training-legacy") -> str:
    """Mapping YAML for an estate of ``s``; ``base`` prefixes file paths (relative to the mapping)."""
    h, c = HEADERS[s.headers], CODES[s.headers]
    region = COUNTRY[s.locale]
    house = HOUSE_DATE[s.locale]
    dates = _q([house] + [f for f in OTHER_DATES if f != house])
    date = f"{{date: {dates}}}"
    phone = f"{{phone: {{region: {region}}}}}"
    number = "{number: {decimal: ','}}" if s.locale == "de_DE" else "number"
    dt = '{datetime: ["%Y-%m-%d %H:%M:%S"]}'
    full = (
        f'{{columns: [{_q(h["last"])}, {_q(h["first"])}], sep: "", transform: [nfkc, collapse_spaces]}}'
        if s.locale == "zh_CN"
        else f'{{columns: [{_q(h["first"])}, {_q(h["last"])}], sep: " ", transform: [nfkc, collapse_spaces]}}'
    )
    roles = _map(ROLE_CODES)

    def col(key: str, transform: str) -> str:
        return f"{{column: {_q(h[key])}, transform: {transform}}}"

    def sql(table: str) -> str:
        return f"{{kind: sql, url: {_q(db_url.replace('sqlite:///', 'sqlite:///' + base, 1))}, table: {table}}}"

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

sources:
  org_unit:       {sql("ORG_UNIT")}
  staff:          {sql("STAFF")}
  customer:       {sql("CUSTOMER")}
  deal:           {sql("DEAL")}
  ticket:         {sql("TICKET")}
  interaction:    {sql("INTERACTION")}
  contacts_sheet: {{kind: xlsx, path: {_q(base + "contacts.xlsx")}, sheet: {_q(h["sheet"])}, header_row: 3}}
  leads_list:     {{kind: csv, path: {_q(base + "leads.csv")}, encoding: gb18030}}

entities:
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
      role:       {{column: ROLE_CD, transform: strip, map: {roles}}}
      department: {{ref: departments, column: UNIT_CD}}

  accounts:
    from: customer
    key: CUST_ID
    fields:
      name:       {{column: CUST_NAME, transform: [nfkc, collapse_spaces]}}
      industry:   {{column: TRADE, transform: strip}}
      segment:    {{column: SEG_CD, transform: [strip, lower]}}
      tier:       {{column: TIER_CD, transform: [strip, upper]}}
      phone:      {{column: TEL, transform: {phone}}}
      email:      {{column: MAIL, transform: email}}
      website:    {{column: WEB, transform: [strip, lower]}}
      address:    {{column: ADDR, transform: [nfkc, strip]}}
      city:       {{column: CITY, transform: strip}}
      country:    {{column: CTRY, transform: strip, map: {_countries()}}}
      owner:      {{ref: users, column: REP_NO}}
      department: {{ref: departments, column: UNIT_CD}}
      created_at: {{column: OPEN_DT, transform: {date}}}
      active:     {{column: ACTIVE_FLAG, transform: bool}}

  contacts:
    from: contacts_sheet
    key: {_q(h["key"])}
    fields:
      account:    {{ref: accounts, column: {_q(h["account"])}}}
      first_name: {col("first", "[nfkc, collapse_spaces]")}
      last_name:  {col("last", "[nfkc, collapse_spaces]")}
      full_name:  {full}
      title:      {col("title", "strip")}
      phone:      {col("phone", phone)}
      mobile:     {col("mobile", phone)}
      email:      {col("email", "email")}
      address:    {col("address", "[nfkc, strip]")}
      city:       {col("city", "strip")}
      birth_date: {col("birth", date)}
      consent_to_contact: {col("consent", "bool")}
      notes:      {col("notes", "strip")}
      created_at: {col("created", date)}

  leads:
    from: leads_list
    key: {_q(h["lead_key"])}
    fields:
      full_name:   {col("lead_name", "[nfkc, collapse_spaces]")}
      company:     {col("company", "[nfkc, collapse_spaces]")}
      email:       {col("lead_email", "email")}
      phone:       {col("lead_phone", phone)}
      lead_source: {{column: {_q(h["source"])}, transform: strip, map: {_map(c["lead_source"])}}}
      status:      {{column: {_q(h["status"])}, transform: strip, map: {_map(c["lead_status"])}}}
      owner:       {{ref: users, column: {_q(h["owner"])}}}
      department:  {{ref: departments, column: {_q(h["dept"])}}}
      created_at:  {col("date", date)}

  opportunities:
    from: deal
    key: DEAL_ID
    fields:
      account:     {{ref: accounts, column: CUST_ID}}
      name:        {{column: DEAL_NAME, transform: [nfkc, strip]}}
      stage:       {{column: PHASE, transform: strip, map: {_map(c["stage"])}}}
      amount:      {{column: AMT, transform: {number}}}
      currency:    {{column: CCY, transform: [strip, upper]}}
      close_date:  {{column: EXP_CLOSE, transform: {date}}}
      probability: {{column: PROB, transform: integer}}
      owner:       {{ref: users, column: REP_NO}}
      department:  {{ref: departments, column: UNIT_CD}}
      created_at:  {{column: CREATED, transform: {date}}}

  cases:
    from: ticket
    key: TICKET_ID
    fields:
      account:     {{ref: accounts, column: CUST_ID}}
      contact:     {{ref: contacts, column: PERSON_ID}}
      subject:     {{column: TITLE, transform: strip}}
      description: {{column: DETAIL, transform: strip}}
      status:      {{column: STATE, transform: strip, map: {_map(c["case_status"])}}}
      priority:    {{column: PRIO, transform: strip, map: {_map(c["priority"])}}}
      opened_at:   {{column: OPENED, transform: {dt}}}
      closed_at:   {{column: CLOSED, transform: {dt}}}
      sla_due_at:  {{column: DUE, transform: {dt}}}
      owner:       {{ref: users, column: AGENT_NO}}
      department:  {{ref: departments, column: UNIT_CD}}

  activities:
    from: interaction
    key: INT_ID
    fields:
      type:        {{column: KIND, transform: strip, map: {_map(c["activity"])}}}
      subject:     {{column: SUBJ, transform: strip}}
      body:        {{column: NOTE_TXT, transform: strip}}
      occurred_at: {{column: WHEN_TS, transform: {dt}}}
      done:        {{column: DONE_YN, transform: bool}}
      account:     {{ref: accounts, column: CUST_ID}}
      contact:     {{ref: contacts, column: PERSON_ID}}
      opportunity: {{ref: opportunities, column: DEAL_ID}}
      owner:       {{ref: users, column: STAFF_NO}}
"""
