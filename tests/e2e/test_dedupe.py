"""`crmkit dedupe` on hand-made duplicate sets: what a user sees in clusters.csv and review.csv."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import ROOT, cli

CONFIGS = ROOT / "configs" / "dedupe"

PEOPLE = """customer_id,first_name,last_name,email,phone,birth_date,city
P01,Wei,Zhang,zhang.wei@example.cn,13800138000,1985-07-12,Beijing
P02,Wie,Zhang,ZHANG.WEI@EXAMPLE.CN,138-0013-8000,1985-07-12,Beijing
P03,Na,Li,li.na@example.cn,+86 139 1234 5678,1990-03-04,Shanghai
P04,Li,Na,li.na@example.cn,13912345678,1990-03-04,Shanghai
P05,Ｌｅｉ,Ｗａｎｇ,ｗａｎｇ．ｌｅｉ＠ｅｘａｍｐｌｅ．ｃｎ,１３７００１３７０００,1979-11-02,Shenzhen
P06,Lei,Wang,Wang.Lei@Example.cn,137 0013 7000,1979-11-02,Shenzhen
P07,Fang,Chen,chen.fang@example.cn,13600136000,1988-02-03,Hangzhou
P08,Fang,Chen,fang.chen@mail.example.com,(+86) 136-0013-6000,1988-03-02,Hangzhou
P09,Wei,Zhang,wei.zhang2@example.cn,13500135000,1962-01-30,Guangzhou
P10,Jing,Liu,liu.jing@example.cn,13400134000,1975-05-05,Chengdu
P11,Jun,Yang,yang.jun@example.cn,13300133000,1991-09-09,Wuhan
P12,Min,Huang,huang.min@example.cn,13200132000,1983-12-24,Nanjing
P13,Hui,Zhou,zhou.hui@example.cn,13100131000,1970-06-15,Xian
P14,Yan,Wu,wu.yan@example.cn,13000130000,1999-01-01,Tianjin
P15,Tao,Xu,xu.tao@example.cn,15900159000,1980-08-08,Suzhou
P16,Ming,Sun,sun.ming@example.cn,15800158000,1968-04-20,Qingdao
P17,Jing,Liu,jliu@corp.example.com,18800188000,1975-05-05,Chengdu
"""

#: the same rules as configs/dedupe/customers.yaml, with readable any-of/all-of logic
RULES = """version: 1
name: people
key: customer_id
fields:
  first_name: {column: first_name, normalise: [nfkc, lower, strip]}
  last_name:  {column: last_name, normalise: [nfkc, lower, strip]}
  email:      {column: email, normalise: email}
  phone:      {column: phone, normalise: {phone: {region: CN}}}
  birth_date: {column: birth_date, normalise: {date: ["%Y-%m-%d"]}}
  city:       {column: city, normalise: [nfkc, lower]}
  name:       {columns: [first_name, last_name], normalise: [nfkc, lower, sorted_tokens]}
blocking:
  - [email]
  - [phone]
  - [last_name, birth_date]
  - [name, birth_date]
compare:
  - {field: first_name, method: jaro_winkler, swap_with: last_name}
  - {field: last_name, method: jaro_winkler, swap_with: first_name}
  - {field: email, method: email}
  - {field: phone, method: phone}
  - {field: birth_date, method: date}
  - {field: city, method: exact}
decision:
  method: rules
  match:
    any_of:
      - all_of: [{email: 1.0}, {last_name: 0.85}]
      - all_of: [{phone: 1.0}, {last_name: 0.85}]
  review:
    all_of: [{first_name: 0.85}, {last_name: 0.85}, {birth_date: 1.0}]
"""


@pytest.fixture
def people(tmp_path: Path) -> tuple[Path, Path]:
    data, rules = tmp_path / "people.csv", tmp_path / "people.yaml"
    data.write_text(PEOPLE, encoding="utf-8")
    rules.write_text(RULES, encoding="utf-8")
    return data, rules


def clusters_of(path: Path) -> dict[str, str]:
    frame = pl.read_csv(path, infer_schema=False)
    assert frame.columns == ["source", "record_id", "cluster_id", "survivor"]
    return dict(zip(frame["record_id"], frame["cluster_id"]))


def same(c: dict[str, str], *ids: str) -> bool:
    return len({c[i] for i in ids}) == 1


@pytest.mark.parametrize(
    "pair",
    [("P01", "P02"), ("P03", "P04"), ("P05", "P06"), ("P07", "P08")],
    ids=["typo-email-case-phone-format", "swapped-first-last", "full-width", "day-month-swap"],
)
def test_hand_made_duplicates_share_a_cluster(people, tmp_path, pair):
    data, rules = people
    res = cli("dedupe", str(data), "--rules", str(rules), "--out", str(tmp_path / "c.csv"))
    assert res.exit_code == 0, res.output
    c = clusters_of(tmp_path / "c.csv")
    assert len(c) == 17
    assert same(c, *pair)


def test_different_people_stay_apart(people, tmp_path):
    data, rules = people
    assert cli("dedupe", str(data), "--rules", str(rules), "--out", str(tmp_path / "c.csv")).exit_code == 0
    c = clusters_of(tmp_path / "c.csv")
    assert not same(c, "P01", "P09")  # same name, different person
    assert not same(c, "P10", "P17")  # doubtful: to review, not merged
    assert len(set(c.values())) == 17 - 4


def test_shipped_customer_rules_find_the_same_duplicates(people, tmp_path):
    """configs/dedupe/customers.yaml (Fellegi-Sunter) on the hand-made set."""
    data, _ = people
    res = cli("dedupe", str(data), "--rules", str(CONFIGS / "customers.yaml"), "--out", str(tmp_path / "c.csv"))
    assert res.exit_code == 0, res.output
    c = clusters_of(tmp_path / "c.csv")
    for pair in [("P01", "P02"), ("P03", "P04"), ("P05", "P06"), ("P07", "P08")]:
        assert same(c, *pair), pair
    assert not same(c, "P01", "P09")


def test_review_round_trip(people, tmp_path):
    data, rules = people
    review = tmp_path / "review.csv"
    res = cli("dedupe", str(data), "--rules", str(rules), "--out", str(tmp_path / "c.csv"), "--review", str(review))
    assert res.exit_code == 0, res.output
    queue = pl.read_csv(review, infer_schema=False)
    assert queue.height == 1
    row = queue.row(0, named=True)
    assert {row["left_key"], row["right_key"]} == {"P10", "P17"}
    assert row["decision"] in (None, "")
    # side by side, with a score per comparator
    assert {"left.email", "right.email", "sim.email", "sim.birth_date", "probability"} <= set(queue.columns)
    assert {row["left.email"], row["right.email"]} == {"liu.jing@example.cn", "jliu@corp.example.com"}
    assert float(row["sim.birth_date"]) == 1.0

    # a person decides: the same customer
    queue.with_columns(pl.lit("match").alias("decision")).write_csv(review)
    res = cli(
        "dedupe",
        str(data),
        "--rules",
        str(rules),
        "--out",
        str(tmp_path / "c2.csv"),
        "--decisions",
        str(review),
        "--review",
        str(tmp_path / "review2.csv"),
    )
    assert res.exit_code == 0, res.output
    assert same(clusters_of(tmp_path / "c2.csv"), "P10", "P17")
    assert pl.read_csv(tmp_path / "review2.csv").height == 0  # decided pairs do not come back

    # and changes their mind: "not a match" wins over any rule, also when named in the rules file
    queue.with_columns(pl.lit("not a match").alias("decision")).write_csv(review)
    rules.write_text(RULES + f"decisions: [{review.name}]\n", encoding="utf-8")
    res = cli("dedupe", str(data), "--rules", str(rules), "--out", str(tmp_path / "c3.csv"))
    assert res.exit_code == 0, res.output
    assert not same(clusters_of(tmp_path / "c3.csv"), "P10", "P17")


def test_a_not_a_match_decision_overrides_a_rule_match(people, tmp_path):
    data, rules = people
    decisions = tmp_path / "decided.csv"
    decisions.write_text("left_source,left_key,right_source,right_key,decision\npeople,P02,people,P01,no\n")
    res = cli(
        "dedupe", str(data), "--rules", str(rules), "--out", str(tmp_path / "c.csv"), "--decisions", str(decisions)
    )
    assert res.exit_code == 0, res.output
    assert not same(clusters_of(tmp_path / "c.csv"), "P01", "P02")


CHINESE = """id,full_name,phone,birth_date
C1,王芳,13900139001,1986-04-01
C2,Wang Fang,139-0013-9001,1986-04-01
C3,Fang Wang,13900139001,1986-04-01
C4,王方,13700000002,1990-10-10
C5,李娜,13600000003,1992-02-02
"""

CHINESE_RULES = """version: 1
name: chinese
key: id
fields:
  name:  {column: full_name, normalise: [nfkc, pinyin]}
  phone: {column: phone, normalise: {phone: {region: CN}}}
  birth_date: {column: birth_date, normalise: {date: ["%Y-%m-%d"]}}
blocking:
  - [name]
  - [phone]
compare:
  - {field: name, method: chinese_name, pinyin: true}
  - {field: phone, method: phone}
  - {field: birth_date, method: date}
decision:
  method: rules
  match:
    all_of: [{name: 0.95}, {phone: 1.0}]
  review:
    any_of: [{name: 0.95}]
"""


def test_a_transliterated_chinese_name(tmp_path):
    (tmp_path / "cn.csv").write_text(CHINESE, encoding="utf-8")
    (tmp_path / "cn.yaml").write_text(CHINESE_RULES, encoding="utf-8")
    res = cli(
        "dedupe",
        str(tmp_path / "cn.csv"),
        "--rules",
        str(tmp_path / "cn.yaml"),
        "--out",
        str(tmp_path / "c.csv"),
        "--review",
        str(tmp_path / "r.csv"),
    )
    assert res.exit_code == 0, res.output
    c = clusters_of(tmp_path / "c.csv")
    assert same(c, "C1", "C2", "C3")  # 王芳, Wang Fang, Fang Wang
    assert not same(c, "C1", "C4")  # 王方 sounds the same but is someone else: review
    review = pl.read_csv(tmp_path / "r.csv", infer_schema=False)
    assert {"C4"} <= set(review["left_key"]) | set(review["right_key"])


def test_across_sources_with_renamed_columns(tmp_path):
    (tmp_path / "erp.csv").write_text("CUST,NAME,TEL\nE1,Zhang Wei,13800138000\nE2,Li Na,13912345678\n")
    (tmp_path / "desk.csv").write_text("id,name,phone\nS1,ZHANG wei,+86 138 0013 8000\nS2,Wu Yan,13000130000\n")
    (tmp_path / "r.yaml").write_text("""version: 1
name: cross
key: id
sources:
  erp: {key: CUST, columns: {name: NAME, phone: TEL}}
fields:
  name:  {column: name, normalise: [lower, collapse_spaces]}
  phone: {column: phone, normalise: {phone: {region: CN}}}
blocking: [[phone]]
compare:
  - {field: name, method: jaro_winkler}
  - {field: phone, method: phone}
decision:
  method: rules
  match: {all_of: [{name: 0.9}, {phone: 1.0}]}
""")
    res = cli(
        "dedupe",
        str(tmp_path / "erp.csv"),
        str(tmp_path / "desk.csv"),
        "--rules",
        str(tmp_path / "r.yaml"),
        "--out",
        str(tmp_path / "c.csv"),
        "--golden",
        str(tmp_path / "g.csv"),
        "--json",
    )
    assert res.exit_code == 0, res.output
    frame = pl.read_csv(tmp_path / "c.csv", infer_schema=False)
    assert frame.height == 4
    cid = dict(zip(frame["source"] + ":" + frame["record_id"], frame["cluster_id"]))
    assert cid["erp:E1"] == cid["desk:S1"]
    assert cid["erp:E1"] in ("erp:E1", "desk:S1")
    assert pl.read_csv(tmp_path / "g.csv").height == 3


def test_json_summary(people, tmp_path):
    import json

    data, rules = people
    res = cli(
        "dedupe", str(data), "--rules", str(CONFIGS / "customers.yaml"), "--out", str(tmp_path / "c.csv"), "--json"
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["stats"]["records"] == 17
    assert doc["stats"]["clusters"] >= 4
    assert set(doc["model"]["compares"]) == {"first_name", "last_name", "email", "phone", "birth_date", "city"}


# --- bad input: one line, exit 2, nothing written ----------------------------------------------


def one_line_error(res, *fragments: str) -> str:
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("Error: "), err
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in err, err
    return err


@pytest.mark.parametrize(
    "edit,fragments",
    [
        (("method: jaro_winkler, swap_with: last_name}", "method: jaro, swap_with: last_name}"), ["compare.0.method"]),
        (
            ("{field: city, method: exact}", "{field: town, method: exact}"),
            ["unknown field 'town'", "fields: first_name"],
        ),
        (("normalise: [nfkc, lower]}", "normalise: [nfkc, lowercase]}"), ["unknown normaliser 'lowercase'"]),
        (("review:\n    all_of", "review:\n    one_of"), ["decision.review"]),
        (("blocking:\n", "blocking:\n  - [nosuch]\n"), ["unknown field 'nosuch'"]),
        (("  - [email]\n", "  - [email\n"), ["invalid YAML"]),
    ],
    ids=["unknown-method", "unknown-field", "unknown-normaliser", "bad-logic", "unknown-blocking-field", "bad-yaml"],
)
def test_bad_rules_name_file_and_line(people, tmp_path, edit, fragments):
    data, rules = people
    rules.write_text(RULES.replace(*edit), encoding="utf-8")
    out = tmp_path / "c.csv"
    err = one_line_error(cli("dedupe", str(data), "--rules", str(rules), "--out", str(out)), *fragments)
    assert re.search(rf"{re.escape(str(rules))}:\d+:", err), err
    assert not out.exists()


def test_input_without_a_column_the_rules_read(people, tmp_path):
    data, rules = people
    data.write_text(PEOPLE.replace("birth_date", "dob"), encoding="utf-8")
    one_line_error(
        cli("dedupe", str(data), "--rules", str(rules), "--out", str(tmp_path / "c.csv")),
        "people: no column 'birth_date'",
        "dob",
    )
    assert not (tmp_path / "c.csv").exists()


def test_duplicate_and_missing_keys(people, tmp_path):
    data, rules = people
    data.write_text(PEOPLE + "P01,Again,Someone,,,2000-01-01,X\n", encoding="utf-8")
    one_line_error(
        cli("dedupe", str(data), "--rules", str(rules), "--out", str(tmp_path / "c.csv")),
        "key 'P01' is used by 2 records",
        "rows 2, 19",
    )
    data.write_text(PEOPLE + ",No,Key,,,2000-01-01,X\n", encoding="utf-8")
    one_line_error(
        cli("dedupe", str(data), "--rules", str(rules), "--out", str(tmp_path / "c.csv")),
        "1 record(s) have no key (customer_id), rows 19",
    )


def test_bad_decision_value_names_the_line(people, tmp_path):
    data, rules = people
    bad = tmp_path / "decided.csv"
    bad.write_text(
        "left_source,left_key,right_source,right_key,decision\npeople,P1,people,P2,match\npeople,P3,people,P4,perhaps\n"
    )
    one_line_error(
        cli("dedupe", str(data), "--rules", str(rules), "--out", str(tmp_path / "c.csv"), "--decisions", str(bad)),
        f"{bad}:3:",
        "'perhaps'",
        "not a match",
    )


def test_missing_input_and_clashing_outputs(people, tmp_path):
    data, rules = people
    one_line_error(
        cli("dedupe", str(tmp_path / "nope.csv"), "--rules", str(rules), "--out", str(tmp_path / "c.csv")),
        "nope.csv",
        "no such file",
    )
    one_line_error(
        cli(
            "dedupe",
            str(data),
            "--rules",
            str(rules),
            "--out",
            str(tmp_path / "c.csv"),
            "--review",
            str(tmp_path / "c.csv"),
        ),
        "must be different files",
    )
    one_line_error(
        cli("dedupe", str(data), "--rules", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "c.csv")),
        "none.yaml: no such file",
    )


def test_every_dedupe_command_has_help_with_an_example():
    for args in (["dedupe"], ["dedupe", "run"], ["dedupe", "merge"], ["dedupe", "unmerge"], ["dedupe", "decide"]):
        res = cli(*args, "--help")
        assert res.exit_code == 0, res.output
        assert "Example:" in res.output, args


def test_reference_page_examples_load(tmp_path):
    """Every rules example in docs/dedupe-reference.md is a valid rules file."""
    from crmkit.dedupe.rules import load_rules

    text = (ROOT / "docs" / "dedupe-reference.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    full = [b for b in blocks if b.startswith("version: 1")]
    assert full, "the reference page shows at least one whole rules file"
    for i, block in enumerate(full):
        path = tmp_path / f"dedupe-example-{i}.yaml"
        path.write_text(block, encoding="utf-8")
        load_rules(path)
    for name in ("customers.yaml", "accounts.yaml", "febrl.yaml"):
        load_rules(CONFIGS / name)
        assert f"configs/dedupe/{name}" in text
