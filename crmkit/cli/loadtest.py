"""``crmkit loadtest``: run a load profile against the reference API and gate on its thresholds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from crmkit.cli.options import json_option, target_option


@click.group()
def loadtest() -> None:
    """Load tests with Locust: personas, profiles in YAML, SLO thresholds that gate a release.

    \b
    Example:
      crmkit loadtest run --profile smoke --target sqlite:///crm.db
      crmkit loadtest run --profile pilot --target sqlite:///crm.db --workers 2 --report reports/pilot
      crmkit loadtest check --profile pilot
    """


@loadtest.command()
@click.option("--profile", required=True, metavar="NAME|FILE", help="configs/loadtest/NAME.yaml, or a file.")
@target_option
@click.option(
    "--host",
    default=None,
    metavar="URL",
    help="A running API (loopback only). Default: start one on loopback over --target for the run.",
)
@click.option("--users", default=None, type=click.IntRange(1, 100_000), help="Peak users (stages scale to it).")
@click.option("--duration", default=None, metavar="60s", help="Total duration (stages scale to it).")
@click.option(
    "--workers",
    default=0,
    show_default=True,
    type=click.IntRange(0, 64),
    help="Locust worker processes on this machine (0: one process, no master).",
)
@click.option(
    "--remote-workers",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1024),
    help="Also wait for this many `crmkit loadtest worker` processes from other machines.",
)
@click.option(
    "--master-bind",
    default="127.0.0.1",
    show_default=True,
    help="Address the Locust master listens on (beyond loopback only with --remote-workers).",
)
@click.option(
    "--master-port",
    default=None,
    type=click.IntRange(1, 65535),
    help="Port of the Locust master (needed with --remote-workers).",
)
@click.option(
    "--api-workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="uvicorn workers of the API this command starts (without --host).",
)
@click.option(
    "--report",
    "report_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for Locust's CSV and HTML and summary.json (default: reports/loadtest/PROFILE-TIME).",
)
@json_option
def run(
    profile: str,
    target: str,
    host: str | None,
    users: int | None,
    duration: str | None,
    workers: int,
    remote_workers: int,
    master_bind: str,
    master_port: int | None,
    api_workers: int,
    report_dir: Path | None,
    as_json: bool,
) -> None:
    """Run a load profile headless and judge every threshold.

    Ids, search terms and tokens come from TARGET; each virtual user works on records of
    its own.  Without --host the reference API is started on loopback for the run.
    Exit codes: 0 every threshold held; 1 one failed (or the run was aborted on a breach);
    2 a usage, profile or connection error.

    \b
    Example:
      crmkit loadtest run --profile smoke --target sqlite:///crm.db
      crmkit loadtest run --profile pilot --target sqlite:///crm.db --users 40 --duration 2m --workers 2
      crmkit loadtest run --profile smoke --target sqlite:///crm.db --host http://127.0.0.1:8000 --json
    """
    from crmkit.loadtest.runner import Options
    from crmkit.loadtest.runner import run as run_profile

    result = run_profile(
        Options(
            profile=profile,
            target=target,
            host=host,
            users=users,
            duration=duration,
            workers=workers,
            report_dir=report_dir,
            api_workers=api_workers,
            master_bind=master_bind,
            remote_workers=remote_workers,
            master_port=master_port,
        )
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        _print(result)
    sys.exit(result.exit_code)


def _print(result: object) -> None:
    from crmkit.loadtest.runner import Result
    from crmkit.loadtest.thresholds import fmt

    assert isinstance(result, Result)
    con = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 140)
    g = Table(
        title=f"Load test {result.profile} on {result.host}: {result.elapsed_s:.0f} s, "
        f"peak {result.plan['peak_users']} users, {result.plan['workers']} worker(s)"
    )
    for col in ("group", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms"):
        g.add_column(col, justify="left" if col == "group" else "right")
    for name, s in result.groups.items():
        if s["requests"]:
            g.add_row(
                name,
                str(s["requests"]),
                f"{s['error_rate'] * 100:.2f}%",
                f"{s['rps']:.1f}",
                *(f"{s[p]:.0f}" for p in ("p50", "p95", "p99")),
            )
    con.print(g)
    t = Table(title="Thresholds")
    for col in ("threshold", "limit", "measured", "result"):
        t.add_column(col)
    for c in result.checks:
        op = ">=" if c.metric == "min_rps" else "<="
        shown = "n/a" if c.measured is None else fmt(c.metric, c.measured)
        verdict = "[green]pass[/green]" if c.passed else f"[red]FAIL[/red] {c.note}".rstrip()
        t.add_row(f"{c.group}.{c.metric}", f"{op} {fmt(c.metric, c.limit)}", shown, verdict)
    con.print(t)
    if result.idle_users:
        con.print(
            f"[yellow]{result.idle_users} virtual user(s) found no data slot of their own and only waited[/yellow]"
        )
    if result.aborted:
        con.print(f"[red]aborted at {result.aborted['at_s']} s:[/red] {result.aborted['reason']}")
    colour = "green" if result.passed else "red"
    con.print(
        f"result: [{colour}]{'passed' if result.passed else 'failed'}[/{colour}] · reports in {result.report_dir}"
    )


@loadtest.command()
@click.option("--profile", required=True, metavar="NAME|FILE", help="configs/loadtest/NAME.yaml, or a file.")
def check(profile: str) -> None:
    """Validate a load profile without running it: stages, personas, thresholds.

    \b
    Example:
      crmkit loadtest check --profile pilot
    """
    from crmkit.loadtest.plan import Overrides, base_plan
    from crmkit.loadtest.profile import load_profile

    prof, path = load_profile(profile)
    plan = base_plan(prof, path.stem, Overrides(), 1)
    stages = ", ".join(f"{s['kind']} {s['duration']:g}s to {s['users']}" for s in plan["stages"])
    click.echo(
        f"{path}: valid; {plan['duration_s']:g} s, peak {plan['peak_users']} users; stages: {stages}; "
        f"{sum(len(v) for v in plan['thresholds'].values())} thresholds"
    )


@loadtest.command()
@click.option("--master-host", required=True, help="Address of the machine running `crmkit loadtest run`.")
@click.option("--master-port", required=True, type=click.IntRange(1, 65535), help="Its --master-port.")
def worker(master_host: str, master_port: int) -> None:
    """Run one Locust worker for a master on another machine (it sends the plan and data).

    The load goes to the master's --host, which must be a loopback address here too:
    forward the API to this machine first (e.g. ssh -L 8000:127.0.0.1:8000 api-host).

    \b
    Example:
      crmkit loadtest worker --master-host 10.0.0.5 --master-port 5557
    """
    from crmkit.loadtest.runner import LOCUSTFILE

    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--worker",
        "--master-host",
        master_host,
        "--master-port",
        str(master_port),
        "--loglevel",
        "WARNING",
    ]
    sys.exit(subprocess.call(cmd))
