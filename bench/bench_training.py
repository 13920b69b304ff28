#!/usr/bin/env python3
"""Benchmark: generate 1,000,000 contacts with their accounts, opportunities and activities.

Target (issue 5): at most 60 s on this machine, CSV output written.  Baseline measured in the
same run: the naive way, one Faker call per field per row, on a sample of contacts, scaled
to the full size.

    .venv/bin/python bench/bench_training.py                       # the issue's sizes, 3 repetitions
    .venv/bin/python bench/bench_training.py --contacts 100000 --reps 1
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crmkit.training.generate import generate  # noqa: E402
from crmkit.training.output import write_dir  # noqa: E402
from crmkit.training.scenario import Scenario  # noqa: E402

OUT = ROOT / "build" / "bench" / "training"


def scenario(args: argparse.Namespace) -> Scenario:
    parts = 4
    deps = [
        dict(
            code=f"D{i}",
            name=f"Region {i}",
            users=dict(manager=2, sales=40, service=10),
            accounts=args.accounts // parts,
            contacts=args.contacts // parts,
            opportunities=args.opportunities // parts,
            activities=args.activities // parts,
        )
        for i in range(parts)
    ]
    return Scenario.model_validate(
        dict(
            version=1,
            name="bench",
            locale=args.locale,
            dates=dict(start="2022-01-01", end="2024-12-31"),
            departments=deps,
            unique=["accounts.name"] if args.locale != "en_US" else ["contacts.email"],
        )
    )


def naive_contacts(n: int, locale: str) -> float:
    """Seconds for n contacts made the naive way: a Faker call per field per row."""
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(1)
    start = time.perf_counter()
    rows = [
        (
            fake.first_name(),
            fake.last_name(),
            fake.email(),
            fake.phone_number(),
            fake.phone_number(),
            fake.job(),
            fake.street_address(),
            fake.city(),
            fake.date_of_birth(),
            fake.date_between("-3y"),
        )
        for _ in range(n)
    ]
    assert len(rows) == n
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contacts", type=int, default=1_000_000)
    p.add_argument("--accounts", type=int, default=200_000)
    p.add_argument("--opportunities", type=int, default=300_000)
    p.add_argument("--activities", type=int, default=1_000_000)
    p.add_argument("--locale", default="en_US", choices=["en_US", "zh_CN", "de_DE"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--baseline-rows", type=int, default=20_000, help="contacts the naive baseline makes")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run (bench/run.py --quick)")
    args = p.parse_args()
    if args.quick:
        args.contacts, args.accounts, args.opportunities, args.activities = 50_000, 10_000, 15_000, 50_000
        args.reps, args.baseline_rows = 1, 2_000
    s = scenario(args)
    gen, wrt, total = [], [], []
    for rep in range(args.reps):
        shutil.rmtree(OUT, ignore_errors=True)
        t0 = time.perf_counter()
        world = generate(s, rep + 1)
        t1 = time.perf_counter()
        write_dir(world, OUT)
        t2 = time.perf_counter()
        gen.append(t1 - t0)
        wrt.append(t2 - t1)
        total.append(t2 - t0)
        counts = world.counts()
    size = sum(f.stat().st_size for f in OUT.iterdir()) / 1e6
    naive = naive_contacts(args.baseline_rows, args.locale)
    naive_full = naive * args.contacts / args.baseline_rows
    med = statistics.median(total)
    print(
        f"training generate, {args.locale}: "
        + ", ".join(
            f"{k} {v:,}" for k, v in counts.items() if k in ("accounts", "contacts", "opportunities", "activities")
        )
    )
    print(f"{'figure':<52}{'median s':>10}{'runs':>30}")
    print(
        f"{'generate (column-wise, numpy + polars)':<52}{statistics.median(gen):>10.2f}"
        f"{' '.join(f'{x:.2f}' for x in gen):>30}"
    )
    print(
        f"{'write CSV (' + f'{size:,.0f} MB' + ')':<52}{statistics.median(wrt):>10.2f}"
        f"{' '.join(f'{x:.2f}' for x in wrt):>30}"
    )
    print(f"{'total':<52}{med:>10.2f}{' '.join(f'{x:.2f}' for x in total):>30}")
    print(
        f"{'baseline: Faker per field per row, contacts only':<52}{naive_full:>10.1f}"
        f"{f'(measured {naive:.2f} s for {args.baseline_rows:,})':>30}"
    )
    print(f"speed-up over the baseline (contacts alone vs everything): {naive_full / med:.1f}x")
    target = 60.0 * args.contacts / 1_000_000
    print(f"target <= {target:.0f} s: {'met' if med <= target else 'MISSED'} ({med:.1f} s)")


if __name__ == "__main__":
    main()
