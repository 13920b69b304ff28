"""Golden records: survivorship, merging rows in a real target, lineage resolving relations, unmerge."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import create_engine, text

from crmkit.dedupe.merge import merge_plan
from crmkit.dedupe.rules import rules_from_dict
from crmkit.dedupe.survive import SURVIVORSHIP
from tests.conftest import ROOT, cli

ACCOUNTS_RULES = ROOT / "configs" / "dedupe" / "accounts.yaml"

# --- survivorship, on frames (what merge_plan gives a migration run) ---------------------------

RECORDS = pl.DataFrame(
    {
        "__source": ["erp", "sheet", "desk", "erp", "sheet"],
        "__key": ["E1", "S1", "D1", "E2", "S2"],
        "name": ["ACME Trading", "Acme Trading Co", "ACME Trading", "Other Ltd", "Someone Else"],
        "phone": ["+861062345678", "+861062345678", "+861062345679", "+861099999999", "+861088888888"],
        "email": ["sales@acme.example", "info@acme.example", "info@acme.example", "x@other.example", "y@else.example"],
        "address": ["Beijing", "No. 1 Chang'an Avenue, Beijing", None, "Shanghai", "Wuhan"],
        "city": [None, "Beijing", "Beijing", "Shanghai", "Wuhan"],
        "updated": ["2021-01-01", "2023-06-30", "2022-02-02", "2020-01-01", "2020-01-01"],
    }
)

SURVIVE = {
    "version": 1,
    "name": "acme-accounts",
    "fields": {
        "name": {"column": "name", "normalise": ["lower"]},
        "email": "email",
        "phone": {"column": "phone", "normalise": "digits"},
    },
    "blocking": [["phone"], ["email"], [{"prefix": ["name", 4]}]],
    "compare": [
        {"field": "name", "method": "token_set"},
        {"field": "phone", "method": "phone"},
        {"field": "email", "method": "email"},
    ],
    "decision": {
        "method": "rules",
        "match": {"any_of": [{"all_of": [{"name": 0.8}, {"phone": 0.9}]}, {"all_of": [{"name": 0.8}, {"email": 1.0}]}]},
    },
    "survivorship": {
        "sources": ["erp", "sheet", "desk"],
        "survivor": "source_priority",
        "default": "most_complete",
        "fields": {
            "name": "source_priority",
            "phone": {"rule": "most_recent", "by": "updated"},
            "email": "most_frequent",
            "address": "longest",
            "city": "most_complete",
        },
    },
}


def test_survivorship_rules_and_field_lineage():
    plan = merge_plan(RECORDS, rules_from_dict(SURVIVE), value_fields=["name", "phone", "email", "address", "city"])
    assert plan.golden.height == 1
    g = plan.golden.row(0, named=True)
    assert (g["__source"], g["__key"]) == ("erp", "E1")  # source priority picks the survivor
    assert g["name"] == "ACME Trading"  # source_priority: the ERP's
    assert g["phone"] == "+861062345678"  # most_recent: the sheet's, changed 2023
    assert g["email"] == "info@acme.example"  # most_frequent: two of three
    assert g["address"] == "No. 1 Chang'an Avenue, Beijing"  # longest
    assert g["city"] == "Beijing"  # the ERP has none: the most complete record that has one
    lineage = {r["field"]: (r["source_name"], r["legacy_key"]) for r in plan.lineage.iter_rows(named=True)}
    assert lineage["name"] == ("erp", "E1")
    assert lineage["phone"] == ("sheet", "S1")
    assert lineage["address"] == ("sheet", "S1")
    assert lineage["email"][1] in ("S1", "D1")
    merged = {
        (r["__source"], r["__key"]): (r["survivor_source"], r["survivor_key"])
        for r in plan.merged.iter_rows(named=True)
    }
    assert merged == {("sheet", "S1"): ("erp", "E1"), ("desk", "D1"): ("erp", "E1")}


def test_a_custom_survivorship_rule_registers_by_name():
    @SURVIVORSHIP.register("shortest", summary="the shortest value")
    def shortest(field, spec, ctx):  # type: ignore[no-untyped-def]
        return pl.col(field).cast(pl.String).str.len_chars()

    try:
        spec = {**SURVIVE, "survivorship": {**SURVIVE["survivorship"], "fields": {"address": "shortest"}}}
        plan = merge_plan(RECORDS, rules_from_dict(spec), value_fields=["name", "address"])
        assert plan.golden["address"].to_list() == ["Beijing"]
    finally:
        SURVIVORSHIP.remove("shortest")


def test_a_decision_keeps_records_apart_in_the_plan():
    decided = pl.DataFrame(
        {
            "left_source": ["desk"],
            "left_key": ["D1"],
            "right_source": ["sheet"],
            "right_key": ["S1"],
            "decision": ["not_a_match"],
        }
    )
    plan = merge_plan(RECORDS, rules_from_dict(SURVIVE), decided, value_fields=["name"])
    merged = set(plan.merged["__key"].to_list())
    assert "D1" not in merged or "S1" not in merged  # they may not share a golden record


# --- a real target: migrate two sources, merge, follow relations, unmerge ---------------------

MAPPING = """version: 1
name: dedupe-estate
sources:
  erp_customer: {kind: csv, path: erp_customers.csv}
  sales_sheet:  {kind: csv, path: sheet_customers.csv}
  sheet_opps:   {kind: csv, path: sheet_opps.csv}
entities:
  accounts:
    - from: erp_customer
      key: CUST_NO
      fields:
        name:       {column: NAME, transform: [nfkc, strip]}
        phone:      {column: TEL, transform: {phone: {region: CN}}}
        email:      {column: EMAIL, transform: email}
        city:       {column: CITY, transform: strip}
        created_at: {column: CREATED, transform: {date: ["%Y-%m-%d"]}}
    - from: sales_sheet
      key: 客户编号
      fields:
        name:       {column: 客户名称, transform: [nfkc, strip]}
        phone:      {column: 电话, transform: {phone: {region: CN}}}
        email:      {column: 邮箱, transform: email}
        address:    {column: 地址, transform: strip}
        city:       {column: 城市, transform: strip}
        created_at: {column: 日期, transform: {date: ["%Y-%m-%d"]}}
  opportunities:
    from: sheet_opps
    key: OPP
    fields:
      account: {ref: accounts, column: 客户编号, source: sales_sheet}
      name:    {column: NAME, transform: strip}
      stage:   {column: STAGE, transform: strip}
"""

ERP = """CUST_NO,NAME,TEL,EMAIL,CITY,CREATED
C1,上海ＡＢＣ贸易有限公司,021-5012 3456,sales@abc.example,上海,2019-03-01
C2,北京星辰科技有限公司,010-62345678,info@xingchen.example,北京,2020-05-05
C3,深圳海风电子有限公司,0755-5918 8511,hr@haifeng.example,深圳,2018-01-01
"""
SHEET = """客户编号,客户名称,电话,邮箱,地址,城市,日期
K1,上海ABC贸易有限公司,+86 21 5012 3456,SALES@ABC.EXAMPLE,上海市浦东新区世纪大道100号,上海,2023-08-08
K2,北京星辰科技,(010) 6234 5678,,,北京,2022-01-01
K3,广州白云物流有限公司,020-12345678,ops@baiyun.example,广州市白云区,广州,2021-01-01
"""
OPPS = """OPP,客户编号,NAME,STAGE
O1,K1,年度采购,prospecting
O2,K1,扩容,proposal
O3,K2,试用,qualification
O4,K3,仓储,prospecting
"""


def target_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = target_url(request, request.param, tmp_path)
    if request.param == "postgresql":
        engine = create_engine(url)
        with engine.begin() as conn:  # the module's database is shared by the parametrised tests
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    for name, body in (("erp_customers.csv", ERP), ("sheet_customers.csv", SHEET), ("sheet_opps.csv", OPPS)):
        (tmp_path / name).write_text(body, encoding="utf-8")
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    res = cli("migrate", "run", str(tmp_path / "m.yaml"), "--target", url, "--json")
    assert res.exit_code == 0, res.output
    return url


def query(url: str, sql: str, **params: object) -> list[tuple]:  # type: ignore[type-arg]
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql), params)]
    engine.dispose()
    return rows


def account_of(url: str, source: str, key: str) -> int:
    return query(
        url,
        "SELECT target_id FROM crmkit_id_map WHERE entity = 'accounts' AND source_name = :s AND legacy_key = :k",
        s=source,
        k=key,
    )[0][0]


def opp_accounts(url: str) -> dict[str, int]:
    return dict(query(url, "SELECT legacy_key, account_id FROM opportunities"))


def test_merge_in_target_resolves_relations_and_unmerge_restores(migrated):
    url = migrated
    before = {
        k: account_of(url, s, k)
        for s, k in [("erp_customer", "C1"), ("erp_customer", "C2"), ("sales_sheet", "K1"), ("sales_sheet", "K2")]
    }
    opps_before = opp_accounts(url)
    res = cli("dedupe", "merge", "--target", url, "--entity", "accounts", "--rules", str(ACCOUNTS_RULES), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["merged"] == 2 and doc["clusters"] == 2
    assert doc["relinked"] == {"opportunities.account_id": 3}

    # every legacy key of a merged row now points at its golden row (the ERP's, by source priority)
    assert account_of(url, "sales_sheet", "K1") == before["C1"]
    assert account_of(url, "sales_sheet", "K2") == before["C2"]
    assert query(url, "SELECT count(*) FROM accounts")[0][0] == 4
    # relations from the other source follow: the sheet's opportunities hang on the ERP's account
    assert opp_accounts(url) == {"O1": before["C1"], "O2": before["C1"], "O3": before["C2"], "O4": opps_before["O4"]}
    # golden values by survivorship, with their lineage
    name, phone, address = query(url, "SELECT name, phone, address FROM accounts WHERE id = :i", i=before["C1"])[0]
    assert name == "上海ABC贸易有限公司" and phone == "+862150123456"
    assert address == "上海市浦东新区世纪大道100号"  # the ERP had none: taken from the sheet
    lineage = dict(
        query(
            url,
            "SELECT field, source_name || ':' || legacy_key FROM crmkit_field_lineage "
            "WHERE entity = 'accounts' AND target_id = :i",
            i=before["C1"],
        )
    )
    assert lineage["name"] == "erp_customer:C1" and lineage["address"] == "sales_sheet:K1"
    assert lineage["phone"] == "sales_sheet:K1"  # most recent (2023)

    # undo the first merge: the sheet's account comes back as itself, with its opportunities
    res = cli("dedupe", "unmerge", "--target", url, "--entity", "accounts", "--golden", str(before["C1"]), "--json")
    assert res.exit_code == 0, res.output
    assert account_of(url, "sales_sheet", "K1") == before["K1"]
    assert opp_accounts(url)["O1"] == before["K1"] and opp_accounts(url)["O2"] == before["K1"]
    assert query(url, "SELECT name, address FROM accounts WHERE id = :i", i=before["C1"])[0] == (
        "上海ABC贸易有限公司",
        None,
    )  # the survivor's own values again
    assert query(url, "SELECT count(*) FROM accounts")[0][0] == 5
    # and a later merge honours the undo: C1/K1 stay apart, C2/K2 stay merged
    res = cli("dedupe", "merge", "--target", url, "--entity", "accounts", "--rules", str(ACCOUNTS_RULES), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["merged"] == 0
    assert account_of(url, "sales_sheet", "K1") == before["K1"]
    assert account_of(url, "sales_sheet", "K2") == before["C2"]


def test_unmerge_one_record_and_bad_requests(migrated):
    url = migrated
    assert (
        cli("dedupe", "merge", "--target", url, "--entity", "accounts", "--rules", str(ACCOUNTS_RULES)).exit_code == 0
    )
    golden = account_of(url, "erp_customer", "C2")
    res = cli("dedupe", "unmerge", "--target", url, "--entity", "accounts", "--key", "sales_sheet:K2")
    assert res.exit_code == 0, res.output
    assert account_of(url, "sales_sheet", "K2") != golden
    assert opp_accounts(url)["O3"] == account_of(url, "sales_sheet", "K2")
    for args, fragment in (
        (["--key", "sales_sheet:K2"], "is not merged"),
        (["--golden", "999"], "not a golden row"),
        (["--key", "K2"], "write SOURCE:KEY"),
    ):
        res = cli("dedupe", "unmerge", "--target", url, "--entity", "accounts", *args)
        assert res.exit_code == 2, res.output
        assert fragment in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = cli("dedupe", "merge", "--target", url, "--entity", "acounts", "--rules", str(ACCOUNTS_RULES))
    assert res.exit_code == 2 and "unknown entity 'acounts'" in res.stderr


def test_dry_run_changes_nothing_and_decide_stores_decisions(migrated, tmp_path):
    url = migrated
    res = cli(
        "dedupe",
        "merge",
        "--target",
        url,
        "--entity",
        "accounts",
        "--rules",
        str(ACCOUNTS_RULES),
        "--dry-run",
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["merged"] == 2
    assert query(url, "SELECT count(*) FROM accounts")[0][0] == 6
    decided = tmp_path / "decided.csv"
    decided.write_text(
        "left_source,left_key,right_source,right_key,decision\nsales_sheet,K2,erp_customer,C2,not a match\n"
    )
    res = cli("dedupe", "decide", str(decided), "--target", url, "--entity", "accounts")
    assert res.exit_code == 0, res.output
    res = cli("dedupe", "merge", "--target", url, "--entity", "accounts", "--rules", str(ACCOUNTS_RULES), "--json")
    assert json.loads(res.stdout)["merged"] == 1
    assert account_of(url, "sales_sheet", "K2") != account_of(url, "erp_customer", "C2")


def test_what_a_migration_run_needs_feed_by_feed():
    """merge before load: a feed's rows lose the merged ones and survivors carry the golden values."""
    from crmkit.dedupe.merge import feed_rows, merged_keys

    plan = merge_plan(RECORDS, rules_from_dict(SURVIVE), value_fields=["name", "phone", "email", "address", "city"])
    erp = RECORDS.filter(pl.col("__source") == "erp").drop("__source")
    sheet = RECORDS.filter(pl.col("__source") == "sheet").drop("__source")
    kept, merged = feed_rows(plan, "erp", erp)
    assert merged == 0 and kept.height == 2
    survivor = kept.filter(pl.col("__key") == "E1").row(0, named=True)
    assert survivor["address"] == "No. 1 Chang'an Avenue, Beijing" and survivor["phone"] == "+861062345678"
    kept, merged = feed_rows(plan, "sheet", sheet)
    assert merged == 1 and kept["__key"].to_list() == ["S2"]
    ids = merged_keys(plan, pl.DataFrame({"__source": ["erp"], "__key": ["E1"], "target_id": [7]}))
    assert sorted(ids.rows()) == [("desk", "D1", 7), ("sheet", "S1", 7)]


def test_merges_recorded_by_a_run_can_be_undone(tmp_path):
    """record_merges (what a migration that merged before loading calls), then unmerge creates the rows."""
    from crmkit.db.loader import open_loader
    from crmkit.dedupe.merge import merged_keys
    from crmkit.dedupe.store import record_merges
    from crmkit.schema.versions import ensure_schema

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    ensure_schema(url)
    fields = ["name", "phone", "email", "address", "city"]
    plan = merge_plan(RECORDS, rules_from_dict(SURVIVE), value_fields=fields)
    loader = open_loader(url)
    loader.begin()
    g = plan.golden.with_columns(pl.lit(1, dtype=pl.Int64).alias("id"))
    loader.append(
        "accounts",
        g.select(
            "id",
            pl.col("__source").alias("source_name"),
            pl.col("__key").alias("legacy_key"),
            *fields,
            pl.lit(True).alias("active"),
        ),
    )
    ids = pl.DataFrame({"__source": ["erp"], "__key": ["E1"], "target_id": [1]})
    id_rows = pl.concat(
        [
            ids.select(pl.col("__source").alias("source_name"), pl.col("__key").alias("legacy_key"), "target_id"),
            merged_keys(plan, ids),
        ]
    )
    loader.append(
        "crmkit_id_map",
        id_rows.select(
            pl.lit("accounts").alias("entity"), "source_name", "legacy_key", "target_id", pl.lit(1).alias("run_id")
        ),
    )
    record_merges(loader, "accounts", plan, ids, run_id=1, rules_name="acme-accounts", who="test")
    record_merges(loader, "accounts", plan, ids, run_id=2, rules_name="acme-accounts", who="test")  # a rerun
    loader.commit()
    loader.close()
    assert query(url, "SELECT count(*) FROM crmkit_merges")[0][0] == 3
    assert query(url, "SELECT source_name FROM crmkit_field_lineage WHERE field = 'phone'")[0][0] == "sheet"

    res = cli("dedupe", "unmerge", "--target", url, "--entity", "accounts", "--key", "desk:D1", "--json")
    assert res.exit_code == 0, res.output
    restored = json.loads(res.stdout)["restored"]
    assert [(r["source"], r["key"]) for r in restored] == [("desk", "D1")]
    new_id = restored[0]["id"]
    assert new_id != 1
    assert query(url, "SELECT name, email FROM accounts WHERE id = :i", i=new_id)[0] == (
        "ACME Trading",
        "info@acme.example",
    )
    assert query(url, "SELECT target_id FROM crmkit_id_map WHERE legacy_key = 'D1'")[0][0] == new_id
    assert query(url, "SELECT target_id FROM crmkit_id_map WHERE legacy_key = 'S1'")[0][0] == 1
