"""The run store: every statement on crmkit's bookkeeping tables, and nowhere else.

``crmkit_runs`` (one row per run, dry run and generated load), ``crmkit_checkpoints`` (one
per committed batch, plus the id-map-pending markers of bulk inserts), ``crmkit_locks`` (one
run of a mapping, and one writer of an entity, at a time) and ``crmkit_audit`` (who did what to the target).  A
:class:`RunStore` wraps one connection; the caller owns its transactions, except where a
method says it commits (the audit entry, the lock).
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from crmkit.audit import now
from crmkit.db.loader import Loader

#: a crmkit_checkpoints phase: a bulk insert's id map is being written beside it (pipeline/bulk.py)
ID_MAP_PENDING = "idmap-pending"
#: the audit trail's columns, as history shows them
AUDIT_COLUMNS = ["at", "action", "run_id", "mapping_name", "outcome", "operator", "target", "detail"]


def _stamp(at: str | None = None) -> str:
    """``at`` (ISO, with a T) or the time now, as the tables store it."""
    return at.replace("T", " ") if at else now().isoformat(sep=" ", timespec="seconds")


class RunStore:
    """The bookkeeping of runs on ``loader``'s connection."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    # --- crmkit_runs ----------------------------------------------------------------

    def open_run(
        self,
        *,
        kind: str,
        mapping_name: str,
        mapping_hash: str,
        target: str,
        operator: str,
        started_at: str,
        sources_hash: str | None = None,
        status: str = "running",
        finished_at: str | None = None,
        counts: object = None,
    ) -> int:
        """A new crmkit_runs row; its id."""
        run_id = self.loader.scalar(
            "INSERT INTO crmkit_runs (kind, mapping_name, mapping_hash, target, operator, started_at, finished_at, "
            "status, sources_hash, counts_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                kind,
                mapping_name,
                mapping_hash,
                target,
                operator,
                _stamp(started_at),
                _stamp(finished_at) if finished_at else None,
                status,
                sources_hash,
                json.dumps(counts) if counts is not None else None,
            ),
        )
        return int(run_id)

    def reopen_run(self, run_id: int) -> None:
        self.loader.execute("UPDATE crmkit_runs SET status = 'running', message = NULL WHERE id = ?", (run_id,))

    def close_run(self, run_id: int, finished_at: str, status: str, counts: object) -> None:
        self.loader.execute(
            "UPDATE crmkit_runs SET finished_at = ?, status = ?, counts_json = ? WHERE id = ?",
            (_stamp(finished_at), status, json.dumps(counts), run_id),
        )

    def fail_run(self, run_id: int, message: str) -> None:
        self.loader.execute(
            "UPDATE crmkit_runs SET finished_at = ?, status = 'failed', message = ? WHERE id = ?",
            (_stamp(), message, run_id),
        )

    def set_status(self, run_id: int, status: str) -> None:
        """``abandoned`` (a resume started over), ``rolled_back``."""
        self.loader.execute("UPDATE crmkit_runs SET status = ? WHERE id = ?", (status, run_id))

    def unfinished_runs(self, mapping_name: str) -> pl.DataFrame:
        """id, mapping_hash, sources_hash of the mapping's running, interrupted or failed runs, newest first."""
        return self.loader.query(
            "SELECT id, mapping_hash, sources_hash FROM crmkit_runs WHERE kind = 'run' AND mapping_name = ? "
            "AND status IN ('running', 'interrupted', 'failed') ORDER BY id DESC",
            (mapping_name,),
        )

    def mark_interrupted(self, mapping_name: str) -> None:
        """The mapping's runs still marked running are dead (the caller holds the mapping's lock): interrupted."""
        self.loader.execute(
            "UPDATE crmkit_runs SET status = 'interrupted', message = 'found dead by a later run' "
            "WHERE kind = 'run' AND mapping_name = ? AND status = 'running'",
            (mapping_name,),
        )

    def later_writers(self, run_id: int, entities: list[str]) -> pl.DataFrame:
        """run_id, entity of runs after ``run_id`` (not rolled back or abandoned) that wrote any of ``entities``."""
        marks = ", ".join("?" * len(entities))
        return self.loader.query(
            f"SELECT DISTINCT c.run_id, c.entity FROM crmkit_checkpoints c JOIN crmkit_runs r ON r.id = c.run_id "
            f"WHERE c.run_id > ? AND c.entity IN ({marks}) AND c.phase IN ('insert', 'update') "
            f"AND r.status NOT IN ('rolled_back', 'abandoned') ORDER BY c.run_id",
            (run_id, *entities),
        )

    def next_run_id(self) -> int:
        """The id a new run would get (a dry run's rows carry it, and take no row of their own)."""
        return int(self.loader.scalar("SELECT coalesce(max(id), 0) + 1 FROM crmkit_runs") or 1)

    def migration_runs(self) -> pl.DataFrame:
        """id, mapping_name, status of every migration run (not dry runs, not generated loads)."""
        return self.loader.query("SELECT id, mapping_name, status FROM crmkit_runs WHERE kind = 'run' ORDER BY id")

    def run_outcomes(self, run_ids: list[int]) -> pl.DataFrame:
        """id, status, counts_json of the given runs."""
        if not run_ids:
            return pl.DataFrame()
        return self.loader.query(
            f"SELECT id, status, counts_json FROM crmkit_runs WHERE id IN ({', '.join('?' * len(run_ids))})",
            tuple(run_ids),
        )

    # --- crmkit_checkpoints -----------------------------------------------------------

    def checkpoint(self, run_id: int, entity: str, source: str, phase: str, batch_no: int, rows: int) -> None:
        self.loader.execute(
            "INSERT INTO crmkit_checkpoints (run_id, entity, source_name, phase, batch_no, rows) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, entity, source, phase, batch_no, rows),
        )

    def next_batch_no(self, run_id: int, entity: str, source: str, phase: str) -> int:
        last = self.loader.scalar(
            "SELECT max(batch_no) FROM crmkit_checkpoints WHERE run_id = ? AND entity = ? AND source_name = ? "
            "AND phase = ?",
            (run_id, entity, source, phase),
        )
        return int(last or 0) + 1

    def id_map_pending(self, run_id: int, entity: str, source: str) -> None:
        """Mark a bulk insert whose id map is written beside it (a crash leaves the marker)."""
        self.checkpoint(run_id, entity, source, ID_MAP_PENDING, 0, 0)

    def id_map_done(self, run_id: int, entity: str, source: str) -> None:
        self.loader.execute(
            "DELETE FROM crmkit_checkpoints WHERE run_id = ? AND entity = ? AND source_name = ? AND phase = ?",
            (run_id, entity, source, ID_MAP_PENDING),
        )

    def pending_id_maps(self) -> pl.DataFrame:
        """run_id, entity, source_name of every bulk insert a crash cut short of its id map."""
        return self.loader.query(
            "SELECT run_id, entity, source_name FROM crmkit_checkpoints WHERE phase = ?", (ID_MAP_PENDING,)
        )

    # --- crmkit_locks -------------------------------------------------------------------

    def lock_holder(self, key: str) -> tuple[Any, ...] | None:
        """(run_id, host, pid, mapping name of the run) of the lock ``key`` (a mapping's name, or
        ``entity:<table>``: migrate/safety/lock.py), if any."""
        held = self.loader.query(
            "SELECT l.run_id, l.host, l.pid, r.mapping_name FROM crmkit_locks l "
            "LEFT JOIN crmkit_runs r ON r.id = l.run_id WHERE l.mapping_name = ?",
            (key,),
        )
        return held.row(0) if held.height else None

    def take_lock(self, mapping_name: str, host: str, pid: int, *, replace: bool) -> None:
        if replace:
            self.loader.execute("DELETE FROM crmkit_locks WHERE mapping_name = ?", (mapping_name,))
        self.loader.execute(
            "INSERT INTO crmkit_locks (mapping_name, run_id, host, pid, acquired_at) VALUES (?, ?, ?, ?, ?)",
            (mapping_name, 0, host, pid, _stamp()),
        )

    def set_lock_run(self, keys: list[str], run_id: int) -> None:
        """Name ``run_id`` as the holder of the locks ``keys``."""
        for key in keys:
            self.loader.execute("UPDATE crmkit_locks SET run_id = ? WHERE mapping_name = ?", (run_id, key))

    def drop_lock(self, mapping_name: str, pid: int) -> None:
        self.loader.execute("DELETE FROM crmkit_locks WHERE mapping_name = ? AND pid = ?", (mapping_name, pid))

    # --- crmkit_audit -------------------------------------------------------------------

    def audit(
        self,
        *,
        action: str,
        operator: str,
        target: str,
        outcome: str,
        run_id: int | None = None,
        mapping_name: str | None = None,
        mapping_hash: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Append one audit entry in its own transaction.  ``target`` must already be masked."""
        self.loader.begin()
        self.loader.execute(
            "INSERT INTO crmkit_audit (at, operator, action, run_id, mapping_name, mapping_hash, target, outcome, "
            "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_stamp(), operator, action, run_id, mapping_name, mapping_hash, target, outcome, detail),
        )
        self.loader.commit()

    def audit_entries(self, limit: int) -> pl.DataFrame:
        """The newest ``limit`` audit entries, newest first."""
        return self.loader.query(
            f"SELECT {', '.join(AUDIT_COLUMNS)} FROM crmkit_audit ORDER BY id DESC LIMIT ?", (limit,)
        )
