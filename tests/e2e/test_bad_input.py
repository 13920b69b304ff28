"""Bad input gives one clear line, exit code 2, and leaves the target untouched."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.conftest import cli


def assert_one_line_error(res, *fragments: str) -> str:
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("Error: ") and "Traceback" not in res.output
    for f in fragments:
        assert f in err, err
    return err


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def run_into_fresh_target(mapping: Path, tmp_path: Path):
    db = tmp_path / "target.db"
    res = cli("migrate", "run", str(mapping), "--target", f"sqlite:///{db}")
    assert not db.exists(), "a failed run must leave nothing in the target"
    return res


def line_of(path: Path, fragment: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if fragment in line)


def test_malformed_yaml(estate, tmp_path):
    edit(estate, "  erp_dept:     {kind: sql,", "  erp_dept:   - {kind: sql,")
    assert_one_line_error(run_into_fresh_target(estate, tmp_path), f"{estate}:", "invalid YAML")


def test_a_duplicated_key_is_refused_not_silently_replaced(estate, tmp_path):
    """A second `name:` used to win silently, recording runs and locks under another name."""
    edit(estate, "name: acme-legacy\n", "name: acme-legacy\nname: someone-else\n")
    err = assert_one_line_error(run_into_fresh_target(estate, tmp_path), f"{estate}:{line_of(estate, 'someone-else')}:")
    assert "duplicate key 'name'" in err and f"first on line {line_of(estate, 'name: acme-legacy')}" in err


def test_billion_laughs_in_a_mapping_is_refused_at_once(estate, tmp_path):
    laughs = "".join(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]\n" for i in range(1, 9))
    edit(estate, "name: acme-legacy\n", "name: acme-legacy\nx0: &x0 [lol]\n" + laughs)
    assert_one_line_error(run_into_fresh_target(estate, tmp_path), f"{estate}:1:", "aliases expand")


def test_unknown_transform_names_file_line_and_the_known_ones(estate, tmp_path):
    edit(estate, "{column: OPP_NAME, transform: [nfkc, strip]}", "{column: OPP_NAME, transform: [nfkc, stripp]}")
    err = assert_one_line_error(run_into_fresh_target(estate, tmp_path), "unknown transform 'stripp'", "strip")
    assert f"{estate}:{line_of(estate, 'stripp')}:" in err


def test_unknown_key_in_a_field(estate, tmp_path):
    edit(estate, "{column: INDUSTRY, transform: strip}", "{colum: INDUSTRY, transform: strip}")
    err = assert_one_line_error(run_into_fresh_target(estate, tmp_path), "colum", "unknown key")
    assert f":{line_of(estate, 'colum:')}:" in err


def test_field_unknown_to_the_target_schema(estate, tmp_path):
    edit(estate, "      industry:   {column: INDUSTRY", "      industri:   {column: INDUSTRY")
    assert_one_line_error(run_into_fresh_target(estate, tmp_path), "'industri' is not a field of accounts")


def test_column_missing_from_the_source(estate, tmp_path):
    edit(estate, "{column: INDUSTRY,", "{column: INDUSTRIE,")
    assert_one_line_error(run_into_fresh_target(estate, tmp_path), "no column 'INDUSTRIE'", "CUST_NAME")


def test_missing_mapping_file(tmp_path):
    assert_one_line_error(run_into_fresh_target(tmp_path / "nope.yaml", tmp_path), "nope.yaml", "no such file")


def test_missing_source_file(estate, tmp_path):
    (estate.parent.parent.parent / "examples" / "legacy" / "customers.xlsx").unlink()
    assert_one_line_error(run_into_fresh_target(estate, tmp_path), "customers.xlsx", "no such file")


def test_corrupt_spreadsheet(estate, tmp_path):
    book = estate.parent.parent.parent / "examples" / "legacy" / "customers.xlsx"
    book.write_bytes(b"PK\x03\x04 this is not really a zip" + bytes(range(256)))
    assert_one_line_error(run_into_fresh_target(estate, tmp_path), "customers.xlsx", "not a readable Excel workbook")


def test_missing_sheet_lists_the_sheets(estate, tmp_path):
    edit(estate, "sheet: 客户", "sheet: Kunden")
    assert_one_line_error(run_into_fresh_target(estate, tmp_path), "no sheet named 'Kunden'", "客户")


def test_csv_in_an_unexpected_encoding_says_which_to_try(estate, tmp_path):
    edit(estate, "encoding: gb18030", "encoding: utf-8")
    assert_one_line_error(
        run_into_fresh_target(estate, tmp_path),
        "service_contacts.csv",
        "is not utf-8",
        "line 1",
        "try `encoding: gb18030`",
    )


def test_csv_encoding_is_detected_when_not_given(estate, tmp_path):
    edit(estate, ", encoding: gb18030}", "}")
    res = cli("migrate", "plan", str(estate), "--json")
    assert res.exit_code == 0, res.output
    assert '"encoding": "gb18030"' in res.output and '"encoding_detected": true' in res.output


def test_ragged_csv_names_the_line(estate, tmp_path):
    csv = estate.parent.parent.parent / "examples" / "legacy" / "service_contacts.csv"
    data = csv.read_bytes().split(b"\r\n")
    data[4] = data[4] + b",extra,fields"
    csv.write_bytes(b"\r\n".join(data))
    assert_one_line_error(
        run_into_fresh_target(estate, tmp_path), "service_contacts.csv", "line 5", "fields where the header has 6"
    )


def test_unreachable_source_database(estate, tmp_path):
    edit(
        estate,
        '  erp_dept:     {kind: sql, url: "sqlite:///../../examples/legacy/erp.sqlite"',
        '  erp_dept:     {kind: sql, url: "postgresql+psycopg://postgres@127.0.0.1:1/legacy"',
    )
    assert_one_line_error(run_into_fresh_target(estate, tmp_path), "source erp_dept", "cannot connect", "127.0.0.1:1")


def test_unreachable_target(estate):
    res = cli("migrate", "run", str(estate), "--target", "postgresql+psycopg://postgres@127.0.0.1:1/crm")
    assert_one_line_error(res, "cannot connect to target", "127.0.0.1:1")


def test_literal_password_in_a_mapping_is_refused(estate, tmp_path):
    edit(
        estate,
        '"sqlite:///../../examples/legacy/erp.sqlite", table: T_DEPT',
        '"mysql+pymysql://root:hunter2@127.0.0.1/x", table: T_DEPT',
    )
    err = assert_one_line_error(run_into_fresh_target(estate, tmp_path), "password", "${VAR}")
    assert "hunter2" not in err


def test_unset_environment_variable(estate, tmp_path, monkeypatch):
    monkeypatch.delenv("LEGACY_ERP_URL", raising=False)
    edit(estate, '"sqlite:///../../examples/legacy/erp.sqlite", table: T_DEPT', '"${LEGACY_ERP_URL}", table: T_DEPT')
    assert_one_line_error(run_into_fresh_target(estate, tmp_path), "LEGACY_ERP_URL is not set")


@pytest.fixture(scope="module")
def mariadb_user(mysql_url):
    """A MariaDB account with a real password, for the wrong-password and secrets tests."""
    import pymysql
    from sqlalchemy.engine import make_url

    url = make_url(mysql_url)
    user, password = f"crmkit_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "")
    hosts = ("%", "localhost")
    with conn.cursor() as cur:
        for host in hosts:
            cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
            cur.execute(f"GRANT ALL ON `{url.database}`.* TO %s@%s", (user, host))
    yield url, user, password
    with conn.cursor() as cur:
        for host in hosts:
            cur.execute("DROP USER %s@%s", (user, host))
    conn.close()


def test_wrong_password_for_the_source(estate, tmp_path, monkeypatch, mariadb_user):
    url, user, password = mariadb_user
    wrong = password + "x"
    monkeypatch.setenv("ERP_PW", wrong)
    edit(
        estate,
        '"sqlite:///../../examples/legacy/erp.sqlite", table: T_DEPT',
        f'"mysql+pymysql://{user}:${{ERP_PW}}@{url.host}:{url.port or 3306}/{url.database}", table: T_DEPT',
    )
    err = assert_one_line_error(run_into_fresh_target(estate, tmp_path), "source erp_dept", "Access denied")
    assert wrong not in err and "***" in err


def test_secrets_never_reach_output_reports_or_tables(estate, tmp_path, monkeypatch, mariadb_user):
    from tests.conftest import LEGACY, copy_sqlite_tables

    url, user, password = mariadb_user
    copy_sqlite_tables(LEGACY / "erp.sqlite", url.set(username=user, password=password).render_as_string(False))
    monkeypatch.setenv("ERP_PW", password)
    text = estate.read_text(encoding="utf-8").replace(
        '"sqlite:///../../examples/legacy/erp.sqlite"',
        f'"mysql+pymysql://{user}:${{ERP_PW}}@{url.host}:{url.port or 3306}/{url.database}"',
    )
    estate.write_text(text, encoding="utf-8")
    db = tmp_path / "crm.db"
    res = cli("migrate", "run", str(estate), "--target", f"sqlite:///{db}", "--report", str(tmp_path / "rep"), "--json")
    assert res.exit_code == 0, res.output
    assert password not in res.output
    for f in (tmp_path / "rep").iterdir():
        assert password not in f.read_text(encoding="utf-8"), f
    assert password.encode() not in db.read_bytes()
    hist = cli("migrate", "history", "--target", f"sqlite:///{db}", "--json")
    assert password not in hist.output
