"""Who writes what on a target: one run of a mapping at a time, and one run per entity.

A lock is a row of ``crmkit_locks`` naming its holder (run, host, process), keyed by the
mapping's name, or by ``entity:<table>`` for each entity a run writes (a mapping's name has no
colon).  So two mappings that write the same entities, started together, take turns: the
second waits up to ``wait`` seconds, then refuses with one line naming the run that holds the
entity.  Locks are taken all at once, in one transaction, in a fixed order.

On PostgreSQL each lock is also a session-level advisory lock of the run's connection: the
server lets one session hold it and frees it when that session ends (a killed run, a cut
connection), so the row only names the holder.  On SQLite (one host, one writer at a time) a
row's holder is alive while its process is; a lock held by a dead process is taken over.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable

from crmkit.db.sql import first_line, write_refusal
from crmkit.errors import CrmkitError, TargetError
from crmkit.migrate.safety.store import RunStore

#: the lock key of an entity (mapping names match ``[A-Za-z0-9_.-]+``: no clash)
ENTITY = "entity:"
#: the advisory-lock namespace of crmkit on PostgreSQL ('crmk')
_NAMESPACE = 0x63726D6B
#: locks this process holds on SQLite targets: (database path, key) -> holders
_HELD: dict[tuple[str, str], int] = {}


class LockedError(CrmkitError):
    """Another run holds the mapping, or an entity the run writes, on this target."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def keys(mapping_name: str, entities: Iterable[str] = ()) -> list[str]:
    """The lock keys of a run of ``mapping_name`` writing ``entities``, in the order they are taken."""
    return [mapping_name, *(ENTITY + e for e in sorted(set(entities)))]


def acquire(
    store: RunStore, mapping_name: str, entities: Iterable[str] = (), wait: float = 0.0, target: str = "the target"
) -> None:
    """Take the locks of a run of ``mapping_name`` writing ``entities``, waiting up to ``wait``
    seconds for their holders; else raise LockedError naming the holder."""
    wanted = keys(mapping_name, entities)
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        busy = take(store, wanted, target)
        if busy is None:
            return
        if time.monotonic() >= deadline:
            raise LockedError(busy + (f" (waited {wait:g} s)" if wait > 0 else "; or pass --lock-wait SECONDS"))
        time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))


def take(store: RunStore, wanted: list[str], target: str = "the target") -> str | None:
    """Take every lock of ``wanted`` or none: None when taken, else why not (naming the holder)."""
    loader = store.loader
    pg = loader.dialect == "postgresql"
    advised: list[str] = []
    done = False
    try:
        if pg:
            for key in wanted:
                if not loader.scalar(f"SELECT pg_try_advisory_lock({_NAMESPACE}, hashtext(?))", (key,)):
                    return _busy(store, key)
                advised.append(key)
        try:
            loader.begin()
            for key in wanted:
                held = store.lock_holder(key)
                if held is not None and not pg and _held_elsewhere(store, key, str(held[1]), int(held[2])):
                    loader.rollback()
                    return _busy(store, key)
                store.take_lock(key, socket.gethostname(), os.getpid(), replace=held is not None)
            loader.commit()
        except Exception as exc:
            try:
                loader.rollback()
            except Exception:
                pass  # the driver ended the transaction with the error
            if "locked" in str(exc).lower() or "busy" in str(exc).lower():
                return f"{target} is busy with another writer ({first_line(exc)})"
            raise _write_error(exc, target) from None
        for key in wanted:
            _HELD[(_where(store), key)] = _HELD.get((_where(store), key), 0) + 1
        done = True
        return None
    finally:
        if not done:
            _unadvise(store, advised)


def release(store: RunStore, mapping_name: str, entities: Iterable[str] = ()) -> None:
    """Drop our locks (best effort: a dead connection leaves the rows for takeover)."""
    drop(store, keys(mapping_name, entities))


def drop(store: RunStore, held: list[str]) -> None:
    for key in held:
        n = _HELD.pop((_where(store), key), 0)
        if n > 1:
            _HELD[(_where(store), key)] = n - 1
    try:
        store.loader.begin()
        for key in held:
            store.drop_lock(key, os.getpid())
        store.loader.commit()
    except Exception:
        try:
            store.loader.rollback()
        except Exception:
            pass
    if store.loader.dialect == "postgresql":
        _unadvise(store, held)


def _unadvise(store: RunStore, held: list[str]) -> None:
    for key in held:
        try:
            store.loader.scalar(f"SELECT pg_advisory_unlock({_NAMESPACE}, hashtext(?))", (key,))
        except Exception:
            pass  # a lost connection has released them already


def _where(store: RunStore) -> str:
    return str(getattr(store.loader, "path", id(store.loader)))


def _held_elsewhere(store: RunStore, key: str, host: str, pid: int) -> bool:
    """A lock row's holder is another live run: another host's, another live process's, or a
    run of this process still holding it (another thread)."""
    if host != socket.gethostname():
        return True
    if pid != os.getpid():
        return _alive(pid)
    return (_where(store), key) in _HELD


def _busy(store: RunStore, key: str) -> str:
    """Who holds ``key``, in one line."""
    try:
        held = store.lock_holder(key)
    except Exception:
        held = None
    if held is None:
        who = "another run that is starting"
    else:
        run_id, host, pid, mapping = held
        who = (f"run {run_id} of mapping {mapping}" if run_id else "a run that is starting") + f" (pid {pid} on {host})"
    if key.startswith(ENTITY):
        return f"{key.removeprefix(ENTITY)} is being written by {who}: runs that write the same entity take turns"
    return (
        f"mapping {key} is already running against this target ({who}); "
        "wait for it, or resume it with --resume once it has died"
    )


def _write_error(exc: Exception, target: str) -> CrmkitError:
    """A failed write of the lock rows, as the one line that says why."""
    refusal = write_refusal(exc)
    if refusal is not None:
        return TargetError(f"target {target} {refusal}")
    return LockedError(f"a run is being started against {target} by another process: {first_line(exc)}")
