"""The gate kinds: each one's keys (a GateSpec model), its check, and its registration, together.

A new gate is one more block here: its spec model, its function, ``@gate(...)``.  The plan's
``gates:`` section is built from this registry (crmkit.rollout.plan.Gates).
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
from pydantic import Field, field_validator

from crmkit.audit import now
from crmkit.rollout.gates import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Context,
    GateResult,
    _file_age,
    _needs_previous,
    _stale,
    gate,
)
from crmkit.rollout.gates import GATES as GATES  # re-exported: importing this module registers them
from crmkit.rollout.spec import GateSpec, RelPath


class ReconciliationGate(GateSpec):
    """The previous wave's migration runs: rejects within bounds, nothing unaccounted, verify clean."""

    max_rejects: str = "0"
    verify: bool = True

    @field_validator("max_rejects")
    @classmethod
    def _limit(cls, v: str) -> str:
        text = str(v).strip()
        try:
            float(text[:-1]) if text.endswith("%") else int(text)
        except ValueError:
            raise ValueError(f"'{text}' is neither a count (10) nor a percentage (0.5%)") from None
        return text


@gate(
    "reconciliation",
    ReconciliationGate,
    previous_wave=True,
    summary="previous wave; keys `max_rejects` (`N` or `P%`, default `0`), `verify` (default `true`). Passes when the wave's runs succeeded, their rejects are within `max_rejects` of the rows in scope, and `crmkit migrate verify` (limited to the waves so far) finds no mismatch",
)
def reconciliation(ctx: Context, spec: ReconciliationGate) -> GateResult:
    if (early := _needs_previous(ctx, "reconciliation")) is not None:
        return early
    assert ctx.previous is not None and ctx.previous_state is not None
    state = ctx.previous_state
    runs = ctx.runs(state.run_ids)
    rejected = extracted = 0
    bad_status = []
    for rid, status, counts in runs.iter_rows() if runs.height else []:
        if status != "succeeded":
            bad_status.append(f"run {rid} {status}")
        for c in json.loads(counts or "{}").values():
            rejected += int(c.get("rejected", 0))
            extracted += int(c.get("extracted", 0)) - int(c.get("filtered", 0))
    share = f"{rejected}/{extracted} rejected ({100 * rejected / extracted if extracted else 0:.1f}%)"
    from crmkit.migrate.pipeline.result import over_threshold

    required = f"rejects ≤ {spec.max_rejects}, runs succeeded" + (", verify clean" if spec.verify else "")
    if bad_status:
        return GateResult(
            "reconciliation",
            ctx.previous.name,
            FAIL,
            "; ".join(bad_status),
            required,
            "resume or re-run the wave's migration",
        )
    if over_threshold(rejected, extracted, spec.max_rejects):
        return GateResult(
            "reconciliation",
            ctx.previous.name,
            FAIL,
            share,
            required,
            "fix the rejected rows (see the run's rejects.csv) and advance the wave again",
        )
    measured = share
    if spec.verify:
        mismatches = _verify(ctx)
        measured += f", verify: {mismatches} mismatches"
        if mismatches:
            return GateResult(
                "reconciliation",
                ctx.previous.name,
                FAIL,
                measured,
                required,
                "crmkit migrate verify lists them; fix the target or re-run the wave",
            )
    return GateResult("reconciliation", ctx.previous.name, PASS, measured, required)


def _verify(ctx: Context) -> int:
    from crmkit.migrate.safety.verify import verify

    assert ctx.previous is not None
    scope = ctx.plan.cumulative_scope(ctx.previous.name)
    return sum(verify(m, ctx.target, scope=scope).mismatches.height for m in ctx.plan.mappings)


class ValidationGate(GateSpec):
    """Post-load validation of the target with a rules file (its own gates must pass)."""

    rules: RelPath
    entities: list[str] = ["accounts", "contacts"]


@gate(
    "validation",
    ValidationGate,
    previous_wave=True,
    summary="previous wave; keys `rules` (a [validation rules](validation-reference.md) file), `entities`. Passes when every gate of the rules passes on the target's tables (post-load validation)",
)
def validation(ctx: Context, spec: ValidationGate) -> GateResult:
    if (early := _needs_previous(ctx, "validation")) is not None:
        return early
    assert ctx.previous is not None
    from crmkit.validate.run import Request, run

    failing = []
    for entity in spec.entities:
        result = run(Request(entity=entity, target=ctx.target, rules=spec.rules))
        failing += [f"{entity}: {g.name} {g.measured}" for g in result.gates if not g.passed]
    required = f"every gate of {spec.rules.name} on {', '.join(spec.entities)}"
    if failing:
        return GateResult(
            "validation",
            ctx.previous.name,
            FAIL,
            "; ".join(failing)[:300],
            required,
            f"crmkit validate --target URL --entity ENTITY --rules {spec.rules} shows the failures",
        )
    return GateResult("validation", ctx.previous.name, PASS, "all validation gates pass", required)


class DedupeReviewGate(GateSpec):
    """The dedupe review queue (a review CSV) must hold no undecided pair."""

    file: RelPath
    decision_column: str = "decision"


@gate(
    "dedupe_review",
    DedupeReviewGate,
    previous_wave=True,
    summary="previous wave; keys `file` (a review queue CSV), `decision_column` (default `decision`). Passes when no pair in the review queue is undecided",
)
def dedupe_review(ctx: Context, spec: DedupeReviewGate) -> GateResult:
    subject = ctx.previous.name if ctx.previous else ctx.wave.name
    required = "no undecided pair"
    if not spec.file.exists():
        return GateResult(
            "dedupe_review",
            subject,
            INCONCLUSIVE,
            f"{spec.file} missing",
            required,
            "export the review queue: crmkit dedupe ... --review FILE",
        )
    if (stale := _stale(ctx, spec, _file_age(spec.file))) is not None:
        return GateResult("dedupe_review", subject, INCONCLUSIVE, stale, required, "export the review queue again")
    frame = pl.read_csv(spec.file, infer_schema=False)
    if spec.decision_column not in frame.columns:
        return GateResult(
            "dedupe_review",
            subject,
            INCONCLUSIVE,
            f"no column {spec.decision_column!r}",
            required,
            f"{spec.file} is not a review queue export",
        )
    pending = frame.filter(pl.col(spec.decision_column).fill_null("").str.strip_chars() == "").height
    status = PASS if pending == 0 else FAIL
    return GateResult(
        "dedupe_review",
        subject,
        status,
        f"{pending} of {frame.height} pairs undecided",
        required,
        "" if pending == 0 else f"decide the pairs in {spec.file} and import it",
    )


class LoadTestGate(GateSpec):
    """A load-test summary (crmkit loadtest run --report) that passed at the cumulative users."""

    summary: RelPath


@gate(
    "loadtest",
    LoadTestGate,
    previous_wave=False,
    summary="this wave; key `summary` (the `summary.json` of `crmkit loadtest run --report DIR`). Passes when the load test passed every threshold with at least the cumulative number of users",
)
def loadtest(ctx: Context, spec: LoadTestGate) -> GateResult:
    users = ctx.plan.cumulative_users(ctx.wave.name)
    required = f"passed at ≥ {users} users (cumulative)"
    hint = f"crmkit loadtest run --profile ... --users {users} --report {spec.summary.parent}"
    if not spec.summary.exists():
        return GateResult("loadtest", ctx.wave.name, INCONCLUSIVE, "no summary", required, hint)
    if (stale := _stale(ctx, spec, _file_age(spec.summary))) is not None:
        return GateResult("loadtest", ctx.wave.name, INCONCLUSIVE, stale, required, hint)
    doc = json.loads(spec.summary.read_text(encoding="utf-8"))
    peak = int(doc.get("peak_users", 0))
    failed = [t.get("name", "?") for t in doc.get("thresholds", []) if not t.get("passed")]
    measured = f"{peak} users, {'passed' if doc.get('passed') else 'failed: ' + ', '.join(map(str, failed))}"
    if peak < users:
        return GateResult("loadtest", ctx.wave.name, FAIL, measured, required, hint)
    return GateResult(
        "loadtest",
        ctx.wave.name,
        PASS if doc.get("passed") else FAIL,
        measured,
        required,
        "" if doc.get("passed") else hint,
    )


class SandboxGate(GateSpec):
    """Training sandboxes provisioned for the wave's trainees."""

    sandbox: str
    min_trainees: int = Field(1, ge=1)
    home: RelPath | None = None


@gate(
    "sandboxes",
    SandboxGate,
    previous_wave=False,
    summary="this wave; keys `sandbox`, `min_trainees`, `home`. Passes when `crmkit sandbox create` made the sandbox with enough trainees",
)
def sandboxes(ctx: Context, spec: SandboxGate) -> GateResult:
    from crmkit.training import sandbox as sb

    home = spec.home or ctx.sandbox_home
    required = f"sandbox {spec.sandbox} with ≥ {spec.min_trainees} trainees"
    hint = f"crmkit sandbox create {spec.sandbox} --scenario ... --trainees {spec.min_trainees} --home {home}"
    try:
        box = sb.load(home, spec.sandbox)
    except Exception:
        return GateResult("sandboxes", ctx.wave.name, INCONCLUSIVE, "not provisioned", required, hint)
    n = len(box.trainees)
    return GateResult(
        "sandboxes",
        ctx.wave.name,
        PASS if n >= spec.min_trainees else FAIL,
        f"{n} trainees",
        required,
        "" if n >= spec.min_trainees else hint,
    )


class FeedbackGate(GateSpec):
    """Pilot feedback: a CSV of survey answers (a form export)."""

    file: RelPath
    column: str = "satisfaction"
    min_mean: float = 4.0
    min_response_rate: float = Field(0.5, ge=0, le=1)


@gate(
    "feedback",
    FeedbackGate,
    previous_wave=True,
    summary="previous wave; keys `file` (survey CSV), `column` (default `satisfaction`, scores 1–5), `min_mean`, `min_response_rate`. Passes when the mean score and answers ÷ the wave's `users` reach the thresholds",
)
def feedback(ctx: Context, spec: FeedbackGate) -> GateResult:
    if (early := _needs_previous(ctx, "feedback")) is not None:
        return early
    assert ctx.previous is not None
    required = f"mean {spec.column} ≥ {spec.min_mean}, response rate ≥ {spec.min_response_rate:.0%}"
    hint = f"collect the survey of wave {ctx.previous.name} into {spec.file} (a column {spec.column!r}, 1–5)"
    if not spec.file.exists():
        return GateResult("feedback", ctx.previous.name, INCONCLUSIVE, "no survey answers", required, hint)
    if (stale := _stale(ctx, spec, _file_age(spec.file))) is not None:
        return GateResult("feedback", ctx.previous.name, INCONCLUSIVE, stale, required, hint)
    frame = pl.read_csv(spec.file, infer_schema=False)
    if spec.column not in frame.columns:
        return GateResult("feedback", ctx.previous.name, INCONCLUSIVE, f"no column {spec.column!r}", required, hint)
    scores = frame[spec.column].cast(pl.Float64, strict=False).drop_nulls()
    if scores.len() == 0:
        return GateResult("feedback", ctx.previous.name, INCONCLUSIVE, "no answers", required, hint)
    mean = float(scores.mean())  # type: ignore[arg-type]
    rate = scores.len() / ctx.previous.users if ctx.previous.users else 1.0
    measured = f"mean {mean:.2f} from {scores.len()} answers, response rate {rate:.0%}"
    ok = mean >= spec.min_mean and rate >= spec.min_response_rate
    return GateResult(
        "feedback",
        ctx.previous.name,
        PASS if ok else FAIL,
        measured,
        required,
        "" if ok else "address the pilot's feedback, then survey again",
    )


class AdoptionGate(GateSpec):
    """The share of the previous wave's users who wrote through the CRM API within N days."""

    min_share: float = Field(0.5, ge=0, le=1)
    within_days: int = Field(14, ge=1)


@gate(
    "adoption",
    AdoptionGate,
    previous_wave=True,
    summary="previous wave; keys `min_share`, `within_days`. Passes when that share of the wave's users (users of its `departments`) wrote through the CRM API (`crmkit serve` audit log) within the days after the wave; inconclusive while the window is still open",
)
def adoption(ctx: Context, spec: AdoptionGate) -> GateResult:
    if (early := _needs_previous(ctx, "adoption")) is not None:
        return early
    assert ctx.previous is not None and ctx.previous_state is not None
    since = ctx.previous_state.migrated_at or now()
    until = since + dt.timedelta(days=spec.within_days)
    required = f"≥ {spec.min_share:.0%} of the wave's users active within {spec.within_days} days"
    codes = ctx.previous.departments
    if not codes:
        return GateResult(
            "adoption",
            ctx.previous.name,
            INCONCLUSIVE,
            "the wave names no departments",
            required,
            "list the wave's departments in the plan",
        )
    users = ctx.query(
        f"SELECT u.id FROM users u JOIN departments d ON d.id = u.department_id "
        f"WHERE d.code IN ({', '.join('?' * len(codes))})",
        tuple(codes),
    )
    if users.height == 0:
        return GateResult(
            "adoption", ctx.previous.name, INCONCLUSIVE, "no users migrated", required, "migrate the wave's users"
        )
    try:
        active = ctx.query(
            "SELECT DISTINCT user_id FROM crmkit_api_audit WHERE at >= ? AND at <= ?",
            (since.isoformat(sep=" "), until.isoformat(sep=" ")),
        )
    except Exception:
        return GateResult(
            "adoption",
            ctx.previous.name,
            INCONCLUSIVE,
            "no API audit log",
            required,
            "serve the CRM with crmkit serve so that its use is recorded",
        )
    ids = set(users["id"].cast(pl.Int64).to_list())
    n = len(ids & set(active["user_id"].cast(pl.Int64).to_list())) if active.height else 0
    share = n / len(ids)
    measured = f"{n} of {len(ids)} users active ({share:.0%})"
    if share >= spec.min_share:
        return GateResult("adoption", ctx.previous.name, PASS, measured, required)
    if now() < until:
        return GateResult(
            "adoption",
            ctx.previous.name,
            INCONCLUSIVE,
            measured,
            required,
            f"the adoption window is open until {until:%Y-%m-%d}",
        )
    return GateResult("adoption", ctx.previous.name, FAIL, measured, required, "support the wave's users, train again")
