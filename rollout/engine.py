"""The rollout itself: status, advance, approve, roll back a wave.  State lives in the target."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from crmkit.audit import now, operator_name
from crmkit.db.loader import Loader, open_loader
from crmkit.db.url import mask_url
from crmkit.errors import CrmkitError
from crmkit.migrate.pipeline.result import Options, RunResult
from crmkit.migrate.pipeline.run import run as run_mapping
from crmkit.migrate.safety.store import RunStore
from crmkit.rollout.gates import DEFAULT_SANDBOX_HOME, INCONCLUSIVE, Context, GateResult, WaveState, evaluate
from crmkit.rollout.plan import Plan, load_plan
from crmkit.schema.versions import ensure_schema


class RolloutRefused(CrmkitError):
    """The plan cannot move: a gate fails or is inconclusive, or the wave is not the next one."""

    exit_code = 1


@dataclass
class WaveStatus:
    name: str
    position: int
    status: str
    run_ids: list[int]
    migrated_at: str | None
    gates: list[GateResult] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # department -> entity -> rows


@dataclass
class Status:
    plan: str
    target: str
    waves: list[WaveStatus]
    next_wave: str | None
    blocked_by: list[GateResult]

    @property
    def ready(self) -> bool:
        return self.next_wave is not None and not self.blocked_by

    def to_json(self) -> dict[str, object]:
        return {
            "plan": self.plan,
            "target": self.target,
            "next_wave": self.next_wave,
            "ready": self.ready,
            "blocked_by": [g.to_json() for g in self.blocked_by],
            "waves": [
                {**{k: v for k, v in w.__dict__.items() if k != "gates"}, "gates": [g.to_json() for g in w.gates]}
                for w in self.waves
            ],
        }


def _states(loader: Loader, plan: Plan) -> dict[str, WaveState]:
    rows = loader.query(
        "SELECT wave, status, run_ids, migrated_at FROM crmkit_rollout_waves WHERE plan = ?", (plan.name,)
    )
    out = {}
    for wave, status, run_ids, migrated_at in rows.iter_rows() if rows.height else []:
        at = dt.datetime.fromisoformat(str(migrated_at)) if migrated_at else None
        out[wave] = WaveState(wave, status, json.loads(run_ids), at)
    return out


def _approvals(loader: Loader, plan: Plan, wave: str) -> dict[str, tuple[str, dt.datetime]]:
    rows = loader.query(
        "SELECT approval, by, at FROM crmkit_rollout_approvals WHERE plan = ? AND wave = ? ORDER BY id",
        (plan.name, wave),
    )
    return {a: (b, dt.datetime.fromisoformat(str(t))) for a, b, t in rows.iter_rows()} if rows.height else {}


def _next(plan: Plan, states: dict[str, WaveState]) -> int | None:
    for i, w in enumerate(plan.waves):
        if states.get(w.name) is None or states[w.name].status != "migrated":
            return i
    return None


def _open(plan_path: str | Path) -> tuple[Plan, str]:
    plan = load_plan(plan_path)
    target = plan.target_url()
    ensure_schema(target)
    return plan, target


@contextmanager
def _connected(target: str) -> Iterator[Loader]:
    """A connection for one block of work, closed before any gate opens its own."""
    loader = open_loader(target)
    try:
        yield loader
    finally:
        loader.close()


def _context(plan: Plan, i: int, states: dict[str, WaveState], target: str, sandbox_home: Path) -> Context:
    return Context(plan, plan.waves[i], plan.waves[i - 1] if i else None, states, target, sandbox_home)


def status(plan_path: str | Path, sandbox_home: Path = DEFAULT_SANDBOX_HOME) -> Status:
    """The waves of the plan and the gates of the next one (``sandbox_home``: where the sandboxes gate looks,
    unless the plan names a home)."""
    plan, target = _open(plan_path)
    with _connected(target) as loader:
        states = _states(loader, plan)
        i = _next(plan, states)
        given = _approvals(loader, plan, plan.waves[i].name) if i is not None else {}
    waves = [
        WaveStatus(
            w.name,
            pos,
            st.status if st else "pending",
            st.run_ids if st else [],
            st.migrated_at.isoformat(sep=" ", timespec="seconds") if st and st.migrated_at else None,
        )
        for pos, w in enumerate(plan.waves)
        for st in [states.get(w.name)]
    ]
    blocked: list[GateResult] = []
    if i is not None:
        waves[i].gates = evaluate(_context(plan, i, states, target, sandbox_home), given)
        blocked = [g for g in waves[i].gates if not g.passed]
    with _connected(target) as loader:
        _department_counts(loader, waves)
    return Status(plan.name, mask_url(target), waves, plan.waves[i].name if i is not None else None, blocked)


def _department_counts(loader: Loader, waves: list[WaveStatus]) -> None:
    """Rows each wave's runs inserted, per department of the account (or the row itself)."""
    for w in waves:
        if not w.run_ids or w.status != "migrated":
            continue
        marks = ", ".join("?" * len(w.run_ids))
        for entity, dept_sql in (
            ("accounts", "SELECT d.code, count(*) FROM accounts e LEFT JOIN departments d ON d.id = e.department_id"),
            (
                "contacts",
                "SELECT d.code, count(*) FROM contacts e LEFT JOIN accounts a ON a.id = e.account_id "
                "LEFT JOIN departments d ON d.id = a.department_id",
            ),
            (
                "opportunities",
                "SELECT d.code, count(*) FROM opportunities e LEFT JOIN accounts a ON a.id = e.account_id "
                "LEFT JOIN departments d ON d.id = a.department_id",
            ),
        ):
            rows = loader.query(
                f"{dept_sql} WHERE e.id IN (SELECT target_id FROM crmkit_id_map WHERE entity = ? "
                f"AND run_id IN ({marks})) GROUP BY d.code",
                (entity, *w.run_ids),
            )
            for code, n in rows.iter_rows() if rows.height else []:
                w.counts.setdefault(str(code or "(none)"), {})[entity] = int(n)


@dataclass
class Advanced:
    wave: str
    dry_run: bool
    runs: list[RunResult]
    gates: list[GateResult]


def advance(
    plan_path: str | Path,
    *,
    dry_run: bool = False,
    operator: str | None = None,
    sandbox_home: Path = DEFAULT_SANDBOX_HOME,
    bulk_rows: int = 200_000,
) -> Advanced:
    """Migrate the next wave if its gates pass; refuse, naming the gates, otherwise.  ``bulk_rows``:
    see :class:`Options` (the CLI passes Settings.bulk_rows and Settings.home)."""
    plan, target = _open(plan_path)
    who = operator_name(operator)
    with _connected(target) as loader:
        states = _states(loader, plan)
        i = _next(plan, states)
        if i is None:
            raise RolloutRefused(f"every wave of plan {plan.name} is migrated; nothing to advance")
        wave = plan.waves[i]
        given = _approvals(loader, plan, wave.name)
    gates = evaluate(_context(plan, i, states, target, sandbox_home), given)
    blocking = [g for g in gates if not g.passed]
    if blocking:
        with _connected(target) as loader:
            RunStore(loader).audit(
                action="rollout_advance",
                operator=who,
                target=mask_url(target),
                outcome="refused",
                detail=f"{plan.name}/{wave.name}: " + "; ".join(f"{g.gate} {g.status}" for g in blocking),
            )
        raise RolloutRefused(_refusal(plan, wave.name, blocking))
    runs = [
        run_mapping(
            m,
            Options(
                target=target,
                dry_run=dry_run,
                operator=who,
                scope=wave.scope or None,
                max_rejects="100%",
                bulk_rows=bulk_rows,
            ),
        )
        for m in plan.mappings
    ]
    if not dry_run:
        _record_wave(plan, target, wave.name, i, [r.run_id for r in runs if r.run_id is not None], who)
    return Advanced(wave.name, dry_run, runs, gates)


def _refusal(plan: Plan, wave: str, blocking: list[GateResult]) -> str:
    parts = [
        f"{g.gate} {g.status} ({g.measured}; needs {g.required})" + (f" → {g.hint}" if g.hint else "") for g in blocking
    ]
    verb = "waits for evidence" if all(g.status == INCONCLUSIVE for g in blocking) else "is blocked"
    return f"wave {wave} of plan {plan.name} {verb}: " + " | ".join(parts)


def _record_wave(plan: Plan, target: str, wave: str, position: int, run_ids: list[int], who: str) -> None:
    loader = open_loader(target)
    try:
        at = now().isoformat(sep=" ", timespec="seconds")
        loader.begin()
        loader.execute("DELETE FROM crmkit_rollout_waves WHERE plan = ? AND wave = ?", (plan.name, wave))
        loader.execute(
            "INSERT INTO crmkit_rollout_waves (plan, wave, position, status, run_ids, migrated_at) "
            "VALUES (?, ?, ?, 'migrated', ?, ?)",
            (plan.name, wave, position, json.dumps(run_ids), at),
        )
        loader.commit()
        RunStore(loader).audit(
            action="rollout_advance",
            operator=who,
            target=mask_url(target),
            outcome="migrated",
            detail=f"{plan.name}/{wave}: runs {run_ids}",
        )
    finally:
        loader.close()


def approve(plan_path: str | Path, wave: str, approval: str, by: str) -> None:
    plan, target = _open(plan_path)
    with _connected(target) as loader:
        w = plan.wave(wave)
        if approval not in w.approvals:
            raise RolloutRefused(
                f"wave {wave} asks for no approval named {approval!r} (it asks for: {', '.join(w.approvals) or 'none'})"
            )
        loader.begin()
        loader.execute(
            "INSERT INTO crmkit_rollout_approvals (plan, wave, approval, by, at) VALUES (?, ?, ?, ?, ?)",
            (plan.name, wave, approval, by, now().isoformat(sep=" ", timespec="seconds")),
        )
        loader.commit()
        RunStore(loader).audit(
            action="rollout_approve",
            operator=by,
            target=mask_url(target),
            outcome="approved",
            detail=f"{plan.name}/{wave}: {approval}",
        )


def rollback_wave(plan_path: str | Path, wave: str, operator: str | None = None) -> list[int]:
    """Undo a wave's migration runs (newest first).  Only the last migrated wave can be rolled back."""
    from crmkit.migrate.safety.rollback import rollback

    plan, target = _open(plan_path)
    with _connected(target) as loader:
        plan.wave(wave)
        states = _states(loader, plan)
        st = states.get(wave)
        if st is None or st.status != "migrated":
            raise RolloutRefused(f"wave {wave} is not migrated; nothing to roll back")
        later = [
            w.name
            for w in plan.waves[[x.name for x in plan.waves].index(wave) + 1 :]
            if states.get(w.name) and states[w.name].status == "migrated"
        ]
        if later:
            raise RolloutRefused(f"roll back the later wave(s) first: {', '.join(reversed(later))}")
    for rid in sorted(st.run_ids, reverse=True):
        rollback(target, rid, operator=operator)
    loader = open_loader(target)
    try:
        loader.begin()
        loader.execute(
            "UPDATE crmkit_rollout_waves SET status = 'rolled_back', rolled_back_at = ? WHERE plan = ? AND wave = ?",
            (now().isoformat(sep=" ", timespec="seconds"), plan.name, wave),
        )
        loader.commit()
        RunStore(loader).audit(
            action="rollout_rollback",
            operator=operator_name(operator),
            target=mask_url(target),
            outcome="rolled_back",
            detail=f"{plan.name}/{wave}: runs {st.run_ids}",
        )
    finally:
        loader.close()
    return st.run_ids
