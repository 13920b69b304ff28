"""``crmkit loadtest run``: prepare data and tokens, start the API if needed, run Locust, judge.

Locust runs in processes of its own (``python -m locust``): it patches everything with gevent
on import, so it never shares a process with crmkit or a database connection.  Every process
this module starts is bounded in time and is stopped, whatever happens, before it returns.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmkit.errors import CrmkitError
from crmkit.loadtest import data
from crmkit.loadtest import plan as planning
from crmkit.loadtest.profile import load_profile, parse_seconds
from crmkit.loadtest.thresholds import Check, evaluate

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
#: seconds allowed on top of the profile's duration for processes to start and stop
STARTUP_S, STOP_TIMEOUT_S, GRACE_S = 45.0, 5.0, 30.0
#: final CSVs the locustfile writes beside its figures (suffix) -> the report file each replaces
FINAL_CSVS = {".stats.csv": "locust_stats.csv", ".failures.csv": "locust_failures.csv"}


class LoadTestError(CrmkitError):
    """The load test could not run: bad option, API or Locust failed to start, no figures."""


@dataclass
class Options:
    profile: str
    target: str
    host: str | None = None
    users: int | None = None
    duration: str | None = None
    workers: int = 0
    report_dir: Path | None = None
    api_workers: int = 1
    master_bind: str = "127.0.0.1"
    remote_workers: int = 0
    master_port: int | None = None


@dataclass
class Result:
    profile: str
    host: str
    target: str
    report_dir: str
    plan: dict[str, Any]
    elapsed_s: float
    groups: dict[str, dict[str, Any]]
    checks: list[Check]
    aborted: dict[str, Any] | None
    idle_users: int = 0
    files: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.aborted and all(c.passed for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        return {
            "profile": self.profile,
            "host": self.host,
            "target": self.target,
            "passed": self.passed,
            "aborted": self.aborted,
            "elapsed_s": self.elapsed_s,
            "planned_s": p["duration_s"],
            "peak_users": p["peak_users"],
            "workers": p["workers"],
            "personas": p["personas"],
            "stages": p["stages"],
            "idle_users": self.idle_users,
            "groups": self.groups,
            "thresholds": [c.to_json() for c in self.checks],
            "report_dir": self.report_dir,
            "files": self.files,
        }


def run(opts: Options) -> Result:
    """Run a load profile end to end; the result says whether every threshold held."""
    from crmkit.api.server import background_api, loopback_url
    from crmkit.db.url import mask_url

    host = loopback_url(opts.host) if opts.host else None
    _check_options(opts)
    profile, path = load_profile(opts.profile)
    over = planning.Overrides(opts.users, _duration(opts.duration))
    workers = opts.workers + opts.remote_workers
    plan = planning.base_plan(profile, path.stem, over, workers)
    report_dir = opts.report_dir or Path("reports") / "loadtest" / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    with ExitStack() as stack:
        private = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crmkit-loadtest-")))
        plan["slots"] = _prepare(opts.target, profile, plan, workers, stack)
        if host is None:
            host = stack.enter_context(background_api(opts.target, opts.api_workers, private / "api.log"))
        report_dir.mkdir(parents=True, exist_ok=True)
        plan_file = private / "plan.json"
        plan_file.write_text(json.dumps(plan), encoding="utf-8")
        os.chmod(plan_file, 0o600)
        outcome = _locust(opts, host, plan, plan_file, private / "groups.json", report_dir)
    plan.pop("slots", None)
    checks = evaluate(plan["thresholds"], outcome["groups"])
    result = Result(
        path.stem,
        host,
        mask_url(opts.target),
        str(report_dir),
        plan,
        outcome["elapsed_s"],
        outcome["groups"],
        checks,
        outcome["aborted"],
        int(outcome.get("idle_users", 0)),
        _files(report_dir),
    )
    (report_dir / "summary.json").write_text(
        json.dumps(result.to_json(), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    result.files["summary"] = str(report_dir / "summary.json")
    return result


def _check_options(opts: Options) -> None:
    if opts.workers < 0 or opts.remote_workers < 0:
        raise LoadTestError("--workers cannot be negative")
    if opts.api_workers < 1:
        raise LoadTestError("--api-workers must be at least 1")
    if opts.remote_workers and not opts.master_port:
        raise LoadTestError("--remote-workers needs --master-port, so that the workers know where to connect")
    from crmkit.api.server import is_loopback

    if not opts.remote_workers and not is_loopback(opts.master_bind):
        raise LoadTestError("--master-bind beyond loopback is only for --remote-workers")


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        seconds = parse_seconds(text)
    except ValueError as exc:
        raise LoadTestError(f"--duration: {exc}") from None
    if not 1 <= seconds <= 24 * 3600:
        raise LoadTestError(f"--duration {text}: between 1s and 24h")
    return seconds


def _prepare(
    target: str, profile: Any, plan: dict[str, Any], workers: int, stack: ExitStack
) -> dict[str, list[dict[str, Any]]]:
    """Read the target, partition its records into slots, mint tokens (revoked on the way out)."""
    from crmkit.api import auth
    from crmkit.api.db import make_engine
    from crmkit.api.server import prepare_target

    prepare_target(target)
    engine = make_engine(target, pool_size=1)
    stack.callback(engine.dispose)
    needed = planning.slots_needed(profile, plan["peak_users"], max(1, workers))
    slots = data.build_slots(data.read_estate(engine), needed)
    label = f"loadtest-{uuid.uuid4().hex[:12]}"
    data.mint_tokens(engine, slots, label, plan["duration_s"] + STARTUP_S + GRACE_S + 300)
    stack.callback(auth.revoke, engine, None, label)
    return slots


def _locust(
    opts: Options, host: str, plan: dict[str, Any], plan_file: Path, out: Path, report_dir: Path
) -> dict[str, Any]:
    """Run Locust headless (one process, or a master and workers); returns the group figures."""
    from crmkit.api.server import free_port, stop_processes

    base = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--host",
        host,
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        f"{STOP_TIMEOUT_S:.0f}s",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("CRMKIT_TARGET", "CRMKIT_API_TARGET")}
    master_env = {**env, "CRMKIT_LOADTEST_PLAN": str(plan_file), "CRMKIT_LOADTEST_OUT": str(out)}
    reports = [
        "--headless",
        "--csv",
        str(report_dir / "locust"),
        "--html",
        str(report_dir / "locust.html"),
        "--only-summary",
    ]
    n_workers = opts.workers + opts.remote_workers
    log = (report_dir / "locust.log").open("w", encoding="utf-8")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if n_workers == 0:
            procs.append(_spawn(base + reports, master_env, log))
        else:
            port = opts.master_port or free_port()
            procs.append(
                _spawn(
                    base
                    + reports
                    + [
                        "--master",
                        "--expect-workers",
                        str(n_workers),
                        "--master-bind-host",
                        opts.master_bind,
                        "--master-bind-port",
                        str(port),
                    ],
                    master_env,
                    log,
                )
            )
            for _ in range(opts.workers):
                procs.append(
                    _spawn(base + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)], env, log)
                )
        _wait(procs, plan["duration_s"] + STARTUP_S + STOP_TIMEOUT_S + GRACE_S, report_dir / "locust.log")
    finally:
        stop_processes(procs)
        log.close()
    if not out.exists():
        raise LoadTestError(f"Locust ended without figures: see {report_dir / 'locust.log'}")
    for suffix, name in FINAL_CSVS.items():  # the CSVs of the same moment as the figures
        final = out.with_name(out.name + suffix)
        if final.exists():
            shutil.move(final, report_dir / name)
    return json.loads(out.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _spawn(cmd: list[str], env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait(procs: list[subprocess.Popen[bytes]], bound_s: float, log_path: Path) -> None:
    """Wait for the master (first process); past ``bound_s`` everything is killed."""
    try:
        procs[0].wait(timeout=bound_s)
    except subprocess.TimeoutExpired:
        raise LoadTestError(
            f"the load test overran its bound of {bound_s:.0f} s and was stopped; see {log_path}"
        ) from None
    for p in procs[1:]:
        try:
            p.wait(timeout=STOP_TIMEOUT_S + 10)
        except subprocess.TimeoutExpired:
            pass


def _files(report_dir: Path) -> dict[str, str]:
    names = {
        "html": "locust.html",
        "stats_csv": "locust_stats.csv",
        "history_csv": "locust_stats_history.csv",
        "failures_csv": "locust_failures.csv",
        "log": "locust.log",
    }
    return {k: str(report_dir / v) for k, v in names.items() if (report_dir / v).exists()}
