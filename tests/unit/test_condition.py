"""Filter and scope conditions: the allow-listed SQL subset (migrate/condition.py).

A condition used to run on polars' SQL engine, whose table functions read any file
(issue 22 item 2).  Allowed forms give the rows SQL would; everything else is refused.
"""

from __future__ import annotations

import polars as pl
import pytest

from crmkit.migrate.condition import ConditionError, parse_condition

FRAME = pl.DataFrame(
    {
        "ID": ["1", "2", "3", "4", "5"],
        "STATUS": ["active", "deleted", None, "Active", "o'k"],
        "AMOUNT": ["10", "x", "0", "2.5", None],
        "状态": ["有效", "无效", "有效", None, "有效"],
        "客户 名": ["a", "b", "c", "d", "e"],
    }
)


def ids(condition: str) -> list[str]:
    return FRAME.filter(parse_condition(condition).expr)["ID"].to_list()


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("STATUS = 'active'", ["1"]),
        ("STATUS == 'active'", ["1"]),
        ("STATUS <> 'deleted'", ["1", "4", "5"]),  # unknown (NULL) is left out, as in SQL
        ("STATUS IS NULL OR STATUS != 'deleted'", ["1", "3", "4", "5"]),
        ("STATUS IS NOT NULL AND NOT STATUS = 'deleted'", ["1", "4", "5"]),
        ("lower(STATUS) = 'active'", ["1", "4"]),
        ("UPPER(trim(STATUS)) IN ('ACTIVE', 'DELETED')", ["1", "2", "4"]),
        ("ID NOT IN ('1', '2')", ["3", "4", "5"]),
        ("STATUS LIKE 'act%'", ["1"]),
        ("STATUS ILIKE 'act%'", ["1", "4"]),
        ("STATUS NOT LIKE '%e%'", ["5"]),
        ("STATUS LIKE 'o''_'", ["5"]),
        ("TRY_CAST(AMOUNT AS DOUBLE) > 0", ["1", "4"]),
        ("TRY_CAST(AMOUNT AS DOUBLE) BETWEEN 1 AND 10", ["1", "4"]),
        ("CAST(ID AS INTEGER) * 2 + 1 >= 7", ["3", "4", "5"]),
        ("CAST(ID AS VARCHAR(10)) = '2'", ["2"]),
        ("-CAST(ID AS INT) < -4", ["5"]),
        ("CAST(ID AS INT) % 2 = 0", ["2", "4"]),
        ("length(coalesce(STATUS, '')) = 0", ["3"]),
        ("substr(STATUS, 1, 3) = 'act'", ["1"]),
        ("STATUS || '-' || ID = 'active-1'", ["1"]),
        ("状态 = '有效'", ["1", "3", "5"]),
        ("\"状态\" <> '有效'", ["2"]),
        ("\"客户 名\" IN ('a', 'e')", ["1", "5"]),
        ("(ID = '1' OR ID = '2') AND STATUS = 'deleted'", ["2"]),
        ("CAST(ID AS INT) IN (1, 3, -4)", ["1", "3"]),
        ("TRUE", ["1", "2", "3", "4", "5"]),
    ],
)
def test_allowed_conditions_select_the_rows_sql_would(condition, expected):
    assert ids(condition) == expected


def test_columns_read_are_listed_for_the_check_against_the_source():
    cond = parse_condition("lower(STATUS) = 'x' OR \"状态\" IS NULL OR STATUS = ID")
    assert cond.columns == ["STATUS", "状态", "ID"]
    assert cond.missing(["STATUS", "ID"]) == ["状态"]


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ("ID IN (SELECT column_1 FROM read_csv('/etc/passwd'))", "subquery is not allowed"),
        ("ID IN (select * from read_parquet('x.parquet'))", "subquery is not allowed"),
        ("ID IN (WITH t AS (SELECT 1) SELECT * FROM t)", "subquery is not allowed"),
        ("EXISTS (SELECT 1)", "function EXISTS() is not allowed"),
        ("read_csv('/etc/passwd') IS NULL", "function read_csv() is not allowed"),
        ("read_parquet('/etc/hosts') = 1", "function read_parquet() is not allowed"),
        ("ID = (SELECT max(ID) FROM self)", "subquery is not allowed"),
        ("ID = '1'; DROP TABLE x", "';' is not allowed"),
        ("ID = '1' -- AND read_csv('/etc/passwd')", "comments"),
        ("ID = '1' /* read_csv('/etc/passwd') */", "comments"),
        ("ID IN (ID, STATUS)", "IN takes a list of values"),
        ("STATUS LIKE ID", "LIKE takes a quoted pattern"),
        ("CAST(ID AS blob) = 1", "CAST to blob"),
        ("ID = '1' ID = '2'", "unexpected 'ID' after a complete condition"),
        ("ID = 'open", "unclosed quote"),
        ("ID = $1", "'$' (character 6) is not allowed"),
        ("ID = '1' UNION SELECT 1", "unexpected 'UNION'"),
        ("SELECT 1", "SELECT is not allowed here"),
        ("", "empty"),
        ("concat_ws(',', ID)", "function concat_ws() is not allowed"),
        ("upper(ID, STATUS) = 'x'", "upper() takes 1 argument"),
        ("substr(ID, STATUS) = 'x'", "whole numbers"),
        ("ID NOT = '1'", "expected IN, LIKE or BETWEEN after NOT"),
        ("ID BETWEEN 1", "expected AND in BETWEEN"),
        ("ID IS '1'", "expected NULL after IS"),
    ],
)
def test_forms_outside_the_allow_list_are_refused_in_one_line(condition, says):
    with pytest.raises(ConditionError) as err:
        parse_condition(condition)
    assert says in str(err.value)
    assert "\n" not in str(err.value)
    assert "root:" not in str(err.value)


def test_a_refused_condition_never_reads_the_file_it_names(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("SENTINEL-7731\n", encoding="utf-8")
    with pytest.raises(ConditionError) as err:
        parse_condition(f"ID IN (SELECT column_1 FROM read_csv('{secret}'))")
    assert "SENTINEL-7731" not in str(err.value)
