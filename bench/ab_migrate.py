#!/usr/bin/env python3
"""A/B: the same ``crmkit migrate run`` from two checkouts, alternated, on the benchmark's data.

On this noisy 2-core host the floors themselves move by 30% within an hour, so a change to
the engine is judged by runs of both engines interleaved in the same minutes (ABBA order),
not by two benchmark runs an hour apart.  Both checkouts run with this project's virtualenv;
``PYTHONPATH`` points the interpreter at the checkout under test.

    git worktree add /tmp/base main                       # the engine to compare against
    .venv/bin/python bench/bench_migrate.py --no-pg --repeat 1   # makes the data once
    .venv/bin/python bench/ab_migrate.py /tmp/base . --repeat 4
    .venv/bin/python bench/ab_migrate.py /tmp/base . --pg postgresql://postgres@127.0.0.1/postgres

Prints, per checkout, the median wall and CPU (user + sys) seconds of the CLI process (with
``--pg``, into a fresh PostgreSQL database per run on that server; the server's own CPU is
not in the CLI's figure, the wall is what to judge).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "build" / "bench" / "migrate" / "data-1000000" / "bench-contacts.yaml"


def one_run(tree: Path, mapping: Path, pg: str | None = None) -> tuple[float, float]:
    if pg is not None:
        from bench_migrate import fresh_pg

        with fresh_pg(pg, "ab") as url:
            return _timed(tree, mapping, url)
    work = Path(tempfile.mkdtemp(dir=ROOT / "build"))
    try:
        return _timed(tree, mapping, f"sqlite:///{work / 'crm.db'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _timed(tree: Path, mapping: Path, target: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``crmkit migrate run`` of ``tree``'s engine into ``target``."""
    from linktree import link_tree

    path = link_tree(tree, ROOT / "build" / "ab-trees" / hashlib.sha1(str(tree).encode()).hexdigest()[:12])
    cmd = [sys.executable, "-m", "crmkit", "migrate", "run", str(mapping), "--target", target, "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=tree, env=dict(os.environ, PYTHONPATH=str(path)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if status != 0:
        raise SystemExit(f"{tree}: crmkit migrate run failed: {err.strip().splitlines()[-1:] or status}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, help="checkout A (e.g. a worktree of main)")
    p.add_argument("b", type=Path, help="checkout B (e.g. .)")
    p.add_argument("--repeat", type=int, default=4, help="runs of each, alternated (default 4)")
    p.add_argument("--pg", metavar="URL", help="into PostgreSQL: a fresh database per run on this server")
    p.add_argument("--mapping", type=Path, default=DATA, help="default: the 1M-row benchmark's mapping")
    args = p.parse_args()
    if not args.mapping.exists():
        print(f"{args.mapping} not found: run bench/bench_migrate.py once to generate it", file=sys.stderr)
        return 2
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in trees}
    for i in range(args.repeat):
        for k in ("A", "B") if i % 2 == 0 else ("B", "A"):
            runs[k].append(one_run(trees[k], args.mapping.resolve(), args.pg))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for k, tree in trees.items():
        walls = [w for w, _ in runs[k]]
        cpu = statistics.median(c for _, c in runs[k])
        print(
            f"{k} {tree}: wall median {statistics.median(walls):.2f} s, cpu median {cpu:.2f} s "
            f"(walls {' / '.join(f'{w:.2f}' for w in walls)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
