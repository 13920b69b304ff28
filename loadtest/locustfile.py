"""The Locust side: personas, the profile's load shape, group figures, early abort.

Runs only inside Locust processes (``python -m locust -f loadtest/locustfile.py``), never
imported by crmkit itself: Locust patches the whole process with gevent.

The master (or the single local process) reads the plan from ``CRMKIT_LOADTEST_PLAN``;
workers ask the master for it over Locust's message channel, so a worker on another
machine needs nothing but the master's address.  Slot ``i`` of a persona belongs to worker
``i % workers``; within a worker a slot is held by one virtual user at a time.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import time
from collections import defaultdict
from typing import Any

import gevent
from gevent.event import Event
from locust import FastHttpUser, LoadTestShape, events
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, calculate_response_time_percentile

from crmkit.loadtest.groups import GROUPS, group_of
from crmkit.loadtest.personas import PERSONAS
from crmkit.loadtest.thresholds import first_breach
from crmkit.settings import Settings

PLAN_ENV = "CRMKIT_LOADTEST_PLAN"
OUT_ENV = "CRMKIT_LOADTEST_OUT"
log = logging.getLogger("crmkit.loadtest")
#: this Locust process's settings (the runner puts the plan and output paths in its environment)
SETTINGS = Settings.from_env()


def _read_plan() -> dict[str, Any] | None:
    path = SETTINGS.loadtest_plan
    if not path:
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)  # type: ignore[no-any-return]


PLAN = _read_plan()  # None on a worker until the master sends it
_ready = Event()
_free: dict[str, list[dict[str, Any]]] = {}
_run: dict[str, Any] = {"started": None, "stopped": None, "abort": None, "idle_users": 0}


def _install(plan: dict[str, Any], worker_index: int, workers: int) -> None:
    """Take this worker's share of the slots and let the virtual users start."""
    global PLAN
    PLAN = plan
    for persona, slots in plan["slots"].items():
        _free[persona] = [s for i, s in enumerate(slots) if i % workers == worker_index]
    _ready.set()


def _report_idle(environment: Any) -> None:
    """Count a virtual user that got no data slot (the summary reports them)."""
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.send_message("crmkit_idle", {"n": 1})
    else:
        _run["idle_users"] += 1


# --- virtual users ---------------------------------------------------------------------


class Persona(FastHttpUser):
    """A CRM user: holds one slot of test data for its lifetime, and its user's token."""

    abstract = True
    persona = ""
    network_timeout = 10.0
    connection_timeout = 5.0
    slot: Any = None  # the test data this virtual user holds (a dict), None while it has none
    think: tuple[float, float] = (1.0, 3.0)

    def wait_time(self) -> float:
        low, high = self.think
        return random.uniform(low, high)

    def on_start(self) -> None:
        if not _ready.wait(timeout=30):
            log.error("no plan from the master after 30 s; this virtual user only waits")
            self.slot = None
            _report_idle(self.environment)
            return
        assert PLAN is not None
        low, high = PLAN["personas"][self.persona]["think"]
        self.think = (float(low), float(high))
        pool = _free.get(self.persona, [])
        self.slot = pool.pop() if pool else None
        if self.slot is None:  # never shares: idle rather than touch another user's records
            log.warning("%s: no free data slot on this worker; this virtual user only waits", self.persona)
            _report_idle(self.environment)
            return
        self.client.auth_header = f"Bearer {self.slot['token']}"

    def on_stop(self) -> None:
        slot = getattr(self, "slot", None)
        if slot is not None:
            _free[self.persona].append(slot)
            self.slot = None

    def get(self, name: str, path: str) -> Any:
        return self.client.get(path, name=name)

    def term(self, kind: str) -> str:
        """A search term of the slot: ``account`` or ``contact``."""
        terms = self.slot[f"{kind}_terms"]
        return random.choice(terms) if terms else "a"


def _user_class(name: str) -> type[Persona]:
    """The Locust user class of a registered persona (its tasks and their weights)."""
    kind = PERSONAS.get(name)
    attrs = {"persona": name, "tasks": dict(kind.tasks), "__doc__": kind.doc, "__module__": __name__}
    return type(name.title().replace("_", "") + "Persona", (Persona,), attrs)


USER_CLASSES = {name: _user_class(name) for name in PERSONAS.names()}
# Locust collects every User class among the module's names: only the profile's personas, by weight
for _persona, _cls in USER_CLASSES.items():
    if PLAN is None or _persona in PLAN["personas"]:
        if PLAN is not None:
            _cls.weight = PLAN["personas"][_persona]["weight"]
        globals()[_cls.__name__] = _cls
del _persona, _cls


# --- the load shape --------------------------------------------------------------------


class ProfileShape(LoadTestShape):
    """The profile's stages; returns None (stop) once the last one is over."""

    def tick(self) -> tuple[int, float] | None:
        if PLAN is None:
            return None
        t = self.get_run_time()
        if _run["abort"]:
            return None
        for stage in PLAN["stages"]:
            if t < stage["duration"]:
                return int(stage["users"]), float(stage["spawn_rate"])
            t -= stage["duration"]
        return None


# --- figures per endpoint group --------------------------------------------------------


def group_stats(stats: Any, elapsed_s: float) -> dict[str, dict[str, Any]]:
    """Requests, errors, rate and percentiles of every endpoint group, merged over its requests."""
    merged: dict[str, dict[str, Any]] = {
        g: {"requests": 0, "failures": 0, "total_ms": 0.0, "max_ms": 0.0, "times": defaultdict(int)} for g in GROUPS
    }
    for entry in stats.entries.values():
        for group in (group_of(entry.name), "all"):
            g = merged.setdefault(
                group, {"requests": 0, "failures": 0, "total_ms": 0.0, "max_ms": 0.0, "times": defaultdict(int)}
            )
            g["requests"] += entry.num_requests
            g["failures"] += entry.num_failures
            g["total_ms"] += entry.total_response_time
            g["max_ms"] = max(g["max_ms"], entry.max_response_time)
            for ms, n in entry.response_times.items():
                g["times"][ms] += n
    return {name: _figures(g, elapsed_s) for name, g in merged.items()}


def _figures(g: dict[str, Any], elapsed_s: float) -> dict[str, Any]:
    n = g["requests"]
    pct = {
        f"p{int(p * 100)}": float(calculate_response_time_percentile(g["times"], n, p)) if n else None
        for p in (0.5, 0.95, 0.99)
    }
    return {
        "requests": n,
        "failures": g["failures"],
        "error_rate": g["failures"] / n if n else None,
        "rps": n / elapsed_s if elapsed_s > 0 else None,
        **pct,
        "avg_ms": g["total_ms"] / n if n else None,
        "max_ms": float(g["max_ms"]) if n else None,
    }


def _elapsed() -> float:
    start = _run["started"]
    return (_run["stopped"] or time.time()) - start if start else 0.0


def _watch(environment: Any) -> None:
    """Abort the run at the first breached threshold (after the warm-up)."""
    assert PLAN is not None and PLAN["abort"]
    gevent.sleep(PLAN["abort"]["after"])
    runner = environment.runner
    while runner.state not in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP):
        breach = first_breach(
            PLAN["thresholds"], group_stats(environment.stats, _elapsed()), PLAN["abort"]["min_requests"]
        )
        if breach:
            _run["abort"] = {"at_s": round(_elapsed(), 1), "check": breach.to_json(), "reason": breach.describe()}
            log.warning("aborting: %s", breach.describe())
            runner.quit()
            return
        gevent.sleep(1.0)


# --- wiring ----------------------------------------------------------------------------


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):

        def send_plan(environment: Any, msg: Any, **_: Any) -> None:
            runner.send_message("crmkit_plan", PLAN, client_id=msg.node_id)

        def count_idle(environment: Any, msg: Any, **_: Any) -> None:
            _run["idle_users"] += int((msg.data or {}).get("n", 1))

        runner.register_message("crmkit_plan_request", send_plan)
        runner.register_message("crmkit_idle", count_idle)
    elif isinstance(runner, WorkerRunner):

        def receive(environment: Any, msg: Any, **_: Any) -> None:
            _install(msg.data, runner.worker_index, int(msg.data["workers"]))

        runner.register_message("crmkit_plan", receive)
        gevent.spawn(_ask_for_plan, runner)
    elif PLAN is not None:
        _install(PLAN, 0, 1)


def _ask_for_plan(runner: Any) -> None:
    while runner.worker_index < 0:  # set when the master acknowledges this worker
        gevent.sleep(0.05)
    runner.send_message("crmkit_plan_request", {"index": runner.worker_index})


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or PLAN is None:
        return
    _run["started"] = time.time()
    if PLAN.get("abort") and PLAN.get("thresholds"):
        gevent.spawn(_watch, environment)


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kw: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner) and _run["started"] and not _run["stopped"]:
        _run["stopped"] = time.time()


@events.quitting.add_listener
def _on_quitting(environment: Any, **_kw: Any) -> None:
    out = SETTINGS.loadtest_out
    if isinstance(environment.runner, WorkerRunner) or not out or PLAN is None:
        return
    _run["stopped"] = _run["stopped"] or time.time()
    doc = {
        "elapsed_s": round(_elapsed(), 3),
        "groups": group_stats(environment.stats, _elapsed()),
        "aborted": _run["abort"],
        "workers": PLAN["workers"],
        "idle_users": _run["idle_users"],
        "user_count_at_end": environment.runner.user_count,
    }
    # Locust's own --csv files are rewritten once a second and closed without a last write, so
    # they can miss the final requests; these are taken from the same stats as the summary and
    # replace them (loadtest.runner.FINAL_CSVS)
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    for suffix, write in ((".stats.csv", writer.requests_csv), (".failures.csv", writer.failures_csv)):
        with open(out + suffix, "w", encoding="utf-8", newline="") as fh:
            write(csv.writer(fh))
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
