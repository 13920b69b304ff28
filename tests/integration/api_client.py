"""The API in-process over the migrated example estate, for the API's integration tests.

``live_api(target)`` migrates the example estate into ``target``, mints a token per role and
yields an :class:`InProcessApi`: the app built by ``create_app`` (the same as uvicorn's
workers run) driven by Starlette's TestClient, with its lifespan, no server and no port.
The test settings: token cache off, 5 failed authentications per 10 s, a 64 KB body limit.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, text

from crmkit.api.app import create_app
from tests.conftest import MAPPINGS, cli

with warnings.catch_warnings():  # Starlette prefers httpx2, which this environment does not have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SALES_D1, SALES_D2 = "wang.fang@acme.example", "chen.jing@acme.example"
MANAGER_D1, SERVICE, ADMIN = "li.wei@acme.example", "zhao.min@acme.example", "huang.qiang@acme.example"
AUTH_FAILURES, AUTH_WINDOW_S, MAX_BODY = 5, 10.0, 65_536


@dataclass
class InProcessApi:
    target: str
    app: Any
    client: Any  # TestClient, with the app's lifespan running
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, email: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[email]}"} if email else {}

    def call(self, method: str, path: str, who: str | None = ADMIN, **kw: Any) -> Any:
        return self.client.request(method, path, headers={**self.headers(who), **kw.pop("headers", {})}, **kw)

    def sql(self, query: str, **params: object) -> list[tuple[Any, ...]]:
        engine = create_engine(self.target)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(query), params)]
        finally:
            engine.dispose()

    def from_address(self, host: str) -> Any:
        """A client of the same (running) app that connects from ``host``."""
        return TestClient(self.app, client=(host, 40000), raise_server_exceptions=False)


def mint(target: str, email: str, *args: str) -> str:
    res = cli("serve", "token", "--target", target, "--user", email, *args)
    assert res.exit_code == 0, res.output
    return res.stdout.strip()


@contextmanager
def live_api(target: str, **settings: Any) -> Iterator[InProcessApi]:
    assert cli("migrate", "run", str(MAPPINGS / "acme-legacy.yaml"), "--target", target).exit_code == 0
    tokens = {e: mint(target, e) for e in (SALES_D1, SALES_D2, MANAGER_D1, SERVICE, ADMIN)}
    options = {"auth_failures": AUTH_FAILURES, "auth_window_s": AUTH_WINDOW_S, "max_body": MAX_BODY} | settings
    app = create_app(target, token_cache_seconds=0, **options)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield InProcessApi(target, app, client, tokens)
