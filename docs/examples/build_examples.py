"""Write the small data files the example mappings of docs/mapping-reference.md read.

Run from the repository root:  .venv/bin/python docs/examples/build_examples.py
The output is deterministic (fixed workbook properties, the SQLite file rebuilt and
VACUUMed), so the committed files only change when this script does.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import xlsxwriter

HERE = Path(__file__).resolve().parent
CREATED = dt.datetime(2024, 5, 1, 9, 0, 0)

# --- eu-deals: two semicolon-separated exports, one of them in Windows-1252 -------------

KUNDEN = """\
KdNr;Firma;Ort;Land;Telefon;Kunde seit
K001;Müller & Söhne GmbH;München;DE;089 12345678;01.02.2015
K002;Bäckerei Schäfer;Düsseldorf;DE;0211 9876543;15.06.2018
K003;Alpen Tours AG;Zürich;CH;044 668 18 00;03.11.2020
K004;Société Lyonnaise SARL;Lyon;FR;04 78 42 10 10;
"""

AUFTRAEGE = """\
AuftragNr;KdNr;Bezeichnung;Betrag;Waehrung;Abschluss;Status
A-100;K001;Rahmenvertrag 2024;12.500,00;EUR;31.03.2024;gewonnen
A-101;K002;Ofenwartung;1.234,56 €;EUR;15.04.2024;offen
A-102;K003;Gruppenreisen;n.v.;CHF;30.06.2024;offen
A-103;K004;Testauftrag;99,90;EUR;01.01.2024;storniert
A-104;K001;Ersatzteile;850;EUR;;verloren
"""

# --- sales-sheet: a workbook with a plain sheet and one with title rows ------------------

COMPANIES = [("Code", "Company"), ("CO1", "星辰科技有限公司"), ("CO2", "Blue Harbour Trading Ltd")]
CONTACTS_HEADER = ("No", "Name", "Company", "Mobile", "Email", "Birthday", "Opt-in")
CONTACTS: list[tuple[object, ...] | None] = [
    (1, "张\u3000伟", "CO1", "138 0013 8000", " Zhang.Wei@Example.CN ", 32874, "是"),
    (2, "ＬＩ　Ｎａ", "CO1", "+86 139-1234-5678", "li.na＠example.cn", dt.date(1990, 5, 17), "否"),
    None,  # a blank row: counted and skipped
    (3, "Wang Fang", "CO2", "12345", "wang.fang@example.cn", "1988/2/29", "yes"),
    (4, "Zhao Lei", "CO2", "13700137000", "zhao.lei at example.cn", None, "no"),
    (5, "Chen Jie", "CO9", "13600136000", "chen.jie@example.cn", None, None),
]

# --- erp-sql: a legacy database ------------------------------------------------------------

ERP = {
    "DEPT": (["CODE", "NAME"], [("N", "华北销售部"), ("S", "华南销售部")]),
    "STAFF": (
        ["STAFF_ID", "NAME", "EMAIL", "DEPT", "ACTIVE"],
        [
            ("S01", "Liu Yang", "LIU.YANG@ACME.EXAMPLE", "N", "1"),
            ("S02", "Sun Li", "sun.li@acme.example", "S", "1"),
            ("S03", "He Jun", "he.jun@acme.example", "S", "1"),
            ("S04", "Ma Chao", "ma.chao@acme.example", "N", "0"),
        ],
    ),
    "CUSTOMER": (
        ["CUST_NO", "NAME", "REP", "DEPT", "TIER"],
        [
            ("C1", "北京远航物流有限公司", "S01", "N", "A"),
            ("C2", "广州南方电器有限公司", "S02", "S", "B"),
            ("C3", "深圳海风贸易有限公司", "S03", "S", ""),
            ("C4", "天津北港机械有限公司", "S04", "N", "C"),
        ],
    ),
}


def write_csvs() -> None:
    (HERE / "kunden.csv").write_bytes(KUNDEN.replace("\n", "\r\n").encode("cp1252"))
    (HERE / "auftraege.csv").write_text(AUFTRAEGE, encoding="utf-8")


def write_workbook() -> None:
    wb = xlsxwriter.Workbook(str(HERE / "sales.xlsx"))
    wb.set_properties({"title": "Sales contacts", "author": "crmkit docs", "created": CREATED})
    companies = wb.add_worksheet("Companies")
    for r, row in enumerate(COMPANIES):
        companies.write_row(r, 0, row)
    sheet = wb.add_worksheet("Contacts")
    date = wb.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_string(0, 0, "Sales contacts, all regions")
    sheet.write_string(1, 0, "exported 2024-05-01")
    sheet.write_row(2, 0, CONTACTS_HEADER)
    for r, row in enumerate(CONTACTS, start=3):
        for c, value in enumerate(row or ()):
            if isinstance(value, dt.date):
                sheet.write_datetime(r, c, dt.datetime.combine(value, dt.time()), date)
            elif isinstance(value, int):
                sheet.write_number(r, c, value)
            elif value is not None:
                sheet.write_string(r, c, value)
    wb.close()


def write_database() -> None:
    path = HERE / "legacy.sqlite"
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        for table, (cols, rows) in ERP.items():
            con.execute(f"CREATE TABLE {table} ({', '.join(c + ' TEXT' for c in cols)})")
            con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", rows)
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()


if __name__ == "__main__":
    write_csvs()
    write_workbook()
    write_database()
    print(f"wrote the example data into {HERE}")
