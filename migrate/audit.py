"""The audit trail: every run, dry run, resume, verify and rollback, with who and what."""

from __future__ import annotations

from crmkit.audit import now
from crmkit.db.loader import Loader


def record(
    loader: Loader,
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
    loader.begin()
    loader.execute(
        "INSERT INTO crmkit_audit (at, operator, action, run_id, mapping_name, mapping_hash, target, outcome, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            now().isoformat(sep=" ", timespec="seconds"),
            operator,
            action,
            run_id,
            mapping_name,
            mapping_hash,
            target,
            outcome,
            detail,
        ),
    )
    loader.commit()
