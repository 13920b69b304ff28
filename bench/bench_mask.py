"""Masking benchmark: a generated world of N contacts (+ related rows) in PostgreSQL, masked
into SQLite by `crmkit training mask` in a child process; wall time and peak memory (RSS).

    .venv/bin/python bench/bench_mask.py --contacts 1000000 --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Issue 23's target: 1M contacts in at most 60 s and 2 GB (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
CRMKIT = [sys.executable, "-m", "crmkit"]


def scenario(tmp: Path, contacts: int) -> Path:
    doc = yaml.safe_load((ROOT / "configs" / "training" / "sales-en.yaml").read_text(encoding="utf-8"))
    total = sum(d.get("contacts", 0) for d in doc["departments"])
    f = contacts / total
    for d in doc["departments"]:
        for k, v in d.items():
            if isinstance(v, int):
                d[k] = int(v * f)
    path = tmp / "scenario.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    name = f"crmkit_bench_mask_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    src = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "CRMKIT_MASK_SALT": "bench-salt-0123456789"}
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            t0 = time.perf_counter()
            gen = [*CRMKIT, "training", "generate", "--scenario", str(scenario(tmp, args.contacts)), "--seed", "1"]
            subprocess.run([*gen, "--target", src], check=True, env=env, stdout=subprocess.DEVNULL)
            print(f"generate: {time.perf_counter() - t0:.1f} s", flush=True)
            rules = str(ROOT / "configs" / "training" / "mask.yaml")
            t0 = time.perf_counter()
            argv = [*CRMKIT, "training", "mask", "--source", src, "--target", f"sqlite:///{tmp / 'm.db'}"]
            child = subprocess.Popen([*argv, "--rules", rules], env=env, stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the generator's
            wall = time.perf_counter() - t0
            assert status == 0, f"mask failed ({status})"
            peak = usage.ru_maxrss / 1024
            load = os.getloadavg()[0]
            print(
                f"mask {args.contacts:,} contacts PostgreSQL → SQLite: {wall:.1f} s, peak RSS {peak:.0f} MiB, load {load:.1f}"
            )
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
