"""Training sandboxes: one isolated CRM database per trainee, reset to the seeded state in seconds.

A registry lives under a home directory (the caller's: the CLI's ``--home``, env
``CRMKIT_HOME``, default ``.crmkit/``): ``sandboxes/<name>/sandbox.json`` records the scenario, seed, department,
trainees, backend, the seeded table hashes and the exercises with their answers.

* SQLite: the world is generated once into ``template.db``; each trainee gets a copy
  (``t01.db``...).  Reset copies the template over the trainee's file.
* PostgreSQL: the world is generated into a template database
  ``crmkit_sb_<name>_template`` on the server (the caller's ``server``: the CLI's ``--server``,
  env ``CRMKIT_SANDBOX_PG_URL``);
  each trainee database is ``CREATE DATABASE ... TEMPLATE`` of it.  Reset drops and
  recreates the trainee's database from the template.

The server URL is stored without its password: give it again (``--server`` or the env var)
when the server needs one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from crmkit.training.errors import SandboxError

HOME_ENV = "CRMKIT_HOME"
PG_ENV = "CRMKIT_SANDBOX_PG_URL"
NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,29}$")


@dataclass
class Sandbox:
    name: str
    backend: str  # sqlite | postgresql
    scenario: str
    scenario_hash: str
    seed: int
    department: str | None
    trainees: list[str]
    created_at: str
    server: str | None = None  # PostgreSQL server URL, without password
    seeded: dict[str, str] = field(default_factory=dict)  # table -> content hash of the seeded state
    exercises: list[dict[str, Any]] = field(default_factory=list)

    def dir(self, home: Path) -> Path:
        return home / "sandboxes" / self.name

    def db_name(self, trainee: str) -> str:
        return f"crmkit_sb_{self.name}_{trainee}"

    def url(self, home: Path, trainee: str, server: str | None = None) -> str:
        """The database URL of a trainee's sandbox (``template`` for the seeded template)."""
        if self.backend == "sqlite":
            return f"sqlite:///{(self.dir(home) / f'{trainee}.db').resolve()}"
        return _srv(self, server).set(database=self.db_name(trainee)).render_as_string(hide_password=False)


def _server(url: str | None) -> URL:
    text = url
    if not text:
        raise SandboxError(
            f"PostgreSQL sandboxes need a server: give --server URL or set {PG_ENV} "
            f"(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)"
        )
    try:
        parsed = make_url(text)
    except Exception:
        raise SandboxError(
            "--server: not a database URL (e.g. postgresql+psycopg://postgres@127.0.0.1/postgres)"
        ) from None
    if parsed.get_backend_name() != "postgresql":
        raise SandboxError("--server must be a PostgreSQL URL (postgresql+psycopg://...)")
    return parsed


def _srv(sb: Sandbox, server: str | None) -> URL:
    """The sandbox's server: the one given (--server or the environment; may carry a password), else the stored one."""
    return _server(server or sb.server)


def _admin(server: URL) -> Any:
    import psycopg

    from crmkit.db.url import mask_url

    params: dict[str, Any] = {  # psycopg.connect keyword arguments: text and a port number
        k: v
        for k, v in {
            "host": server.host,
            "port": server.port,
            "user": server.username,
            "password": server.password,
            "dbname": server.database or "postgres",
        }.items()
        if v
    }
    try:
        return psycopg.connect(**params, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SandboxError(f"cannot connect to sandbox server {mask_url(server.render_as_string())}: {first}") from None


def _registry(home: Path, name: str) -> Path:
    return home / "sandboxes" / name / "sandbox.json"


def load(home: Path, name: str) -> Sandbox:
    path = _registry(home, name)
    if not path.exists():
        known = ", ".join(s.name for s in list_sandboxes(home)) or "none"
        raise SandboxError(f"no sandbox named '{name}' under {home} (sandboxes: {known}; see `crmkit sandbox list`)")
    return Sandbox(**json.loads(path.read_text(encoding="utf-8")))


def _save(home: Path, sb: Sandbox) -> None:
    path = _registry(home, sb.name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(sb), ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def list_sandboxes(home: Path) -> list[Sandbox]:
    root = home / "sandboxes"
    if not root.is_dir():
        return []
    return [Sandbox(**json.loads(p.read_text(encoding="utf-8"))) for p in sorted(root.glob("*/sandbox.json"))]


# --- create ------------------------------------------------------------------------------


@dataclass
class CreateOptions:
    name: str
    scenario: Path
    seed: int = 1
    department: str | None = None
    trainees: int = 1
    backend: str = "sqlite"
    server: str | None = None


def create(home: Path, opt: CreateOptions) -> Sandbox:
    """Generate the world once, then give every trainee an identical copy."""
    from crmkit.training.generate import generate
    from crmkit.training.hashes import table_hashes
    from crmkit.training.output import load_target
    from crmkit.training.scenario import load_scenario

    if not NAME.match(opt.name):
        raise SandboxError(f"sandbox name '{opt.name}': use 1-30 lower-case letters, digits or _ (e.g. sales_w)")
    if _registry(home, opt.name).exists():
        raise SandboxError(
            f"sandbox '{opt.name}' exists already: `crmkit sandbox drop {opt.name}` first, or pick another name"
        )
    scenario, digest = load_scenario(opt.scenario)
    if opt.department:
        scenario = scenario.only(opt.department)
    world = generate(scenario, opt.seed, str(opt.scenario))
    server = _server(opt.server) if opt.backend == "postgresql" else None
    sb = Sandbox(
        opt.name,
        opt.backend,
        str(opt.scenario),
        digest,
        opt.seed,
        opt.department,
        [f"t{i:02d}" for i in range(1, opt.trainees + 1)],
        time.strftime("%Y-%m-%d %H:%M:%S"),
        server.set(password=None).render_as_string(hide_password=False) if server else None,
        exercises=world.exercises,
    )
    d = sb.dir(home)
    d.mkdir(parents=True, exist_ok=True)
    try:
        if server is not None:
            _create_db(server, sb.db_name("template"))
        url = sb.url(home, "template", opt.server)
        load_target(world, url, digest)
        if opt.backend == "sqlite":
            _settle_sqlite(d / "template.db")
        sb.seeded = table_hashes(url)
        for t in sb.trainees:
            _restore(home, sb, t, opt.server)
        _save(home, sb)
    except BaseException:
        _remove(home, sb, opt.server, quiet=True)
        raise
    return sb


def _settle_sqlite(path: Path) -> None:
    """One self-contained file: WAL checkpointed and switched off, so a file copy is the database."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()


def _create_db(server: URL, name: str, template: str | None = None) -> None:
    conn = _admin(server)
    try:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    except Exception as exc:
        raise SandboxError(f"cannot create database {name}: {str(exc).strip().splitlines()[0]}") from None
    finally:
        conn.close()


def _drop_db(server: URL, name: str) -> None:
    conn = _admin(server)
    try:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def _restore(home: Path, sb: Sandbox, trainee: str, server: str | None) -> None:
    """Make the trainee's database a fresh copy of the template."""
    if sb.backend == "sqlite":
        d = sb.dir(home)
        for suffix in ("-wal", "-shm"):
            (d / f"{trainee}.db{suffix}").unlink(missing_ok=True)
        tmp = d / f".{trainee}.db.tmp"
        shutil.copyfile(d / "template.db", tmp)
        os.replace(tmp, d / f"{trainee}.db")
        return
    srv = _srv(sb, server)
    _drop_db(srv, sb.db_name(trainee))
    _create_db(srv, sb.db_name(trainee), sb.db_name("template"))


# --- list, reset, drop ----------------------------------------------------------------------


def _trainees(sb: Sandbox, trainee: str | None) -> list[str]:
    if trainee is None:
        return sb.trainees
    if trainee not in sb.trainees:
        raise SandboxError(f"sandbox '{sb.name}' has no trainee '{trainee}' (trainees: {', '.join(sb.trainees)})")
    return [trainee]


def reset(home: Path, name: str, trainee: str | None = None, server: str | None = None) -> dict[str, float]:
    """Put trainees' databases back to the seeded state; seconds taken per trainee."""
    sb = load(home, name)
    out = {}
    for t in _trainees(sb, trainee):
        start = time.perf_counter()
        _restore(home, sb, t, server)
        out[t] = time.perf_counter() - start
    return out


def verify(home: Path, name: str, trainee: str | None = None, server: str | None = None) -> dict[str, list[str]]:
    """Tables whose content differs from the seeded state, per trainee."""
    from crmkit.training.hashes import table_hashes

    sb = load(home, name)
    return {
        t: [k for k, v in table_hashes(sb.url(home, t, server)).items() if sb.seeded.get(k) != v]
        for t in _trainees(sb, trainee)
    }


def _remove(home: Path, sb: Sandbox, server: str | None, quiet: bool = False) -> None:
    if sb.backend == "postgresql":
        try:
            srv = _srv(sb, server)
            for t in [*sb.trainees, "template"]:
                _drop_db(srv, sb.db_name(t))
        except Exception:
            if not quiet:
                raise
    shutil.rmtree(sb.dir(home), ignore_errors=True)


def drop(home: Path, name: str, server: str | None = None) -> Sandbox:
    sb = load(home, name)
    _remove(home, sb, server)
    return sb


def trainee_urls(home: Path, sb: Sandbox, server: str | None = None) -> Iterator[tuple[str, str]]:
    for t in sb.trainees:
        yield t, sb.url(home, t, server)
