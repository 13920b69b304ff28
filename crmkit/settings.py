"""Settings: every environment variable crmkit reads, read once, at the edge.

The CLI (``crmkit.cli``) and the API app factory call :meth:`Settings.from_env` and pass the
object (or the one value a function needs) down; library code never reads ``os.environ``.
Secrets in mapping files are the exception by design: ``${VAR}`` is substituted by
``crmkit.config`` while the file loads, so that a password never sits in a file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crmkit.errors import ConfigError

#: environment variable -> what it sets (docs/configuration.md lists the same)
VARIABLES: dict[str, str] = {
    "CRMKIT_TARGET": "default target database URL of commands that take --target",
    "CRMKIT_API_TARGET": "the target database of an API process started by crmkit (never on a command line)",
    "CRMKIT_API_POOL": "database connections per API worker (default 12)",
    "CRMKIT_API_PG_ASYNC": "0 turns off the API's asyncio PostgreSQL path (default 1)",
    "CRMKIT_API_TOKEN_CACHE": "seconds an API worker caches a checked token (default 5)",
    "CRMKIT_API_MAX_BODY": "largest request body the API reads, in bytes (default 1048576); larger is 413",
    "CRMKIT_API_AUTH_FAILURES": "failed authentications per client address within the window before 429 (default 20)",
    "CRMKIT_API_AUTH_WINDOW": "seconds of that window (default 60)",
    "CRMKIT_API_TOKEN_DAYS": "days a token minted by crmkit serve token lives unless --expires says (default 30)",
    "CRMKIT_BULK_ROWS": "rows from which a load drops and rebuilds indexes (default 200000)",
    "CRMKIT_MASK_KEY": "key of the id permutation of `crmkit training mask` (default: random per run)",
    "CRMKIT_HOME": "folder of the sandbox registry (default .crmkit)",
    "CRMKIT_SANDBOX_PG_URL": "PostgreSQL server URL for sandboxes (may hold a password)",
    "CRMKIT_LOADTEST_PLAN": "set by crmkit loadtest run in its Locust process's environment: the plan file",
    "CRMKIT_LOADTEST_OUT": "set by crmkit loadtest run in its Locust process's environment: where the figures go",
    "PROMETHEUS_MULTIPROC_DIR": "set by crmkit serve in its API workers' environment: where they add up their metrics",
}


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"environment variable {name}={value} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class Settings:
    """The process's configuration from its environment; defaults are the documented ones."""

    target: str | None = None
    api_target: str | None = None
    api_pool: int = 12
    api_pg_async: bool = True
    api_token_cache_s: float = 5.0
    api_max_body: int = 1_048_576
    api_auth_failures: int = 20
    api_auth_window_s: float = 60.0
    api_token_days: int = 30
    bulk_rows: int = 200_000
    home: Path = field(default_factory=lambda: Path(".crmkit"))
    sandbox_server: str | None = None
    metrics_dir: str | None = None
    loadtest_plan: str | None = None
    loadtest_out: str | None = None
    mask_key: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            target=env.get("CRMKIT_TARGET") or None,
            api_target=env.get("CRMKIT_API_TARGET") or None,
            api_pool=_int(env, "CRMKIT_API_POOL", 12),
            api_pg_async=env.get("CRMKIT_API_PG_ASYNC", "1").strip() != "0",
            api_token_cache_s=_float(env, "CRMKIT_API_TOKEN_CACHE", 5.0),
            api_max_body=_int(env, "CRMKIT_API_MAX_BODY", 1_048_576),
            api_auth_failures=_int(env, "CRMKIT_API_AUTH_FAILURES", 20),
            api_auth_window_s=_float(env, "CRMKIT_API_AUTH_WINDOW", 60.0),
            api_token_days=_int(env, "CRMKIT_API_TOKEN_DAYS", 30),
            bulk_rows=_int(env, "CRMKIT_BULK_ROWS", 200_000),
            home=Path(env.get("CRMKIT_HOME") or ".crmkit"),
            sandbox_server=env.get("CRMKIT_SANDBOX_PG_URL") or None,
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            loadtest_plan=env.get("CRMKIT_LOADTEST_PLAN") or None,
            loadtest_out=env.get("CRMKIT_LOADTEST_OUT") or None,
            mask_key=env.get("CRMKIT_MASK_KEY") or None,
        )
