"""Issue 23, items 1-5: what the API promises a hostile or careless client, on SQLite and PostgreSQL.

1. bad input is 422 (never 500) and error bodies never echo it; bodies over the limit are 413;
2. failed authentications are limited per client address (429 with Retry-After);
3. /metrics needs a metrics token; tokens expire by default; one token is revoked by id;
   minting and revoking are audited; every audited write names its token and client address;
4. the documented contracts: a service agent's contact gets a department, tiers come from the
   vocabulary, created_at is set, a case's contact belongs to the case's account;
5. security headers (and their place in docs/api.md against the OWASP API Security Top 10).

The app runs in-process (``tests/integration/api_client.py``); the token commands are the real CLI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from crmkit.api.app import create_app
from tests.conftest import ROOT, cli
from tests.integration.api_client import (
    ADMIN,
    AUTH_FAILURES,
    MAX_BODY,
    SALES_D1,
    SERVICE,
    InProcessApi,
    live_api,
    mint,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApi]:
    if request.param == "sqlite":
        target = f"sqlite:///{tmp_path_factory.mktemp('trust') / 'crm.db'}"
    else:
        target = request.getfixturevalue("pg_url")
    with live_api(target) as api:
        yield api


def account_of(api: InProcessApi, dept_code: str, n: int = 0) -> int:
    return api.sql(
        "SELECT a.id FROM accounts a JOIN departments d ON d.id = a.department_id WHERE d.code = :c ORDER BY a.id",
        c=dept_code,
    )[n][0]


def token_id(api: InProcessApi, token: str) -> int:
    import hashlib

    return api.sql(
        "SELECT id FROM crmkit_api_tokens WHERE token_hash = :h", h=hashlib.sha256(token.encode()).hexdigest()
    )[0][0]


# --- 1. no 500s, no echo, a body limit ------------------------------------------------------

OPPORTUNITY = '{"name": "x", "stage": "prospecting", "account_id": 1, "amount": %s}'
BAD_BODIES = {
    "lone-surrogate": ("/accounts", '{"name": "a\\ud800b"}'),
    "surrogate-key": ("/accounts", '{"name": "a", "\\udfff": 1}'),
    "amount-1e309": ("/opportunities", OPPORTUNITY % "1e309"),
    "amount-nan": ("/opportunities", OPPORTUNITY % "NaN"),
    "amount-infinity": ("/opportunities", OPPORTUNITY % "-Infinity"),
    "nan-where-text": ("/accounts", '{"name": NaN}'),
    "huge-string": ("/accounts", '{"name": "%s"}' % ("y" * 60_000)),
    "huge-key": ("/accounts", '{"name": "n", "%s": 1}' % ("k" * 60_000)),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_bad_bodies_are_422_with_a_bounded_body_that_echoes_nothing(api, case):
    path, body = BAD_BODIES[case]
    res = api.call("POST", path, content=body.encode(), headers={"Content-Type": "application/json"})
    assert res.status_code == 422, res.text[:300]
    assert len(res.content) < 3000 and "y" * 10 not in res.text and "k" * 100 not in res.text  # a field name: cut
    detail = res.json()["detail"]
    assert all(set(d) == {"loc", "msg", "type"} for d in detail)  # no "input", no "ctx"


@pytest.mark.parametrize(
    "body",
    [{"active": 0}, {"probability": False}, {"close_date": 0}, {"account_id": True}, {"account_id": 1.0}],
    ids=["int-for-bool", "bool-for-int", "number-for-date", "bool-for-id", "float-for-id"],
)
def test_a_value_of_the_wrong_json_type_is_422_not_coerced(api, body):
    """Found by schemathesis' negative_data_rejection: 0 was stored as false, false as 0, 0 as 1970-01-01."""
    base = {"name": "Typed", "stage": "proposal", "account_id": 1}
    resource = "/accounts" if "active" in body else "/opportunities"
    res = api.call("POST", resource, json={"name": "Typed"} | body if "active" in body else base | body)
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == ["body", next(iter(body))]
    ok = api.call("POST", "/opportunities", json=base | {"close_date": "2026-03-31", "probability": 40})
    assert ok.status_code == 201 and ok.json()["close_date"] == "2026-03-31"


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(api):
    big = b'{"name": "' + b"z" * MAX_BODY + b'"}'
    res = api.call("POST", "/accounts", content=big, headers={"Content-Type": "application/json"})
    assert res.status_code == 413 and "over 65536 bytes" in res.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it is read
        yield b'{"name": "'
        for _ in range(MAX_BODY // 1000 + 1):
            yield b"z" * 1000
        yield b'"}'

    res = api.call("POST", "/accounts", content=chunks(), headers={"Content-Type": "application/json"})
    assert res.status_code == 413
    assert api.sql("SELECT count(*) FROM accounts WHERE name LIKE 'zzzz%'")[0][0] == 0


def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body():
    """100 MB announced: the answer is 413 and the body is never asked for."""
    app = create_app("sqlite://")  # the default limit, 1 MB; no request reaches the database
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/accounts",
        "raw_path": b"/accounts",
        "query_string": b"",
        "headers": [(b"content-length", str(100 * 2**20).encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413


def test_a_database_error_message_is_bounded(api):
    """An API error's message (a database's, which may quote the value) is cut and safe to serialise."""
    from crmkit.api import guard

    assert len(guard.safe_text("x" * 10_000)) == guard.MAX_MESSAGE
    assert json.dumps(guard.safe_text("a\ud800b"), ensure_ascii=False).encode("utf-8")


# --- 2. failed authentication is limited per client address ----------------------------------


def test_failed_authentications_are_limited_per_client_address(api):
    attacker, bystander = api.from_address("198.51.100.7"), api.from_address("198.51.100.8")
    bad = {"Authorization": "Bearer crm_guessed-token"}
    codes = [attacker.get("/me", headers=bad).status_code for _ in range(AUTH_FAILURES)]
    assert codes == [401] * AUTH_FAILURES
    res = attacker.get("/me", headers=bad)
    assert res.status_code == 429 and 1 <= int(res.headers["retry-after"]) <= 10
    # while blocked, even a live token from that address is refused: guessing gains nothing
    assert attacker.get("/me", headers=api.headers(ADMIN)).status_code == 429
    # another address is not affected
    assert bystander.get("/me", headers=api.headers(ADMIN)).status_code == 200
    assert bystander.get("/me", headers=bad).status_code == 401


def test_the_failure_window_slides():
    from crmkit.api.guard import AuthFailures
    from crmkit.api.policy import TooManyAttempts

    limiter = AuthFailures(limit=2, window_s=0.2)
    limiter.fail("a")
    limiter.fail("a")
    with pytest.raises(TooManyAttempts):
        limiter.check("a")
    limiter.check("b")
    time.sleep(0.25)
    limiter.check("a")  # the failures have left the window


def test_the_api_settings_come_from_the_environment():
    from crmkit.settings import Settings

    default = Settings.from_env({})
    assert (default.api_max_body, default.api_auth_failures, default.api_auth_window_s) == (1_048_576, 20, 60.0)
    assert default.api_token_days == 30
    env = {"CRMKIT_API_MAX_BODY": "2048", "CRMKIT_API_AUTH_FAILURES": "5", "CRMKIT_API_AUTH_WINDOW": "10"}
    s = Settings.from_env({**env, "CRMKIT_API_TOKEN_DAYS": "7"})
    assert (s.api_max_body, s.api_auth_failures, s.api_auth_window_s, s.api_token_days) == (2048, 5, 10.0, 7)


# --- 3. metrics behind a token, expiry, revoke by id, audit ----------------------------------


def test_metrics_need_a_token_of_scope_metrics(api):
    assert api.call("GET", "/metrics", who=None).status_code == 401
    assert api.call("GET", "/metrics", who=ADMIN).status_code == 403  # an api token, even an admin's
    scraper = mint(api.target, ADMIN, "--scope", "metrics")
    res = api.client.get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
    assert res.status_code == 200 and "crmkit_api_requests_total" in res.text
    assert api.client.get("/accounts", headers={"Authorization": f"Bearer {scraper}"}).status_code == 403


def test_tokens_expire_in_30_days_unless_told_otherwise(api):
    tok = mint(api.target, SALES_D1)
    expires = api.sql("SELECT expires_at FROM crmkit_api_tokens WHERE id = :i", i=token_id(api, tok))[0][0]
    expires = dt.datetime.fromisoformat(str(expires))
    days = (expires - dt.datetime.now(dt.UTC).replace(tzinfo=None)).total_seconds() / 86400
    assert 29.9 < days <= 30
    res = cli("serve", "token", "--target", api.target, "--user", SALES_D1, env={"CRMKIT_API_TOKEN_DAYS": "2"})
    expires = api.sql("SELECT expires_at FROM crmkit_api_tokens WHERE id = :i", i=token_id(api, res.stdout.strip()))
    assert dt.datetime.fromisoformat(str(expires[0][0])) < dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(
        days=2, minutes=1
    )


def test_one_token_is_revoked_by_id_and_both_events_are_audited(api):
    keep, drop = mint(api.target, SALES_D1), mint(api.target, SALES_D1)
    drop_id = token_id(api, drop)
    res = cli("serve", "revoke", "--target", api.target, "--token-id", str(drop_id))
    assert res.exit_code == 0 and f"revoked token {drop_id} of {SALES_D1}" in res.stdout
    assert api.client.get("/me", headers={"Authorization": f"Bearer {drop}"}).status_code == 401
    assert api.client.get("/me", headers={"Authorization": f"Bearer {keep}"}).status_code == 200
    rows = api.sql(
        "SELECT action, user_email, token_id, client FROM crmkit_api_audit WHERE entity = 'tokens' AND entity_id = :i "
        "ORDER BY id",
        i=drop_id,
    )
    assert rows == [("mint", SALES_D1, drop_id, "cli"), ("revoke", SALES_D1, drop_id, "cli")]
    entries = api.call("GET", "/audit", params={"entity": "tokens", "entity_id": drop_id}).json()["items"]
    assert [e["action"] for e in entries] == ["revoke", "mint"]
    assert "token_hash" not in json.dumps(entries) and drop not in json.dumps(entries)


def test_revoke_needs_exactly_one_of_token_id_and_user(api):
    for args in ((), ("--token-id", "1", "--user", SALES_D1)):
        res = cli("serve", "revoke", "--target", api.target, *args)
        assert res.exit_code == 2 and res.stderr.startswith("Error: give either --token-id"), res.output
    res = cli("serve", "revoke", "--target", api.target, "--token-id", "999999")
    assert res.exit_code == 2 and "no token with id 999999" in res.stderr


def test_every_audited_write_carries_its_token_and_client_address(api):
    client = api.from_address("203.0.113.5")
    res = client.post("/accounts", json={"name": "Audited Co"}, headers=api.headers(ADMIN))
    assert res.status_code == 201
    row = api.sql(
        "SELECT token_id, client FROM crmkit_api_audit WHERE entity = 'accounts' AND entity_id = :i",
        i=res.json()["id"],
    )
    assert row == [(token_id(api, api.tokens[ADMIN]), "203.0.113.5")]


# --- 4. the documented contracts -------------------------------------------------------------


def test_a_service_agents_contact_gets_a_department(api):
    acct = account_of(api, "SALES_N")
    acct_dept = api.sql("SELECT department_id FROM accounts WHERE id = :a", a=acct)[0][0]
    agent_dept = api.sql("SELECT department_id FROM users WHERE email = :e", e=SERVICE)[0][0]
    with_account = api.call("POST", "/contacts", who=SERVICE, json={"full_name": "Svc One", "account_id": acct})
    alone = api.call("POST", "/contacts", who=SERVICE, json={"full_name": "Svc Two"})
    assert (with_account.status_code, alone.status_code) == (201, 201)
    # the account's department (its sales team keeps seeing it), else the agent's own
    assert with_account.json()["department_id"] == acct_dept
    assert alone.json()["department_id"] == agent_dept is not None


@pytest.mark.parametrize("tier", ["Z", "a", "", "VIP "], ids=["Z", "lowercase", "empty", "trailing-space"])
def test_a_tier_outside_the_vocabulary_is_422(api, tier):
    res = api.call("POST", "/accounts", json={"name": "Tiered", "tier": tier})
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == ["body", "tier"]
    acct = account_of(api, "SALES_N")
    assert api.call("PATCH", f"/accounts/{acct}", json={"tier": tier}).status_code == 422


def test_records_created_through_the_api_have_created_at(api):
    today = dt.datetime.now(dt.UTC).date().isoformat()
    acct = api.call("POST", "/accounts", json={"name": "Dated Co"}).json()
    contact = api.call("POST", "/contacts", json={"full_name": "Dated", "account_id": acct["id"]}).json()
    opp = api.call("POST", "/opportunities", json={"name": "Dated", "stage": "proposal", "account_id": acct["id"]})
    case = api.call("POST", "/cases", json={"subject": "Dated", "account_id": acct["id"]}).json()
    assert acct["created_at"] == contact["created_at"] == opp.json()["created_at"] == today
    assert case["opened_at"] is not None
    # a client cannot set it
    assert api.call("POST", "/accounts", json={"name": "Old", "created_at": "1999-01-01"}).status_code == 422


def test_a_case_links_only_a_contact_of_its_own_account(api):
    a1, a2 = account_of(api, "SALES_N"), account_of(api, "SALES_S")
    c2 = api.call("POST", "/contacts", json={"full_name": "Of A2", "account_id": a2}).json()["id"]
    c1 = api.call("POST", "/contacts", json={"full_name": "Of A1", "account_id": a1}).json()["id"]
    res = api.call("POST", "/cases", json={"subject": "Mixed", "account_id": a1, "contact_id": c2})
    assert res.status_code == 422, res.text
    problem = res.json()["detail"][0]
    assert problem["loc"] == ["body", "contact_id"] and "must belong to the case's account" in problem["msg"]
    ok = api.call("POST", "/cases", json={"subject": "Matched", "account_id": a1, "contact_id": c1})
    assert ok.status_code == 201
    case = ok.json()["id"]
    assert api.call("PATCH", f"/cases/{case}", json={"contact_id": c2}).status_code == 422
    assert api.call("PATCH", f"/cases/{case}", json={"account_id": a2}).status_code == 422
    assert api.call("PATCH", f"/cases/{case}", json={"account_id": a2, "contact_id": c2}).status_code == 200
    opp = api.call("POST", "/opportunities", json={"name": "O", "stage": "proposal", "account_id": a1}).json()["id"]
    act = api.call(
        "POST", "/activities", json={"type": "call", "subject": "s", "account_id": a2, "opportunity_id": opp}
    )
    assert act.status_code == 422 and act.json()["detail"][0]["loc"] == ["body", "opportunity_id"]


# --- 5. security headers ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/accounts", "/me", "/accounts/999999999"], ids=["list", "me", "404"])
def test_authenticated_answers_carry_the_security_headers(api, path):
    res = api.call("GET", path)
    assert res.headers["x-content-type-options"] == "nosniff"
    assert res.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in res.headers["content-security-policy"]
    assert res.headers["cache-control"] == "no-store"


def test_unauthenticated_answers_carry_the_framing_headers(api):
    for res in (api.client.get("/health"), api.client.get("/accounts"), api.client.get("/openapi.json")):
        assert res.headers["x-content-type-options"] == "nosniff" and res.headers["x-frame-options"] == "DENY"
    assert api.client.get("/accounts", headers={"Authorization": "Bearer x"}).headers["cache-control"] == "no-store"


def test_docs_map_each_measure_to_the_owasp_api_top_10():
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for n in range(1, 11):
        assert f"API{n}:2023" in text, f"docs/api.md does not name API{n}:2023"
    for measure in ("nosniff", "X-Frame-Options", "no-store", "413", "429", "Retry-After", "metrics"):
        assert measure in text, measure
