"""Run hooks: what a migration run calls at its named points.

The default :class:`RunHooks` does nothing.  The safety tests install :class:`FaultHooks`
(in-process, in ``Options.hooks``; in a subprocess with the hidden ``crmkit migrate run
--faults SPEC``) to die, stall or lose the connection at a point.  A spec is a
comma-separated list of ``ACTION@POINT#N`` (the N-th time the run passes POINT).  Actions:
``kill`` (SIGKILL this process), ``sleep=SECONDS``, ``pgterm`` (terminate this run's
PostgreSQL backend from a second connection, as a dropped connection would).  The points
are the :data:`FaultPoint` literal; mypy checks every name the code passes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from crmkit.errors import ConfigError

if TYPE_CHECKING:
    from crmkit.db.loader import Loader

FaultPoint = Literal[
    "run.open",
    "indexes.repair",
    "run.opened",
    "feed.start",
    "indexes.drop",
    "insert.ids",
    "insert.before_batch",
    "insert.after_rows",
    "insert.after_idmap",
    "insert.before_commit",
    "insert.after_commit",
    "indexes.create",
    "update.after_images",
    "update.before_commit",
    "reject.before_commit",
    "vanish.before_commit",
    "merge.before_commit",
    "run.before_close",
    "run.close",
]

#: every point, in the order a run passes them
POINTS: tuple[FaultPoint, ...] = get_args(FaultPoint)
ACTIONS = ("kill", "sleep=SECONDS", "pgterm")


class RunHooks:
    """Called at every named point of a run; does nothing (production)."""

    def point(self, name: FaultPoint, loader: Loader | None = None) -> None:
        """The run passes ``name`` on ``loader``'s connection."""


@dataclass(frozen=True)
class Fault:
    action: str
    point: FaultPoint
    n: int


class FaultHooks(RunHooks):
    """Act on each :class:`Fault` the N-th time the run passes its point."""

    def __init__(self, faults: list[Fault]) -> None:
        self.faults = faults
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()  # points are passed on the bulk path's second connection too

    def point(self, name: FaultPoint, loader: Loader | None = None) -> None:
        with self._lock:
            self.seen[name] += 1
            due = [f.action for f in self.faults if f.point == name and f.n == self.seen[name]]
        for action in due:
            _act(action, loader)


def parse_faults(spec: str) -> RunHooks:
    """The hooks of a ``ACTION@POINT#N,...`` spec; an empty spec gives the no-op hooks."""
    faults = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        action, _, rest = part.partition("@")
        where, _, n = rest.partition("#")
        if where not in POINTS:
            raise ConfigError(f"fault {part!r}: unknown point {where!r}; use one of {', '.join(POINTS)}")
        if action not in ("kill", "pgterm") and not action.startswith("sleep="):
            raise ConfigError(f"fault {part!r}: unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        if not (n or "1").isdigit():
            raise ConfigError(f"fault {part!r}: the count after # must be a whole number, e.g. kill@{where}#2")
        faults.append(Fault(action, where, int(n or 1)))  # type: ignore[arg-type]  # checked against POINTS
    return FaultHooks(faults) if faults else RunHooks()


def _act(action: str, loader: Loader | None) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("sleep="):
        time.sleep(float(action.split("=", 1)[1]))
    elif action == "pgterm" and loader is not None:
        loader.terminate_backend()
