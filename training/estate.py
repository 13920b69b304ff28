"""``crmkit training legacy``: build the legacy sources from a world, inject problems, write the estate."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from crmkit.errors import TargetError
from crmkit.training.generate import World
from crmkit.training.legacy import (
    CODES,
    DATETIME,
    FIXED_TIME,
    HEADERS,
    KEY_PREFIX,
    REJECT_CLASSES,
    ROLE_CODES,
    Estate,
    Injector,
    Source,
    amount_text,
    legacy_key,
)
from crmkit.training.legacy_mapping import render_mapping
from crmkit.training.vocab import TEXT

DB_TABLES = ("ORG_UNIT", "STAFF", "CUSTOMER", "DEAL", "TICKET", "INTERACTION")
XLSX, CSV, SQLITE = "contacts.xlsx", "leads.csv", "legacy.sqlite"
LEGACY_DB_ENV = "CRMKIT_LEGACY_DB_URL"


def width(world: World, entity: str) -> int:
    return max(4, len(str(2 * max(world.tables[entity].height, 1))))


class Builder:
    """Turns the world's frames into legacy-shaped text frames, with helper columns for the injector."""

    def __init__(self, world: World):
        self.w = world
        self.h = HEADERS[world.scenario.headers]
        self.c = CODES[world.scenario.headers]
        self.locale = world.scenario.locale

    def key(self, entity: str, col: str = "id") -> pl.Expr:
        return legacy_key(entity, pl.col(col), width(self.w, entity))

    def dept_code(self, col: str = "department_id") -> pl.Expr:
        codes = self.w.tables["departments"]
        return pl.col(col).replace_strict(codes["id"], codes["code"], default=None, return_dtype=pl.String)

    def code(self, what: str, col: str) -> pl.Expr:
        return pl.col(col).cast(pl.String).replace_strict(self.c[what], default=None, return_dtype=pl.String)

    def yes(self, col: str) -> pl.Expr:
        return pl.col(col).cast(pl.String).replace_strict(self.c["yes"], default=None, return_dtype=pl.String)

    def departments(self) -> Source:
        f = self.w.tables["departments"].select(
            pl.col("code").alias("UNIT_CD"), pl.col("name").alias("UNIT_NAME"), pl.col("region").alias("AREA")
        )
        return Source("ORG_UNIT", "departments", "UNIT_CD", f, 1)

    def users(self) -> Source:
        f = self.w.tables["users"].select(
            self.key("users").alias("STAFF_NO"),
            pl.col("name").alias("STAFF_NAME"),
            pl.when(pl.col("id") % 3 == 0)
            .then(" " + pl.col("email").str.to_uppercase())
            .otherwise(pl.col("email"))
            .alias("MAIL_ADDR"),
            self.dept_code().alias("UNIT_CD"),
            pl.col("role").replace_strict(ROLE_CODES, return_dtype=pl.String).alias("ROLE_CD"),
        )
        return Source("STAFF", "users", "STAFF_NO", f, 1, refs={"UNIT_CD": "departments"})

    def accounts(self) -> Source:
        f = self.w.tables["accounts"].select(
            self.key("accounts").alias("CUST_ID"),
            pl.col("name").alias("CUST_NAME"),
            pl.col("industry").alias("TRADE"),
            pl.col("segment").str.to_uppercase().alias("SEG_CD"),
            pl.col("tier").alias("TIER_CD"),
            pl.col("phone").alias("_p_TEL"),
            pl.col("phone").alias("TEL"),
            pl.col("email").alias("MAIL"),
            pl.col("website").alias("WEB"),
            pl.col("address").alias("ADDR"),
            pl.col("city").alias("CITY"),
            self.code("country", "country").alias("CTRY"),
            self.key("users", "owner_id").alias("REP_NO"),
            self.dept_code().alias("UNIT_CD"),
            pl.col("created_at").alias("_d_OPEN_DT"),
            pl.col("created_at").cast(pl.String).alias("OPEN_DT"),
            pl.when(pl.col("active")).then(pl.lit("Y")).otherwise(pl.lit("N")).alias("ACTIVE_FLAG"),
        )
        return Source(
            "CUSTOMER",
            "accounts",
            "CUST_ID",
            f,
            1,
            refs={"REP_NO": "users", "UNIT_CD": "departments"},
            required=["CUST_NAME"],
            orphan_col="REP_NO",
            dates=["OPEN_DT"],
            phones=["TEL"],
            name_col="CUST_NAME",
            email_col="MAIL",
            dupes=True,
        )

    def contacts(self) -> Source:
        h = self.h
        f = self.w.tables["contacts"].select(
            self.key("contacts").alias(h["key"]),
            self.key("accounts", "account_id").alias(h["account"]),
            pl.col("last_name").alias(h["last"]),
            pl.col("first_name").alias(h["first"]),
            pl.col("title").alias(h["title"]),
            pl.col("phone").alias(f"_p_{h['phone']}"),
            pl.col("phone").alias(h["phone"]),
            pl.col("mobile").alias(f"_p_{h['mobile']}"),
            pl.col("mobile").alias(h["mobile"]),
            pl.col("email").alias(h["email"]),
            pl.col("address").alias(h["address"]),
            pl.col("city").alias(h["city"]),
            pl.col("birth_date").alias(f"_d_{h['birth']}"),
            pl.col("birth_date").cast(pl.String).alias(h["birth"]),
            self.yes("consent_to_contact").alias(h["consent"]),
            pl.col("notes").alias(h["notes"]),
            pl.col("created_at").alias(f"_d_{h['created']}"),
            pl.col("created_at").cast(pl.String).alias(h["created"]),
        )
        return Source(
            XLSX,
            "contacts",
            h["key"],
            f,
            4,
            refs={h["account"]: "accounts"},
            required=[h["last"], h["first"]],
            orphan_col=h["account"],
            dates=[h["birth"], h["created"]],
            phones=[h["phone"], h["mobile"]],
            name_col=h["last"],
            swap=(h["first"], h["last"]),
            email_col=h["email"],
            dupes=True,
        )

    def leads(self) -> Source:
        h = self.h
        f = self.w.tables["leads"].select(
            self.key("leads").alias(h["lead_key"]),
            pl.col("full_name").alias(h["lead_name"]),
            pl.col("company").alias(h["company"]),
            pl.col("email").alias(h["lead_email"]),
            pl.col("phone").alias(f"_p_{h['lead_phone']}"),
            pl.col("phone").alias(h["lead_phone"]),
            self.code("lead_source", "lead_source").alias(h["source"]),
            self.code("lead_status", "status").alias(h["status"]),
            self.key("users", "owner_id").alias(h["owner"]),
            self.dept_code().alias(h["dept"]),
            pl.col("created_at").alias(f"_d_{h['date']}"),
            pl.col("created_at").cast(pl.String).alias(h["date"]),
        )
        return Source(
            CSV,
            "leads",
            h["lead_key"],
            f,
            2,
            refs={h["owner"]: "users", h["dept"]: "departments"},
            required=[h["lead_name"]],
            orphan_col=h["owner"],
            dates=[h["date"]],
            phones=[h["lead_phone"]],
            name_col=h["lead_name"],
            swap=(h["lead_name"], h["lead_name"]),
            email_col=h["lead_email"],
            dupes=True,
        )

    def opportunities(self) -> Source:
        f = self.w.tables["opportunities"].select(
            self.key("opportunities").alias("DEAL_ID"),
            self.key("accounts", "account_id").alias("CUST_ID"),
            pl.col("name").alias("DEAL_NAME"),
            self.code("stage", "stage").alias("PHASE"),
            amount_text(pl.col("amount"), self.locale).alias("AMT"),
            pl.col("currency").alias("CCY"),
            pl.col("close_date").alias("_d_EXP_CLOSE"),
            pl.col("close_date").cast(pl.String).alias("EXP_CLOSE"),
            pl.col("probability").cast(pl.String).alias("PROB"),
            self.key("users", "owner_id").alias("REP_NO"),
            self.dept_code().alias("UNIT_CD"),
            pl.col("created_at").alias("_d_CREATED"),
            pl.col("created_at").cast(pl.String).alias("CREATED"),
        )
        return Source(
            "DEAL",
            "opportunities",
            "DEAL_ID",
            f,
            1,
            refs={"CUST_ID": "accounts", "REP_NO": "users", "UNIT_CD": "departments"},
            required=["DEAL_NAME"],
            orphan_col="CUST_ID",
            dates=["EXP_CLOSE", "CREATED"],
        )

    def cases(self) -> Source:
        f = self.w.tables["cases"].select(
            self.key("cases").alias("TICKET_ID"),
            self.key("accounts", "account_id").alias("CUST_ID"),
            self.key("contacts", "contact_id").alias("PERSON_ID"),
            pl.col("subject").alias("TITLE"),
            pl.col("description").alias("DETAIL"),
            self.code("case_status", "status").alias("STATE"),
            self.code("priority", "priority").alias("PRIO"),
            pl.col("opened_at").dt.strftime(DATETIME).alias("OPENED"),
            pl.col("closed_at").dt.strftime(DATETIME).alias("CLOSED"),
            pl.col("sla_due_at").dt.strftime(DATETIME).alias("DUE"),
            self.key("users", "owner_id").alias("AGENT_NO"),
            self.dept_code().alias("UNIT_CD"),
        )
        return Source(
            "TICKET",
            "cases",
            "TICKET_ID",
            f,
            1,
            refs={"CUST_ID": "accounts", "PERSON_ID": "contacts", "AGENT_NO": "users", "UNIT_CD": "departments"},
            required=["TITLE"],
            orphan_col="CUST_ID",
        )

    def activities(self) -> Source:
        f = self.w.tables["activities"].select(
            self.key("activities").alias("INT_ID"),
            self.code("activity", "type").alias("KIND"),
            pl.col("subject").alias("SUBJ"),
            pl.col("body").alias("NOTE_TXT"),
            pl.col("occurred_at").dt.strftime(DATETIME).alias("WHEN_TS"),
            pl.when(pl.col("done")).then(pl.lit("Y")).otherwise(pl.lit("N")).alias("DONE_YN"),
            self.key("accounts", "account_id").alias("CUST_ID"),
            self.key("contacts", "contact_id").alias("PERSON_ID"),
            self.key("opportunities", "opportunity_id").alias("DEAL_ID"),
            self.key("users", "owner_id").alias("STAFF_NO"),
        )
        return Source(
            "INTERACTION",
            "activities",
            "INT_ID",
            f,
            1,
            refs={"CUST_ID": "accounts", "PERSON_ID": "contacts", "DEAL_ID": "opportunities", "STAFF_NO": "users"},
            required=["SUBJ"],
            orphan_col="CUST_ID",
        )


def build(world: World) -> Estate:
    """The legacy sources of ``world`` with their problems injected (nothing written yet)."""
    b, inj = Builder(world), Injector(world)
    for make in (b.departments, b.users, b.accounts, b.contacts, b.leads, b.opportunities, b.cases, b.activities):
        inj.run(make())
    for ex in world.exercises:
        if ex["kind"] == "merge_duplicate_contact":
            w = width(world, "contacts")
            a, d = (f"{KEY_PREFIX['contacts']}{str(i).zfill(w)}" for i in ex["answer"]["contact_ids"])
            inj.estate.duplicates.append(
                {"entity": "contacts", "source": XLSX, "original": a, "duplicate": d, "variant": "exact"}
            )
    return inj.estate


# --- writing ----------------------------------------------------------------------------------


def write_sqlite(path: Path, tables: dict[str, pl.DataFrame]) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        for name, frame in tables.items():
            cols = ", ".join(f'"{c}" TEXT' for c in frame.columns)
            conn.execute(f'CREATE TABLE "{name}" ({cols})')
            marks = ", ".join("?" for _ in frame.columns)
            conn.executemany(f'INSERT INTO "{name}" VALUES ({marks})', frame.iter_rows())
        conn.commit()
        conn.execute("VACUUM")
    finally:
        conn.close()


def write_mysql(url: str, tables: dict[str, pl.DataFrame]) -> None:
    """Create the legacy tables (all TEXT) in an empty MariaDB/MySQL database and fill them."""
    from sqlalchemy import Column, MetaData, Table, Text, create_engine, inspect
    from sqlalchemy import exc as sa_exc

    from crmkit.db.url import mask_url

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            clash = sorted(set(inspect(conn).get_table_names()) & set(tables))
        if clash:
            raise TargetError(
                f"legacy database {mask_url(url)} already has table(s) {', '.join(clash)}: give an empty database"
            )
        meta = MetaData()
        made = [Table(n, meta, *(Column(c, Text) for c in f.columns)) for n, f in tables.items()]
        with engine.begin() as conn:
            meta.create_all(conn)
            for t in made:
                rows = tables[t.name].to_dicts()
                if rows:
                    conn.execute(t.insert(), rows)
    except sa_exc.OperationalError as exc:
        raise TargetError(
            f"cannot write the legacy database {mask_url(url)}: {str(exc.orig).splitlines()[0] if exc.orig else exc}"
        ) from None
    finally:
        engine.dispose()


def write_xlsx(path: Path, frame: pl.DataFrame, world: World) -> None:
    import xlsxwriter

    h = HEADERS[world.scenario.headers]
    text = TEXT[world.scenario.locale]
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False})
    book.set_properties({"created": FIXED_TIME, "author": "legacy export"})
    sheet = book.add_worksheet(h["sheet"])
    bold = book.add_format({"bold": True})
    sheet.merge_range(
        0, 0, 0, max(len(frame.columns) - 1, 1), str(text["title"]).format(org=world.scenario.organisation), bold
    )
    sheet.write_string(1, 0, str(text["exported"]).format(d=world.scenario.dates.end.isoformat()))
    for j, col in enumerate(frame.columns):
        sheet.write_string(2, j, col, bold)
    for i, row in enumerate(frame.iter_rows(), start=3):
        for j, v in enumerate(row):
            if v is not None:
                sheet.write_string(i, j, str(v))
    book.close()


def write_gb18030(path: Path, frame: pl.DataFrame) -> None:
    text = frame.write_csv(line_terminator="\r\n")
    path.write_bytes(text.encode("gb18030"))


def answer_key(world: World, estate: Estate) -> dict[str, Any]:
    by_class: dict[str, dict[str, int]] = {}
    for p in estate.problems:
        if p["reject"]:
            c = by_class.setdefault(p["entity"], {k: 0 for k in REJECT_CLASSES})
            c[p["class"]] += 1
    expected = {
        e: {**v, "rejects_by_class": by_class.get(e, {k: 0 for k in REJECT_CLASSES})}
        for e, v in estate.expected.items()
    }
    return {
        "scenario": world.scenario.name,
        "seed": world.seed,
        "locale": world.scenario.locale,
        "headers": world.scenario.headers,
        "rates": world.scenario.legacy.rates.model_dump(),
        "tolerance": {"rejects": 0, "duplicates_recall": 0.9, "duplicates_precision": 0.9},
        "expected": expected,
        "problems": estate.problems,
        "duplicates": estate.duplicates,
    }


@dataclass
class Written:
    files: list[Path]
    answer: dict[str, Any]


def export(world: World, out: Path, legacy_db: str | None = None) -> Written:
    """Write the estate of ``world`` into ``out`` (and its database into ``legacy_db`` if given)."""
    estate = build(world)
    db = {n: estate.sources[n] for n in DB_TABLES}
    key = answer_key(world, estate)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".crmkit-", dir=out))
    try:
        if legacy_db is None:
            write_sqlite(tmp / SQLITE, db)
        write_xlsx(tmp / XLSX, estate.sources[XLSX], world)
        write_gb18030(tmp / CSV, estate.sources[CSV])
        (tmp / "answer_key.json").write_text(
            json.dumps(key, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        db_url = f"${{{LEGACY_DB_ENV}}}" if legacy_db else f"sqlite:///{SQLITE}"
        (tmp / "mapping.yaml").write_text(render_mapping(world.scenario, "", db_url), encoding="utf-8")
        if legacy_db is not None:
            write_mysql(legacy_db, db)
        files = []
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
            files.append(out / f.name)
        return Written(files, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
