"""Fault injection for the safety tests: die, stall or lose the connection at named points.

Set ``CRMKIT_FAULTS`` to a comma-separated list of ``ACTION@POINT#N`` (the N-th time the run
passes POINT).  Actions: ``kill`` (SIGKILL this process), ``sleep=SECONDS``, ``pgterm``
(terminate this run's PostgreSQL backend from a second connection, as a dropped connection
would).  Unset, a point costs one dictionary lookup.  The points are listed in POINTS.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Any

POINTS = (
    "run.opened",
    "feed.start",
    "insert.before_batch",
    "insert.after_rows",
    "insert.after_idmap",
    "insert.before_commit",
    "insert.after_commit",
    "update.after_images",
    "update.before_commit",
    "reject.before_commit",
    "vanish.before_commit",
    "run.before_close",
)

_seen: Counter[str] = Counter()


def _plan() -> list[tuple[str, str, int]]:
    spec = os.environ.get("CRMKIT_FAULTS", "").strip()
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        action, _, rest = part.partition("@")
        point, _, n = rest.partition("#")
        out.append((action, point, int(n or 1)))
    return out


def point(name: str, loader: Any = None) -> None:
    """Mark that the run passes ``name``; act if CRMKIT_FAULTS says so."""
    if "CRMKIT_FAULTS" not in os.environ:
        return
    _seen[name] += 1
    for action, where, n in _plan():
        if where == name and _seen[name] == n:
            _act(action, loader)


def _act(action: str, loader: Any) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("sleep="):
        time.sleep(float(action.split("=", 1)[1]))
    elif action == "pgterm" and loader is not None:
        loader.terminate_backend()
