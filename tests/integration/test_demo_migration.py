"""The example estate, end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import create_engine

from tests.conftest import LEGACY, MAPPINGS, cli, copy_sqlite_tables

MAPPING = str(MAPPINGS / "acme-legacy.yaml")
ANSWER = json.loads((LEGACY / "answer_key.json").read_text(encoding="utf-8"))
ENTITY_TABLES = ["departments", "users", "accounts", "contacts", "opportunities", "cases"]


def target_url(request: pytest.FixtureRequest, backend: str) -> str:
    return request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")


def rows_by_provenance(url: str, table: str) -> list[tuple[object, ...]]:
    """Every row of a table as typed Python values, ids replaced by the provenance they point at."""
    from sqlalchemy import select

    from crmkit.schema.models import ENTITY_MODELS, IdMap

    engine = create_engine(url)
    with engine.connect() as conn:
        keys = {
            (e, t): f"{s}:{k}"
            for e, s, k, t in conn.execute(select(IdMap.entity, IdMap.source_name, IdMap.legacy_key, IdMap.target_id))
        }
        tbl = ENTITY_MODELS[table].__table__
        rows = conn.execute(select(tbl)).mappings().all()
    engine.dispose()
    out = []
    for row in rows:
        values = []
        for col in tbl.columns:
            v = row[col.name]
            if col.name in ("id", "run_id"):
                continue
            fk = next(iter(col.foreign_keys), None)
            values.append((col.name, keys[(fk.column.table.name, v)] if fk is not None and v is not None else v))
        out.append(tuple(values))
    return sorted(out, key=lambda r: (dict(r)["source_name"], dict(r)["legacy_key"]))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_example_estate_migrates_with_the_answer_keys_rejects(request, backend):
    url = target_url(request, backend)
    res = cli("migrate", "run", MAPPING, "--target", url, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["status"] == "succeeded"
    expected = {
        "departments": ANSWER["T_DEPT"],
        "users": ANSWER["T_SALES_REP"],
        "accounts": ANSWER["T_CUSTOMER"],
        "opportunities": ANSWER["T_OPPORTUNITY"],
        "cases": ANSWER["T_CASE"],
    }
    for entity, key in expected.items():
        counts = doc["entities"][entity]
        assert counts["extracted"] == key["rows"], entity
        assert counts["rejected"] == len(key["rejects"]), entity
        assert counts["inserted"] == key["rows"] - len(key["rejects"]), entity
    sheet, desk = ANSWER["customers.xlsx"], ANSWER["service_contacts.csv"]
    contacts = doc["entities"]["contacts"]
    assert contacts["extracted"] == sheet["rows"] - len(sheet["blank_rows"]) + desk["rows"]
    assert contacts["rejected"] == len(sheet["rejects_by_row"]) + len(desk["rejects"])
    # every feed's outcomes add up to what it extracted
    for feed in doc["feeds"]:
        outcomes = sum(feed[k] for k in ("filtered", "inserted", "updated", "unchanged", "merged", "rejected"))
        assert outcomes == feed["extracted"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_rejects_are_the_answer_keys_rows(request, backend, tmp_path):
    url = target_url(request, backend)
    res = cli("migrate", "run", MAPPING, "--target", url, "--report", str(tmp_path / "rep"))
    assert res.exit_code == 0, res.output
    rejects = pl.read_csv(tmp_path / "rep" / "rejects.csv", infer_schema=False)
    by_source = {
        "erp_customer": set(ANSWER["T_CUSTOMER"]["rejects"]),
        "erp_opp": set(ANSWER["T_OPPORTUNITY"]["rejects"]),
        "erp_case": set(ANSWER["T_CASE"]["rejects"]),
        "erp_rep": set(ANSWER["T_SALES_REP"]["rejects"]),
        "service_desk": set(ANSWER["service_contacts.csv"]["rejects"]),
    }
    for source, keys in by_source.items():
        assert set(rejects.filter(pl.col("source_name") == source)["legacy_key"]) == keys, source
    sheet_rows = set(rejects.filter(pl.col("source_name") == "sales_sheet")["row_number"].cast(int))
    assert sheet_rows == {int(r) for r in ANSWER["customers.xlsx"]["rejects_by_row"]}
    orphan = rejects.filter(pl.col("legacy_key") == "O5001")["reasons"][0]
    assert "C9999" in orphan and "not found" in orphan


def test_sqlite_and_postgresql_hold_the_same_rows(sqlite_url, pg_url):
    for url in (sqlite_url, pg_url):
        assert cli("migrate", "run", MAPPING, "--target", url).exit_code == 0
    for table in ENTITY_TABLES:
        lite, pg = rows_by_provenance(sqlite_url, table), rows_by_provenance(pg_url, table)
        assert len(lite) > 0
        assert lite == pg, f"{table} differs between SQLite and PostgreSQL"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_second_run_inserts_nothing_and_reports_every_row_unchanged(request, backend):
    url = target_url(request, backend)
    first = json.loads(cli("migrate", "run", MAPPING, "--target", url, "--json").output)
    second = json.loads(cli("migrate", "run", MAPPING, "--target", url, "--json").output)
    for entity, counts in second["entities"].items():
        assert counts["inserted"] == 0 and counts["updated"] == 0, entity
        before = first["entities"][entity]
        assert counts["unchanged"] == before["inserted"] + before["unchanged"] > 0, entity
        assert counts["rejected"] == first["entities"][entity]["rejected"], entity


def test_dry_run_reports_what_the_real_run_does_and_writes_nothing(sqlite_url):
    from crmkit.migrate.snapshot import table_hashes

    cli("db", "upgrade", "--target", sqlite_url)
    empty = table_hashes(sqlite_url)
    dry = cli("migrate", "run", MAPPING, "--target", sqlite_url, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert table_hashes(sqlite_url) == empty  # nothing written
    real = cli("migrate", "run", MAPPING, "--target", sqlite_url, "--json")
    d, r = json.loads(dry.output), json.loads(real.output)
    assert d["dry_run"] is True and d["entities"] == r["entities"]
    assert table_hashes(sqlite_url) != empty
    history = json.loads(cli("migrate", "history", "--target", sqlite_url, "--json").output)
    assert [(h["action"], h["outcome"]) for h in history] == [
        ("run", "succeeded"),
        ("run", "started"),
        ("dry_run", "succeeded"),
    ]  # the dry run is audited, nothing more


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_reject_threshold_gives_exit_code_1(request, backend, tmp_path):
    """Over the threshold: exit 1, the report written, the run recorded with its status (on both backends:
    crmkit_runs.status was 20 characters and PostgreSQL refused 'rejects_over_threshold')."""
    url = target_url(request, backend)
    res = cli("migrate", "run", MAPPING, "--target", url, "--max-rejects", "3", "--report", str(tmp_path / "r"))
    assert res.exit_code == 1, res.output
    assert "rejects_over_threshold" in res.output
    assert (
        json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))["status"] == "rejects_over_threshold"
    )
    history = json.loads(cli("migrate", "history", "--target", url, "--json").output)
    assert (history[0]["action"], history[0]["outcome"]) == ("run", "rejects_over_threshold")
    dry = cli("migrate", "run", MAPPING, "--target", url, "--max-rejects", "3", "--dry-run")
    assert dry.exit_code == 1 and "rejects_over_threshold" in dry.output


def test_report_is_self_contained_html_with_a_chart(sqlite_url, tmp_path):
    res = cli("migrate", "run", MAPPING, "--target", sqlite_url, "--report", str(tmp_path / "r"))
    assert res.exit_code == 0
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "<svg" in page and 'class="seg inserted"' in page and 'class="seg rejected"' in page
    assert "http://" not in page.split("<body>")[0] and "<script src" not in page
    summary = json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))
    assert summary["totals"]["rejected"] == 24
    assert (tmp_path / "r" / "rejects.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # a spreadsheet reads UTF-8


def test_legacy_erp_in_mariadb(mysql_url, sqlite_url, tmp_path, monkeypatch):
    """The ERP tables served by MariaDB, read through ${LEGACY_ERP_URL}."""
    copy_sqlite_tables(LEGACY / "erp.sqlite", mysql_url)
    mapping = (
        Path(MAPPING)
        .read_text(encoding="utf-8")
        .replace('"sqlite:///../../examples/legacy/erp.sqlite"', '"${LEGACY_ERP_URL}"')
    )
    path = tmp_path / "erp-from-mariadb.yaml"
    path.write_text(mapping.replace("../../examples/legacy/", str(LEGACY) + "/"), encoding="utf-8")
    monkeypatch.setenv("LEGACY_ERP_URL", mysql_url)
    res = cli("migrate", "run", str(path), "--target", sqlite_url, "--json", "--allow-path", str(LEGACY))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["entities"]["accounts"]["inserted"] == 55
    assert doc["entities"]["opportunities"]["rejected"] == 8
    assert "root" not in json.dumps(doc["sources"]) or mysql_url not in res.output
