#!/usr/bin/env python3
"""Run every benchmark in ``bench/`` (``bench_*.py``), each in a process of its own.

    .venv/bin/python bench/run.py              # full sizes (what `make bench` runs)
    .venv/bin/python bench/run.py --quick      # small sizes: a smoke run of every script
    .venv/bin/python bench/run.py migrate      # only the scripts whose name contains "migrate"

``--quick`` is passed through to every script.  The exit code is 0 when every script
exited 0, else 1 (a script's own exit code is shown in the summary).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def scripts(only: list[str]) -> list[Path]:
    """The benchmark scripts, by name, filtered by substrings when given."""
    found = sorted(BENCH.glob("bench_*.py"))
    return [p for p in found if not only or any(s in p.stem for s in only)]


def run_one(script: Path, quick: bool) -> tuple[int, float]:
    args = [sys.executable, str(script)] + (["--quick"] if quick else [])
    print(f"\n=== {script.name} {' '.join(args[2:])}".rstrip(), flush=True)
    t0 = time.perf_counter()
    code = subprocess.run(args, cwd=BENCH.parent).returncode
    return code, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run every bench/bench_*.py in turn.")
    p.add_argument("--quick", action="store_true", help="pass --quick to every script (small sizes)")
    p.add_argument("only", nargs="*", help="run only scripts whose name contains one of these")
    a = p.parse_args(argv)
    todo = scripts(a.only)
    if not todo:
        print(f"Error: no bench/bench_*.py matches {' '.join(a.only) or '(any)'}", file=sys.stderr)
        return 2
    results = [(s.name, *run_one(s, a.quick)) for s in todo]
    print("\n=== summary")
    for name, code, seconds in results:
        print(f"{'ok    ' if code == 0 else 'FAILED'} {name} (exit {code}, {seconds:.0f} s)")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
