"""A hand-written hostile corpus against every write, list and read of the API: 0 answers of 500.

Each value of :data:`VALUES` (raw JSON: surrogates, NaN, Infinity, huge numbers, deep nesting,
huge strings, wrong types, SQL text, unicode) goes into every writable field of a resource at
once, in place of the whole body and as a field name, by POST and PATCH; the text values
that validate also go into a valid record (so they reach the database).  Query strings, path
ids and Authorization headers get their own corpus.  On SQLite and PostgreSQL, in-process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from crmkit.api.resources import READ_ONLY, RESOURCES
from tests.integration.api_client import ADMIN, SALES_D1, InProcessApi, live_api

#: raw JSON values; the ids say what each one tries
VALUES: dict[str, str] = {
    "lone-surrogate": '"a\\ud800b"',
    "reversed-surrogates": '"\\udfff\\ud800"',
    "nan": "NaN",
    "infinity": "Infinity",
    "minus-infinity": "-Infinity",
    "1e309": "1e309",
    "tiny-1e-400": "1e-400",
    "huge-int": "1" + "0" * 4000,
    "negative-huge-int": "-" + "9" * 300,
    "float-for-int": "1.5",
    "deep-list": "[" * 3000 + "]" * 3000,
    "deep-object": '{"a":' * 2000 + "1" + "}" * 2000,
    "huge-string": '"' + "x" * 50_000 + '"',
    "huge-list": "[" + ",".join(["1"] * 5000) + "]",
    "true": "true",
    "empty-object": "{}",
    "empty-string": '""',
    "null": "null",
    "zero": "0",
    "negative-id": "-1",
    "sql-drop": '"\'; DROP TABLE accounts; --"',
    "sql-or": "\"' OR '1'='1\"",
    "nul": '"a\\u0000b"',
    "rtl-override": '"\\u202egnp.exe"',
    "emoji": '"' + "\\ud83d\\ude00" * 2000 + '"',
    "cjk": '"宏达科技有限公司"',
    "bom-zero-width": '"\\ufeff\\u200b"',
    "combining": '"e' + "\\u0301" * 500 + '"',
    "date-garbage": '"2026-02-30T25:61:61+99:00"',
}
#: values that pass validation as text: they also go into a valid record
TEXTS = ("sql-drop", "sql-or", "rtl-override", "cjk", "bom-zero-width", "emoji")
QUERIES = ["' OR 1=1 --", "%", "\\", "\x00", "%ED%B2%80", "9" * 400, "-1", "NaN", "1e309", "宏达", "a" * 5000]
PATH_IDS = ["0", "-1", "1e309", "NaN", "99999999999999999999", "%00", "..%2f..%2fetc", "1;DROP", "%F0%9F%98%80"]
AUTH = [
    "Bearer",
    "Bearer ",
    "bearer crm_x",
    "Bearer crm_" + "x" * 8000,
    "Bearer crm_ÿþ",
    "Basic Og==",
    "Bearer  crm_a b",
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApi]:
    target = (
        f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'crm.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    with live_api(target, auth_failures=100_000) as api:  # the corpus itself fails authentication on purpose
        yield api


BASE: dict[str, dict[str, Any]] = {
    "accounts": {},
    "contacts": {},
    "opportunities": {"stage": "proposal"},
    "cases": {},
    "activities": {"type": "note"},
}
MAIN_TEXT = {"accounts": "name", "contacts": "full_name", "opportunities": "name", "cases": "subject"}


def _bodies(api: InProcessApi, resource: str, account: int) -> Iterator[tuple[str, str]]:
    fields = [c.name for c in RESOURCES[resource].table.columns if c.name not in READ_ONLY]
    for vid, raw in VALUES.items():
        yield f"{vid}:every-field", "{" + ",".join(f'"{f}": {raw}' for f in fields) + "}"
        yield f"{vid}:whole-body", raw
        if raw.startswith('"'):
            yield f"{vid}:as-a-key", "{" + raw + ": 1}"
    base = {**BASE[resource], **({"account_id": account} if resource != "accounts" else {})}
    text = MAIN_TEXT.get(resource, "subject")
    for vid in TEXTS:
        head = json.dumps(base)[:-1] + (", " if base else "")  # '{"stage": "proposal", ' or '{'
        yield f"{vid}:valid-record", head + f'"{text}": {VALUES[vid]}' + "}"


def _server_errors(responses: Iterator[tuple[str, Any]]) -> list[str]:
    return [f"{case}: {res.status_code} {res.text[:120]}" for case, res in responses if res.status_code >= 500]


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_no_body_of_the_corpus_gets_a_500(api, resource):
    account = api.sql("SELECT min(id) FROM accounts")[0][0]
    record = api.sql(f"SELECT min(id) FROM {resource}")[0][0]
    headers = {**api.headers(ADMIN), "Content-Type": "application/json"}

    def responses() -> Iterator[tuple[str, Any]]:
        for case, body in _bodies(api, resource, account):
            yield f"POST {case}", api.client.post(f"/{resource}", content=body.encode("utf-8"), headers=headers)
            yield f"PATCH {case}", api.client.patch(f"/{resource}/{record}", content=body.encode(), headers=headers)

    assert _server_errors(responses()) == []
    stored = api.sql(f"SELECT count(*) FROM {resource} WHERE created_at IS NOT NULL") if resource == "accounts" else 1
    assert stored  # the database is still there and answers


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_no_query_path_or_header_of_the_corpus_gets_a_500(api, resource):
    filters = [k for k in ("q", "limit", "offset", "owner_id", "account_id", "stage", "status", "type")]

    def responses() -> Iterator[tuple[str, Any]]:
        for value in QUERIES:
            for name in filters:
                res = api.client.get(f"/{resource}", params={name: value}, headers=api.headers(SALES_D1))
                yield f"?{name}={value[:20]!r}", res
        for rid in PATH_IDS:
            yield f"/{rid}", api.client.get(f"/{resource}/{rid}", headers=api.headers(ADMIN))
            yield f"PATCH /{rid}", api.client.patch(f"/{resource}/{rid}", json={}, headers=api.headers(ADMIN))
        for auth in AUTH:
            res = api.client.get(f"/{resource}", headers={"Authorization": auth.encode("latin-1")})
            yield f"Authorization {auth[:20]!r}", res

    assert _server_errors(responses()) == []
