"""One run of a mapping at a time per target.

The lock is a row in ``crmkit_locks`` naming the run, host and process.  A second run
refuses at once; a lock whose process is gone (a crashed run on this host) is taken over.
"""

from __future__ import annotations

import os
import socket

from crmkit.audit import now
from crmkit.db.loader import Loader
from crmkit.errors import CrmkitError


class LockedError(CrmkitError):
    """Another run of the same mapping holds the target."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(loader: Loader, mapping_name: str) -> None:
    """Take the lock for ``mapping_name`` or raise LockedError naming its holder."""
    host, pid = socket.gethostname(), os.getpid()
    loader.begin()
    try:
        held = loader.query("SELECT run_id, host, pid FROM crmkit_locks WHERE mapping_name = ?", (mapping_name,))
        if held.height:
            run_id, h_host, h_pid = held.row(0)
            if h_host != host or (_alive(int(h_pid)) and int(h_pid) != pid):
                raise LockedError(
                    f"mapping {mapping_name} is already running against this target (run {run_id}, "
                    f"pid {h_pid} on {h_host}); wait for it, or resume it with --resume once it has died"
                )
            loader.execute("DELETE FROM crmkit_locks WHERE mapping_name = ?", (mapping_name,))
        loader.execute(
            "INSERT INTO crmkit_locks (mapping_name, run_id, host, pid, acquired_at) VALUES (?, ?, ?, ?, ?)",
            (mapping_name, 0, host, pid, now().isoformat(sep=" ", timespec="seconds")),
        )
        loader.commit()
    except LockedError:
        loader.rollback()
        raise
    except Exception as exc:  # a concurrent acquire won the insert
        loader.rollback()
        raise LockedError(f"mapping {mapping_name} is being started by another process: {exc}") from None


def set_run(loader: Loader, mapping_name: str, run_id: int) -> None:
    loader.execute("UPDATE crmkit_locks SET run_id = ? WHERE mapping_name = ?", (run_id, mapping_name))


def release(loader: Loader, mapping_name: str) -> None:
    """Drop our lock (best effort: a dead connection leaves it for takeover)."""
    try:
        loader.begin()
        loader.execute("DELETE FROM crmkit_locks WHERE mapping_name = ? AND pid = ?", (mapping_name, os.getpid()))
        loader.commit()
    except Exception:
        pass
