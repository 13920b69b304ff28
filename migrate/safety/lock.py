"""One run of a mapping at a time per target.

The lock is a row in ``crmkit_locks`` naming the run, host and process.  A second run
refuses at once; a lock whose process is gone (a crashed run on this host) is taken over.
"""

from __future__ import annotations

import os
import socket

from crmkit.errors import CrmkitError
from crmkit.migrate.safety.store import RunStore


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


def acquire(store: RunStore, mapping_name: str) -> None:
    """Take the lock for ``mapping_name`` or raise LockedError naming its holder."""
    host, pid = socket.gethostname(), os.getpid()
    loader = store.loader
    loader.begin()
    try:
        held = store.lock_holder(mapping_name)
        if held is not None:
            run_id, h_host, h_pid = held
            if h_host != host or (_alive(int(h_pid)) and int(h_pid) != pid):
                raise LockedError(
                    f"mapping {mapping_name} is already running against this target (run {run_id}, "
                    f"pid {h_pid} on {h_host}); wait for it, or resume it with --resume once it has died"
                )
        store.take_lock(mapping_name, host, pid, replace=held is not None)
        loader.commit()
    except LockedError:
        loader.rollback()
        raise
    except Exception as exc:  # a concurrent acquire won the insert
        loader.rollback()
        raise LockedError(f"mapping {mapping_name} is being started by another process: {exc}") from None


def release(store: RunStore, mapping_name: str) -> None:
    """Drop our lock (best effort: a dead connection leaves it for takeover)."""
    try:
        store.loader.begin()
        store.drop_lock(mapping_name, os.getpid())
        store.loader.commit()
    except Exception:
        pass
