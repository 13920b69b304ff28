"""Benchmark: validating contact rows with the standard rules (issue 8).

    .venv/bin/python bench/bench_validate.py [--rows 1000000] [--repeat 3] [--bad 0.02] [--quick]

Generates typed contact rows (as a migration's shaped frame has them; ``--bad`` of them
with one broken value) under build/bench/, then times, each ``--repeat`` times:

* baseline: pandera (polars backend) validating the same rows with two simple checks,
  the reference the issue quotes (about 0.1 s for 1,000,000 rows);
* ``check_frame`` with the polars engine (the default: what migrations and
  ``crmkit validate`` run) and with the pandera engine (the same rules as a pandera
  DataFrameModel, ``lazy=True``);
* the quality profile that ``crmkit validate`` adds on top.

Prints median and best seconds, rows per second (median), and ratios to the baseline.
Target: >= 2,000,000 rows/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crmkit.validate.engine import check_frame, evaluate  # noqa: E402
from crmkit.validate.profile import profile  # noqa: E402

TARGET = 2_000_000


def contacts(n: int, bad: float) -> pl.DataFrame:
    """``n`` typed contact rows; about ``bad`` of them break one rule each (column-wise, seeded)."""
    i = pl.int_range(0, n, dtype=pl.Int64)
    h = (i * 2654435761) % 1_000_003  # a cheap, deterministic scramble
    broken = (h % 10_000) < int(bad * 10_000)
    which = h % 7
    base = pl.select(
        (i + 2).alias("__row"),
        pl.format("C{}", i).alias("__key"),
        pl.format("First{} Last{}", h % 5000, h % 7919).alias("full_name"),
        pl.format("First{}", h % 5000).alias("first_name"),
        pl.format("Last{}", h % 7919).alias("last_name"),
        pl.format("user{}@example{}.com", i, h % 50).alias("email"),
        pl.format("+86138{}", (10_000_000 + h * 37 % 89_999_999).cast(pl.String).str.zfill(8)).alias("phone"),
        pl.when(h % 3 == 0).then(pl.format("+86139{}", (10_000_000 + h % 89_999_999).cast(pl.String))).alias("mobile"),
        pl.lit("Manager").alias("title"),
        pl.lit("Shanghai").alias("city"),
        pl.when(h % 4 == 0).then(pl.lit("US")).otherwise(pl.lit("CN")).alias("country"),
        (pl.lit(dt.date(1950, 1, 1)) + pl.duration(days=h % 20000)).alias("birth_date"),
        (pl.lit(dt.date(2015, 1, 1)) + pl.duration(days=h % 3000)).alias("created_at"),
        (h % 2 == 0).alias("consent_to_contact"),
        broken.alias("__broken"),
        which.alias("__which"),
    )
    b, w = pl.col("__broken"), pl.col("__which")
    return base.with_columns(
        pl.when(b & (w == 0)).then(pl.lit("not-an-email@")).otherwise(pl.col("email")).alias("email"),
        pl.when(b & (w == 1)).then(pl.lit("12345")).otherwise(pl.col("phone")).alias("phone"),
        pl.when(b & (w == 2)).then(pl.lit("XX")).otherwise(pl.col("country")).alias("country"),
        pl.when(b & (w == 3)).then(pl.lit(dt.date(2999, 1, 1))).otherwise(pl.col("birth_date")).alias("birth_date"),
        pl.when(b & (w == 4)).then(None).otherwise(pl.col("full_name")).alias("full_name"),
        pl.when(b & (w == 5)).then(pl.lit("C0")).otherwise(pl.col("__key")).alias("__key"),
    ).drop("__broken", "__which")


def data(n: int, bad: float) -> pl.DataFrame:
    path = ROOT / "build" / "bench" / f"validate_contacts_{n}_{bad}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        contacts(n, bad).write_parquet(path)
    return pl.read_parquet(path)


def pandera_two_checks(frame: pl.DataFrame) -> None:
    import pandera.polars as pa

    schema = pa.DataFrameSchema(
        {
            "email": pa.Column(pl.String, pa.Check.str_matches(r"@"), nullable=True),
            "birth_date": pa.Column(pl.Date, pa.Check.le(dt.date.today()), nullable=True),
        }
    )
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors:
        pass


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and best wall-clock seconds of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bad", type=float, default=0.02, help="share of rows with a broken value")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 20,000 rows, once")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.repeat = 20_000, 1
    frame = data(args.rows, args.bad)
    check_frame("contacts", frame.head(1000), None)  # warm up: imports, ISO code lists
    check_frame("contacts", frame.head(1000), None, engine="pandera")
    pandera_two_checks(frame.head(1000))
    out = check_frame("contacts", frame, None)
    ev = evaluate("contacts", frame, None)
    failing = int((out["__v_errors"].list.len() > 0).sum())
    print(
        f"{args.rows:,} contact rows, {len(ev.rules)} standard rules, {failing:,} rows with an error "
        f"({failing / max(args.rows, 1):.2%}); median of {args.repeat}"
    )
    cases = [
        ("baseline: pandera, 2 simple checks", lambda: pandera_two_checks(frame)),
        ("check_frame, polars engine", lambda: check_frame("contacts", frame, None)),
        ("check_frame, pandera engine", lambda: check_frame("contacts", frame, None, engine="pandera")),
        ("evaluate + quality profile", lambda: profile(evaluate("contacts", frame, None))),
    ]
    results = [(name, *timed(fn, args.repeat)) for name, fn in cases]
    base = results[0][1]
    print(f"{'case':<38} {'median s':>8} {'best s':>8} {'rows/s (median)':>16} {'x baseline':>10}")
    for name, med, best in results:
        print(f"{name:<38} {med:>8.3f} {best:>8.3f} {args.rows / med:>16,.0f} {med / base:>10.2f}")
    speed = args.rows / results[1][1]
    verdict = "met" if speed >= TARGET else "MISSED"
    if args.rows < 1_000_000:
        verdict = "not judged (fewer than 1,000,000 rows: fixed costs dominate)"
    print(f"target >= {TARGET:,} rows/s (median) with the polars engine: {verdict} ({speed:,.0f} rows/s)")


if __name__ == "__main__":
    main()
