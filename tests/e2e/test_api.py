"""The reference CRM API, live on loopback (``crmkit serve``) over the migrated example estate.

Every test runs against SQLite and PostgreSQL.  The server is the real command in a process
of its own; tokens are minted with the real ``crmkit serve token``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import MAPPINGS, cli

MAPPING = str(MAPPINGS / "acme-legacy.yaml")
SALES_D1, SALES_D2 = "wang.fang@acme.example", "chen.jing@acme.example"
MANAGER_D1, SERVICE, ADMIN = "li.wei@acme.example", "zhao.min@acme.example", "huang.qiang@acme.example"


@dataclass
class Api:
    url: str
    target: str
    tokens: dict[str, str]

    def client(self, email: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[email]}"} if email else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def sql(self, query: str, **params: object) -> list[tuple]:
        engine = create_engine(self.target)
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(text(query), params)]
        engine.dispose()
        return rows


def mint(target: str, email: str, *args: str) -> str:
    res = cli("serve", "token", "--target", target, "--user", email, *args)
    assert res.exit_code == 0, res.output
    return res.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    if request.param == "sqlite":
        target = f"sqlite:///{tmp_path_factory.mktemp('api') / 'crm.db'}"
    else:
        target = request.getfixturevalue("pg_url")
    assert cli("migrate", "run", MAPPING, "--target", target).exit_code == 0
    tokens = {e: mint(target, e) for e in (SALES_D1, SALES_D2, MANAGER_D1, SERVICE, ADMIN)}
    port = free_port()
    # schemathesis (ignored_auth) fails authentication on purpose: no limit on this server
    env = {**os.environ, "CRMKIT_TARGET": target, "CRMKIT_API_TOKEN_CACHE": "0", "CRMKIT_API_AUTH_FAILURES": "1000000"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from crmkit.cli import main; main()", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc)
        yield Api(url, target, tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stdout.close()  # type: ignore[union-attr]


def wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not come up")


def dept_account(api: Api, dept_code: str) -> int:
    return api.sql(
        "SELECT a.id FROM accounts a JOIN departments d ON d.id = a.department_id "
        "WHERE d.code = :c ORDER BY a.id LIMIT 1",
        c=dept_code,
    )[0][0]


# --- authentication --------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer crm_not-a-real-token", "Basic dXNlcjpwYXNz"],
    ids=["no-token", "unknown-token", "basic-auth"],
)
def test_without_a_live_token_every_resource_is_401(api, header):
    headers = {"Authorization": header} if header else {}
    for path in ("/accounts", "/contacts/1", "/reports/pipeline", "/audit", "/me"):
        res = httpx.get(api.url + path, headers=headers)
        assert res.status_code == 401, path
        assert res.headers["www-authenticate"] == "Bearer"


def test_a_revoked_token_stops_working(api):
    token = mint(api.target, SALES_D1)
    assert httpx.get(f"{api.url}/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    res = cli("serve", "revoke", "--target", api.target, "--user", SALES_D1)
    assert res.exit_code == 0 and "revoked" in res.stdout
    assert httpx.get(f"{api.url}/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    api.tokens[SALES_D1] = mint(api.target, SALES_D1)  # later tests use a live one


def test_only_the_hash_of_a_token_is_stored(api):
    token = mint(api.target, MANAGER_D1)
    stored = [r[0] for r in api.sql("SELECT token_hash FROM crmkit_api_tokens")]
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    assert not any(token in json.dumps(r, default=str) for r in api.sql("SELECT * FROM crmkit_api_tokens"))


# --- department scoping ----------------------------------------------------------------


def test_a_sales_rep_gets_404_for_another_departments_account(api):
    other = dept_account(api, "SALES_N")
    with api.client(SALES_D2) as c:
        assert c.get(f"/accounts/{other}").status_code == 404
        assert c.patch(f"/accounts/{other}", json={"tier": "A"}).status_code == 404
        contact = api.sql("SELECT id FROM contacts WHERE account_id = :a", a=other)
        if contact:
            assert c.get(f"/contacts/{contact[0][0]}").status_code == 404
    with api.client(SALES_D1) as c:
        assert c.get(f"/accounts/{other}").json()["id"] == other


def test_lists_hold_only_the_callers_department(api):
    d2 = api.sql("SELECT id FROM departments WHERE code = 'SALES_S'")[0][0]
    expected = {r[0] for r in api.sql("SELECT id FROM accounts WHERE department_id = :d", d=d2)}
    with api.client(SALES_D2) as c:
        seen = {a["id"] for a in c.get("/accounts", params={"limit": 200}).json()["items"]}
        opps = c.get("/opportunities", params={"limit": 200}).json()["items"]
    assert seen == expected
    assert {o["account_id"] for o in opps} <= expected


def test_roles_without_a_right_get_403(api):
    with api.client(SERVICE) as c:
        assert c.get("/opportunities").status_code == 403
        assert c.get("/reports/pipeline").status_code == 403
        assert c.get("/accounts").status_code == 200  # service agents serve every customer
    with api.client(SALES_D1) as c:
        case = c.get("/cases", params={"limit": 1}).json()["items"]
        if case:
            assert c.patch(f"/cases/{case[0]['id']}", json={"status": "closed"}).status_code == 403
        assert c.get("/audit").status_code == 403


def test_a_sales_rep_cannot_move_an_account_to_another_department(api):
    mine = dept_account(api, "SALES_N")
    other_dept = api.sql("SELECT id FROM departments WHERE code = 'SALES_S'")[0][0]
    with api.client(SALES_D1) as c:
        res = c.patch(f"/accounts/{mine}", json={"department_id": other_dept})
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == ["body", "department_id"]
    assert api.sql("SELECT department_id FROM accounts WHERE id = :a", a=mine)[0][0] != other_dept


# --- search and paging -----------------------------------------------------------------


@pytest.mark.parametrize(
    "q",
    ["' OR '1'='1", "'; DROP TABLE accounts; --", "%", "_", "\\", "宏达' --"],
    ids=["or-1-1", "drop-table", "percent", "underscore", "backslash", "cjk-quote"],
)
def test_search_strings_shaped_like_sql_are_just_text(api, q):
    with api.client(ADMIN) as c:
        res = c.get("/accounts", params={"q": q})
        assert res.status_code == 200
        names = [a["name"] for a in res.json()["items"]]
    assert all(q.lower() in n.lower() for n in names)  # a literal substring match, nothing else
    assert api.sql("SELECT count(*) FROM accounts")[0][0] > 0


def test_search_by_name_email_and_phone_in_any_format(api):
    acct_id, name, phone = api.sql("SELECT id, name, phone FROM accounts WHERE phone LIKE '+86%' ORDER BY id LIMIT 1")[
        0
    ]
    local = phone[3:]  # the number without +86
    spaced = f"0{local[:2]} {local[2:6]}-{local[6:]}"  # as a person types it, with the trunk 0
    cid, email = api.sql("SELECT id, email FROM contacts WHERE email IS NOT NULL ORDER BY id LIMIT 1")[0]
    with api.client(ADMIN) as c:
        for q in (name[:4], phone, local, spaced):
            assert acct_id in [a["id"] for a in c.get("/accounts", params={"q": q}).json()["items"]], q
        assert cid in [x["id"] for x in c.get("/contacts", params={"q": email.upper()}).json()["items"]]


def test_pages_are_disjoint_and_complete(api):
    total = api.sql("SELECT count(*) FROM contacts")[0][0]
    seen: list[int] = []
    offset: int | None = 0
    with api.client(ADMIN) as c:
        while offset is not None:
            page = c.get("/contacts", params={"limit": 7, "offset": offset}).json()
            assert len(page["items"]) <= 7
            seen += [x["id"] for x in page["items"]]
            offset = page["next_offset"]
    assert len(seen) == len(set(seen)) == total


# --- writes and the audit log ----------------------------------------------------------


def test_every_write_is_audited_with_before_and_after(api):
    acct = dept_account(api, "SALES_N")
    with api.client(SALES_D1) as c:
        before = c.get(f"/accounts/{acct}").json()
        new_tier = "C" if before["tier"] != "C" else "A"
        assert c.patch(f"/accounts/{acct}", json={"tier": new_tier}).json()["tier"] == new_tier
        created = c.post("/activities", json={"type": "call", "subject": "audit me", "account_id": acct})
    assert created.status_code == 201
    assert created.json()["owner_id"] == api.sql("SELECT id FROM users WHERE email = :e", e=SALES_D1)[0][0]
    with api.client(ADMIN) as c:
        upd = c.get("/audit", params={"entity": "accounts", "entity_id": acct}).json()["items"][0]
        new = c.get("/audit", params={"entity": "activities", "entity_id": created.json()["id"]}).json()["items"]
    assert upd["action"] == "update" and upd["user_email"] == SALES_D1
    assert upd["before"]["tier"] == before["tier"] and upd["after"]["tier"] == new_tier
    assert new[0]["action"] == "create" and new[0]["before"] is None and new[0]["after"]["subject"] == "audit me"


def test_a_patch_that_changes_nothing_writes_no_audit_row(api):
    acct = dept_account(api, "SALES_N")
    count = api.sql("SELECT count(*) FROM crmkit_api_audit")[0][0]
    with api.client(SALES_D1) as c:
        tier = c.get(f"/accounts/{acct}").json()["tier"]
        assert c.patch(f"/accounts/{acct}", json={"tier": tier}).status_code == 200
    assert api.sql("SELECT count(*) FROM crmkit_api_audit")[0][0] == count


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x" * 301},
        {"name": "nul\x00byte"},
        {"name": None},
        {"country": "CHN"},
        {"owner_id": 2**31},
        {"tier": 5},
        {"unknown": 1},
    ],
    ids=["too-long", "nul", "null-required", "country-3", "id-overflow", "wrong-type", "unknown-field"],
)
def test_invalid_writes_are_422_and_change_nothing(api, body):
    acct = dept_account(api, "SALES_N")
    before = api.sql("SELECT * FROM accounts WHERE id = :a", a=acct)
    with api.client(ADMIN) as c:
        assert c.patch(f"/accounts/{acct}", json=body).status_code == 422
    assert api.sql("SELECT * FROM accounts WHERE id = :a", a=acct) == before


def test_a_reference_outside_the_callers_scope_is_422(api):
    other = dept_account(api, "SALES_S")
    with api.client(SALES_D1) as c:
        res = c.post("/contacts", json={"full_name": "Nobody", "account_id": other})
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == ["body", "account_id"]
    assert api.sql("SELECT count(*) FROM contacts WHERE full_name = 'Nobody'")[0][0] == 0


# --- report, health, metrics -----------------------------------------------------------


def test_pipeline_report_sums_by_stage_and_owner_for_the_managers_department(api):
    d1 = api.sql("SELECT id FROM departments WHERE code = 'SALES_N'")[0][0]
    rows = api.sql(
        "SELECT o.stage, count(*), sum(o.amount) FROM opportunities o "
        "JOIN accounts a ON a.id = o.account_id "
        "WHERE coalesce(o.department_id, a.department_id) = :d GROUP BY o.stage",
        d=d1,
    )
    with api.client(MANAGER_D1) as c:
        report = c.get("/reports/pipeline").json()
    by_stage = {s["stage"]: s for s in report["by_stage"]}
    assert report["department_id"] == d1
    assert {s: (n, round(float(a or 0), 2)) for s, n, a in rows} == {
        s: (v["count"], float(v["amount"])) for s, v in by_stage.items()
    }
    for stage, total in by_stage.items():
        owners = [r for r in report["by_owner"] if r["stage"] == stage]
        assert sum(r["count"] for r in owners) == total["count"]


def test_health_and_prometheus_metrics(api):
    assert httpx.get(f"{api.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{api.url}/health/ready").json() == {"status": "ok"}
    with api.client(ADMIN) as c:
        c.get("/accounts/999999")
    assert httpx.get(f"{api.url}/metrics").status_code == 401  # behind a token of scope metrics
    scraper = mint(api.target, ADMIN, "--scope", "metrics")
    res = httpx.get(f"{api.url}/metrics", headers={"Authorization": f"Bearer {scraper}"})
    assert res.headers["content-type"].startswith("text/plain")
    assert 'crmkit_api_requests_total{method="GET",route="/accounts/{record_id}",status="404"}' in res.text
    assert "crmkit_api_request_duration_seconds_bucket" in res.text


def test_openapi_spec_lists_every_resource(api):
    spec = httpx.get(f"{api.url}/openapi.json").json()
    for path in (
        "/accounts",
        "/contacts/{record_id}",
        "/opportunities",
        "/cases/{record_id}",
        "/activities",
        "/reports/pipeline",
        "/audit",
        "/health",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_search_indexes_on_postgresql_and_nothing_to_do_on_sqlite(api):
    res = cli("serve", "index", "--target", api.target)
    assert res.exit_code == 0, res.output
    if api.target.startswith("sqlite"):
        assert "nothing to do" in res.stdout
        return
    names = {r[0] for r in api.sql("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%\\_trgm'")}
    assert {"ix_accounts_name_trgm", "ix_contacts_mobile_trgm", "ix_cases_subject_trgm"} <= names
    assert "all were already so" in cli("serve", "index", "--target", api.target).stdout  # idempotent
    test_search_by_name_email_and_phone_in_any_format(api)  # same answers with the indexes
    assert cli("serve", "index", "--target", api.target, "--drop").exit_code == 0
    assert not api.sql("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%\\_trgm'")


# --- the command line ------------------------------------------------------------------


def assert_one_line_error(res, *fragments: str) -> None:
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("Error: ") and "Traceback" not in res.output, err
    for f in fragments:
        assert f in err, err


def test_serve_refuses_a_host_beyond_loopback(sqlite_url):
    assert_one_line_error(cli("serve", "--target", sqlite_url, "--host", "0.0.0.0"), "--allow-remote")


def test_serve_refuses_a_missing_sqlite_file(tmp_path):
    db = tmp_path / "nope.db"
    assert_one_line_error(cli("serve", "--target", f"sqlite:///{db}"), "no such SQLite file")
    assert not db.exists()


def test_serve_refuses_a_port_in_use(api):
    port = int(api.url.rsplit(":", 1)[1])
    assert_one_line_error(cli("serve", "--target", api.target, "--port", str(port)), f"{port}", "--port")


def test_serve_refuses_an_unreachable_database():
    assert_one_line_error(
        cli("serve", "--target", "postgresql+psycopg://nobody@127.0.0.1:1/crm"), "cannot connect to target"
    )


def test_token_for_an_unknown_user_is_a_one_line_error(api):
    assert_one_line_error(
        cli("serve", "token", "--target", api.target, "--user", "nobody@acme.example"),
        "no user with email 'nobody@acme.example'",
    )


def test_serve_help_has_an_example():
    for args in (("serve",), ("serve", "token"), ("serve", "revoke"), ("serve", "index")):
        assert "Example:" in cli(*args, "--help").output
