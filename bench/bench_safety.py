#!/usr/bin/env python3
"""Benchmark: what checkpoints and before-images cost (issue 3: at most 15%).

On the migration benchmark's data (bench_migrate.py generates it: 1,000,000 legacy contacts
and their accounts), into SQLite:

* the first load, with the safety net (a checkpoint per batch) and without;
* a delta run in which a fifth of the contacts changed, with the safety net (checkpoints
  and a before-image of every updated row, kept for rollback) and without, each from a
  copy of the same loaded database.

Prints medians and the overhead ratios against the 1.15 target.

    .venv/bin/python bench/bench_safety.py                 # 1,000,000 rows, 3 repeats
    .venv/bin/python bench/bench_safety.py --rows 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_migrate

from crmkit.migrate.pipeline.result import Options
from crmkit.migrate.pipeline.run import run

CHANGED_SHARE = 0.2


def timed(mapping: Path, target: str, safety: bool) -> float:
    t = time.perf_counter()
    result = run(mapping, Options(target=target, safety=safety, max_rejects="100%"))
    assert result.status == "succeeded", result.status
    return time.perf_counter() - t


def changed_copy(ds: bench_migrate.Dataset, out: Path) -> Path:
    """The same estate with a fifth of the contacts' notes changed (every other column as is)."""
    out.mkdir(parents=True, exist_ok=True)
    frame = pl.read_csv(ds.contacts_csv, infer_schema=False)
    step = int(1 / CHANGED_SHARE)
    frame = (
        frame.with_row_index("__i")
        .with_columns(
            pl.when(pl.col("__i") % step == 0)
            .then(pl.concat_str([pl.col("备注").fill_null(""), pl.lit(" (更新)")]))
            .otherwise(pl.col("备注"))
            .alias("备注")
        )
        .drop("__i")
    )
    frame.write_csv(out / "contacts.csv")
    shutil.copy(ds.accounts_csv, out / "accounts.csv")
    shutil.copy(ds.mapping, out / ds.mapping.name)
    return out / ds.mapping.name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20,000 rows, 1 repeat")
    args = ap.parse_args(argv)
    rows, repeat = (20_000, 1) if args.quick else (args.rows, args.repeat)
    cfg = bench_migrate.parse_args(["--rows", str(rows), "--no-pg"] + (["--quick"] if args.quick else []))
    ds = bench_migrate.generate(cfg)
    work = cfg.out / f"safety-{rows}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    delta_mapping = changed_copy(ds, work / "changed")
    base = work / "base.db"
    timed(ds.mapping, f"sqlite:///{base}", safety=True)
    times: dict[str, list[float]] = {k: [] for k in ("load_on", "load_off", "delta_on", "delta_off")}
    for i in range(repeat):
        for safety in (True, False):
            tag = "on" if safety else "off"
            times[f"load_{tag}"].append(timed(ds.mapping, f"sqlite:///{work / f'load-{tag}-{i}.db'}", safety))
            copy = work / f"delta-{tag}-{i}.db"
            shutil.copy(base, copy)
            times[f"delta_{tag}"].append(timed(delta_mapping, f"sqlite:///{copy}", safety))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nsafety net cost, {rows:,} contacts, SQLite, median of {repeat} ({bench_migrate._loadavg()})")
    print(f"{'run':<34}{'with':>9}{'without':>10}{'ratio':>8}  target ≤ 1.15")
    ok = True
    for what, label in (
        ("load", "first load (checkpoints)"),
        ("delta", f"delta, {CHANGED_SHARE:.0%} updated (+ before-images)"),
    ):
        ratio = med[f"{what}_on"] / med[f"{what}_off"]
        ok &= ratio <= 1.15
        print(
            f"{label:<34}{med[f'{what}_on']:>8.2f}s{med[f'{what}_off']:>9.2f}s{ratio:>8.2f}  "
            f"{'PASS' if ratio <= 1.15 else 'MISS'}"
        )
    print("runs:", {k: [round(x, 2) for x in v] for k, v in times.items()})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
