#!/usr/bin/env python3
"""Benchmark: the reference API's sustained throughput under mixed persona traffic.

Per backend (SQLite, PostgreSQL) it seeds a CRM (the example estate's departments and
users, plus generated accounts, contacts, opportunities and cases), starts the API with
``--api-workers`` uvicorn workers on loopback, and measures with Locust on the same machine:

* the ceiling: a trivial endpoint (``GET /health``: no token, no database), closed loop;
* mixed persona traffic (``crmkit loadtest``'s sales, service and manager users, weights
  6:3:1, no think time) at each ``--users`` level: requests/s and p50/p95/p99.

It prints medians of ``--repeat`` runs, the best throughput whose p95 stays within 100 ms,
its ratio to the ceiling, and the target (>= 500 requests/s on PostgreSQL with p95 <= 100 ms)
as PASS/MISS.  Exit codes: 0 it ran (see PASS/MISS; ``--strict`` makes a miss exit 1);
1 requests failed (a fast wrong answer is no answer); 2 it could not run.

    .venv/bin/python bench/bench_api.py                          # 10,000 accounts, users 8,16,24,32, 3 repeats
    .venv/bin/python bench/bench_api.py --quick                  # smoke run
    .venv/bin/python bench/bench_api.py --backends postgresql --users 16,24 --locust-workers 1
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "build" / "bench" / "api"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGET_RPS, TARGET_P95_MS = 500.0, 100.0
HEALTH_LOCUSTFILE = """\
from locust import FastHttpUser, constant, task


class Probe(FastHttpUser):
    wait_time = constant(0)

    @task
    def health(self):
        self.client.get("/health", name="health")
"""
PROFILE = """\
description: bench_api, mixed personas without think time
users: {users}
spawn_rate: {users}
duration: {duration}s
personas:
  sales:   {{weight: 6, think_time: [0s, 0s]}}
  service: {{weight: 3, think_time: [0s, 0s]}}
  manager: {{weight: 1, think_time: [0s, 0s]}}
"""


class BenchError(Exception):
    """The benchmark cannot run: exit 2."""


# --- data ------------------------------------------------------------------------------


def seed(url: str, accounts: int, seed_: int = 11) -> dict[str, int]:
    """The example estate (departments, users, some records) plus generated records."""
    from sqlalchemy import Table, create_engine, insert, select, text

    from crmkit.migrate.pipeline.result import Options
    from crmkit.migrate.pipeline.run import run
    from crmkit.schema.models import Account, Case, Contact, Opportunity, User

    result = run(ROOT / "migrate" / "mappings" / "acme-legacy.yaml", Options(target=url))
    if result.status != "succeeded":
        raise BenchError(f"seeding {url}: the example migration ended {result.status}")
    rng = random.Random(seed_)
    engine = create_engine(url)
    with engine.begin() as conn:
        depts = [r[0] for r in conn.execute(select(User.department_id).where(User.role == "sales").distinct())]
        owners = {d: [r[0] for r in conn.execute(select(User.id).where(User.department_id == d))] for d in depts}
        first = conn.execute(text("SELECT coalesce(max(id), 0) FROM accounts")).scalar_one() + 1
        acc = [
            {
                "id": first + i,
                "name": f"基准{i:06d}科技有限公司" if i % 2 else f"Bench {i:06d} Trading Ltd",
                "phone": f"+8621{rng.randrange(10**8):08d}",
                "email": f"info{i}@bench{i % 997}.example",
                "city": rng.choice(["上海", "北京", "广州", "Hamburg"]),
                "country": "CN",
                "tier": rng.choice("ABC"),
                "department_id": depts[i % len(depts)],
                "owner_id": rng.choice(owners[depts[i % len(depts)]]),
                "active": True,
            }
            for i in range(accounts)
        ]
        conn.execute(insert(cast(Table, Account.__table__)), acc)
        cons = [
            {
                "account_id": a["id"],
                "full_name": f"联系人{a['id']}-{k}",
                "email": f"p{a['id']}.{k}@bench.example",
                "mobile": f"+86138{rng.randrange(10**8):08d}",
                "active": True,
            }
            for a in acc
            for k in range(3)
        ]
        conn.execute(insert(cast(Table, Contact.__table__)), cons)
        stages = ["prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"]
        opps = [
            {
                "account_id": a["id"],
                "name": f"Deal {a['id']}-{k}",
                "stage": rng.choice(stages),
                "amount": rng.randrange(1000, 10**7),
                "currency": "CNY",
                "owner_id": a["owner_id"],
                "department_id": a["department_id"],
            }
            for a in acc
            for k in range(2)
        ]
        conn.execute(insert(cast(Table, Opportunity.__table__)), opps)
        cases = [
            {
                "account_id": a["id"],
                "subject": f"工单 {a['id']}",
                "status": rng.choice(["new", "open", "pending"]),
                "priority": rng.choice(["low", "medium", "high"]),
            }
            for a in acc
        ]
        conn.execute(insert(cast(Table, Case.__table__)), cases)
    engine.dispose()
    return {"accounts": accounts, "contacts": len(cons), "opportunities": len(opps), "cases": len(cases)}


@contextmanager
def sqlite_target(accounts: int) -> Iterator[str]:
    pristine = OUT / f"pristine-{accounts}.db"
    if not pristine.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = pristine.with_suffix(".tmp.db")
        tmp.unlink(missing_ok=True)
        seed(f"sqlite:///{tmp}", accounts)
        tmp.rename(pristine)
    db = OUT / f"run-{accounts}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(pristine, db)
    yield f"sqlite:///{db}"


@contextmanager
def pg_target(base: str, accounts: int, search_index: bool) -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(base)
    params: dict[str, Any] = dict(host=u.host, port=u.port or 5432, user=u.username, dbname=u.database or "postgres")
    if u.password:
        params["password"] = u.password
    name = f"crmkit_bench_api_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(**params, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise BenchError(f"PostgreSQL at {u.host}:{u.port} unreachable: {str(exc).strip().splitlines()[0]}") from None
    try:
        url = u.set(database=name).render_as_string(hide_password=False)
        seed(url, accounts)
        if search_index:
            from crmkit.api import search_index as trigram
            from crmkit.api.db import make_engine

            engine = make_engine(url, pool_size=1)
            trigram.create(engine)  # what `crmkit serve index` does
            engine.dispose()
        with psycopg.connect(**{**params, "dbname": name}, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        yield url
    finally:
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- measurements ----------------------------------------------------------------------


class CpuMeter:
    """CPU seconds used by the API's processes, the database's backends and Locust during a run.

    Samples every 0.25 s (Locust processes come and go), keeping each process's last
    reading; PostgreSQL backends are those serving the benchmark's database.
    """

    def __init__(self, api_pid: int, db_name: str | None) -> None:
        import psutil

        self.psutil, self.api_pid, self.db_name = psutil, api_pid, db_name
        self.first: dict[int, tuple[str, float]] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> CpuMeter:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def _kinds(self) -> dict[int, str]:
        ps = self.psutil
        kinds = {c.pid: "api" for c in ps.Process(self.api_pid).children(recursive=True)} | {self.api_pid: "api"}
        for c in ps.Process().children(recursive=True):
            kinds.setdefault(c.pid, "locust")
        if self.db_name:
            for p in ps.process_iter(["name", "cmdline"]):
                if "postgres" in (p.info["name"] or "") and self.db_name in " ".join(p.info["cmdline"] or []):
                    kinds[p.pid] = "db"
        return kinds

    def _sample(self) -> None:
        for pid, kind in self._kinds().items():
            try:
                t = self.psutil.Process(pid).cpu_times()
            except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                continue
            used = t.user + t.system
            self.first.setdefault(pid, (kind, used))
            self.last[pid] = used

    def seconds(self) -> dict[str, float]:
        out = {"api": 0.0, "db": 0.0, "locust": 0.0}
        for pid, (kind, start) in self.first.items():
            out[kind] += self.last.get(pid, start) - start
        return out


def health(url: str, users: int, duration: int, workers: int, work: Path) -> dict[str, float]:
    """Closed-loop GET /health with Locust, as many processes as the mixed load uses."""
    lf = work / "locust_health.py"
    lf.write_text(HEALTH_LOCUSTFILE, encoding="utf-8")
    prefix = work / f"health-{time.time_ns()}"
    base = [sys.executable, "-m", "locust", "-f", str(lf), "--host", url, "--loglevel", "ERROR"]
    procs = []
    if workers:
        port = free_port()
        procs.append(
            subprocess.Popen(
                base
                + [
                    "--headless",
                    "-u",
                    str(users),
                    "-r",
                    str(users),
                    "-t",
                    f"{duration}s",
                    "--csv",
                    str(prefix),
                    "--master",
                    "--expect-workers",
                    str(workers),
                    "--master-bind-host",
                    "127.0.0.1",
                    "--master-bind-port",
                    str(port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        procs += [
            subprocess.Popen(
                base + ["--worker", "--master-port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for _ in range(workers)
        ]
    else:
        procs.append(
            subprocess.Popen(
                base + ["--headless", "-u", str(users), "-r", str(users), "-t", f"{duration}s", "--csv", str(prefix)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    from crmkit.api.server import stop_processes

    try:
        procs[0].wait(timeout=duration + 60)
    finally:
        stop_processes(procs)
    with open(f"{prefix}_stats.csv", encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    n = int(row["Request Count"])
    return {
        "rps": float(row["Requests/s"]),
        "p50": float(row["50%"]),
        "p95": float(row["95%"]),
        "p99": float(row["99%"]),
        "failures": int(row["Failure Count"]),
        "requests": n,
    }


def mixed(host: str, target: str, users: int, duration: int, workers: int, work: Path) -> dict[str, float]:
    """One ``crmkit loadtest`` run of the three personas without think time against ``host``."""
    from crmkit.loadtest.runner import Options, run

    profile = work / f"mixed-{users}.yaml"
    profile.write_text(PROFILE.format(users=users, duration=duration), encoding="utf-8")
    res = run(
        Options(
            profile=str(profile),
            target=target,
            host=host,
            workers=workers,
            report_dir=work / f"mixed-{users}-{time.time_ns()}",
        )
    )
    g = res.groups["all"]
    return {
        "rps": g["rps"],
        "p50": g["p50"],
        "p95": g["p95"],
        "p99": g["p99"],
        "failures": g["failures"],
        "requests": g["requests"],
        "idle_users": res.idle_users,
    }


def api_process(url: str) -> int:
    """The pid of the API process (uvicorn, started by background_api) listening at ``url``."""
    import psutil

    port = url.rsplit(":", 1)[1]
    for p in psutil.Process().children(recursive=True):
        if f"--port {port}" in " ".join(p.cmdline()):
            return int(p.pid)
    raise BenchError(f"cannot find the API process of {url}")


def cpu_per_request(cpu: CpuMeter, run: dict[str, float]) -> dict[str, float]:
    n = max(1, int(run["requests"]))
    return {f"cpu_{k}_ms": 1000 * v / n for k, v in cpu.seconds().items()}


def free_port() -> int:
    from crmkit.api.server import free_port as fp

    return fp()


def median_of(runs: list[dict[str, float]]) -> dict[str, Any]:
    keys = ("rps", "p50", "p95", "p99", "cpu_api_ms", "cpu_db_ms", "cpu_locust_ms")
    return {k: statistics.median(r[k] for r in runs) for k in keys} | {
        "failures": sum(r["failures"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "runs_rps": [round(r["rps"], 1) for r in runs],
    }


def bench_backend(name: str, target: str, args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    from crmkit.api.server import background_api

    work = OUT / f"work-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    raw: dict[str, list[dict[str, float]]] = {"health": []}
    raw.update({f"mixed-{u}": [] for u in args.users})
    with background_api(target, workers=args.api_workers, log_path=work / "api.log"):
        pass  # warm: the schema is there and the workers start
    with background_api(target, workers=args.api_workers, log_path=work / "api.log") as url:
        api_pid = api_process(url)
        db_name = make_url(target).database if name == "postgresql" else None
        for rep in range(args.repeat):
            with CpuMeter(api_pid, db_name) as cpu:
                raw["health"].append(health(url, max(args.users), args.duration, args.locust_workers, work))
            raw["health"][-1].update(cpu_per_request(cpu, raw["health"][-1]))
            for u in args.users:
                with CpuMeter(api_pid, db_name) as cpu:
                    raw[f"mixed-{u}"].append(mixed(url, target, u, args.duration, args.locust_workers, work))
                raw[f"mixed-{u}"][-1].update(cpu_per_request(cpu, raw[f"mixed-{u}"][-1]))
            print(
                f"  {name} repetition {rep + 1}/{args.repeat}: "
                + ", ".join(f"{k} {v[-1]['rps']:.0f} req/s p95 {v[-1]['p95']:.0f} ms" for k, v in raw.items()),
                flush=True,
            )
    return {k: median_of(v) for k, v in raw.items()}


# --- report ----------------------------------------------------------------------------


def best_within_slo(res: dict[str, Any]) -> tuple[str | None, float]:
    ok = [(k, v["rps"]) for k, v in res.items() if k.startswith("mixed") and v["p95"] <= TARGET_P95_MS]
    return max(ok, key=lambda kv: kv[1]) if ok else (None, 0.0)


def print_table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> bool:
    load = os.getloadavg()
    print(
        f"\nbench_api: {args.accounts} accounts (PostgreSQL {'without' if args.no_search_index else 'with'} "
        f"trigram search indexes), API {args.api_workers} uvicorn worker(s), Locust "
        f"{'1 process' if not args.locust_workers else f'master + {args.locust_workers} workers'}, "
        f"{args.duration} s per run, medians of {args.repeat}; {os.cpu_count()} cores, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {platform.python_version()}"
    )
    print(
        f"{'backend':<11} {'load':<16} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'vs ceiling':>10}  {'CPU ms per request: api db locust':>34}  runs (req/s)"
    )
    met = True
    for backend, res in results.items():
        ceiling = res["health"]["rps"]
        for key, v in res.items():
            label = "GET /health" if key == "health" else f"mixed, {key.split('-')[1]} users"
            cpu = f"{v['cpu_api_ms']:.2f} {v['cpu_db_ms']:.2f} {v['cpu_locust_ms']:.2f}"
            print(
                f"{backend:<11} {label:<16} {v['rps']:>7.0f} {v['p50']:>7.0f} {v['p95']:>7.0f} {v['p99']:>7.0f} "
                f"{v['failures']:>6} {v['rps'] / ceiling:>9.0%}  {cpu:>34}  {v['runs_rps']}"
            )
        best, rps = best_within_slo(res)
        verdict = ""
        if backend == "postgresql":
            ok = rps >= TARGET_RPS
            met = met and ok
            verdict = f" -> {'PASS' if ok else 'MISS'} (target >= {TARGET_RPS:.0f} req/s at p95 <= 100 ms)"
        print(
            f"{backend:<11} best sustained with p95 <= {TARGET_P95_MS:.0f} ms: "
            f"{rps:.0f} req/s ({best or 'no level'}){verdict}"
        )
        if best:
            v = res[best]
            total = v["cpu_api_ms"] + v["cpu_db_ms"] + v["cpu_locust_ms"]
            print(
                f"{'':<11} at that level each request costs {total:.2f} ms of CPU (API {v['cpu_api_ms']:.2f}, "
                f"database {v['cpu_db_ms']:.2f}, Locust {v['cpu_locust_ms']:.2f}): 2 idle cores would "
                f"allow about {2000 / total:.0f} req/s"
            )
    return met


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accounts", type=int, default=10_000, help="generated accounts (x3 contacts, x2 deals, x1 cases)")
    p.add_argument("--users", default="8,16,24,32", help="virtual-user levels of the mixed load")
    p.add_argument("--duration", type=int, default=15, help="seconds per run")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--api-workers", type=int, default=2)
    p.add_argument("--locust-workers", type=int, default=0, help="0: one Locust process")
    p.add_argument("--pg-url", default=DEFAULT_PG)
    p.add_argument(
        "--no-search-index",
        action="store_true",
        help="PostgreSQL without the trigram search indexes of `crmkit serve index`",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = p.parse_args()
    if args.quick:
        args.accounts, args.users, args.duration, args.repeat = 500, "8", 5, 1
    args.users = [int(u) for u in str(args.users).split(",")]
    results: dict[str, dict[str, Any]] = {}
    try:
        for backend in args.backends.split(","):
            ctx = (
                sqlite_target(args.accounts)
                if backend == "sqlite"
                else pg_target(args.pg_url, args.accounts, not args.no_search_index)
            )
            with ctx as target:
                print(f"{backend}: seeded, measuring", flush=True)
                results[backend] = bench_backend(backend, target, args)
    except BenchError as exc:
        print(f"bench_api: {exc}", file=sys.stderr)
        return 2
    met = print_table(results, args)
    (OUT / "results.json").write_text(
        json.dumps({"args": {k: v for k, v in vars(args).items()}, "results": results}, indent=2), encoding="utf-8"
    )
    failures = sum(v["failures"] for r in results.values() for v in r.values())
    if failures:
        print(f"bench_api: {failures} requests failed: the figures do not count", file=sys.stderr)
        return 1
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
