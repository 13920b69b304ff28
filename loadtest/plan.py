"""From a profile and the command-line overrides to the plan the Locust processes follow.

The plan is plain JSON: stages with absolute user counts and spawn rates, persona weights
and think times, thresholds in ms / fractions / req/s, and (added by :mod:`loadtest.data`)
the slots of test data and tokens each virtual user works with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from crmkit.loadtest.profile import Profile

#: seconds a spike takes to reach its user count
SPIKE_RISE_S = 1.0


@dataclass(frozen=True)
class Overrides:
    users: int | None = None
    duration_s: float | None = None


def stages(profile: Profile, over: Overrides) -> list[dict[str, Any]]:
    """Absolute stages ``{kind, duration, users, spawn_rate}`` after ``--users``/``--duration``."""
    raw = _profile_stages(profile)
    if over.users is not None:
        factor = over.users / max(s["users"] for s in raw)
        raw = [{**s, "users": max(1, round(s["users"] * factor))} for s in raw]
    if over.duration_s is not None:
        factor = over.duration_s / sum(s["duration"] for s in raw)
        raw = [{**s, "duration": s["duration"] * factor} for s in raw]
    out, prev = [], 0
    for s in raw:
        delta = abs(s["users"] - prev)
        if s["kind"] == "ramp":
            rate = max(delta / s["duration"], 0.1)
        elif s["kind"] == "spike":
            rate = max(delta / SPIKE_RISE_S, 1.0)
        else:
            rate = float(profile.spawn_rate or max(delta, 1))
        out.append({**s, "spawn_rate": round(rate, 3)})
        prev = s["users"]
    return out


def _profile_stages(profile: Profile) -> list[dict[str, Any]]:
    if profile.stages:
        result, prev = [], 0
        for s in profile.stages:
            users = s.users if s.users is not None else prev
            result.append({"kind": s.kind, "duration": float(s.duration), "users": users})
            prev = users
        return result
    users, total = int(profile.users or 1), float(profile.duration or 1)
    rate = profile.spawn_rate or max(1.0, users / 5.0)
    ramp = min(users / rate, total)
    result = [{"kind": "ramp", "duration": ramp, "users": users}]
    if total - ramp > 0:
        result.append({"kind": "steady", "duration": total - ramp, "users": users})
    return result


def slots_needed(profile: Profile, peak_users: int, workers: int) -> dict[str, int]:
    """Data slots per persona so that no two virtual users, on any worker, share one.

    Locust gives each persona about ``peak * weight / total weight`` users (rounding may add
    one) and spreads them evenly over the workers; slot ``i`` belongs to worker ``i % N``, so
    each worker needs its share of slots plus one spare.
    """
    total = sum(p.weight for p in profile.personas.values())
    need = {}
    for name, persona in profile.personas.items():
        users = math.ceil(peak_users * persona.weight / total) + 1
        per_worker = math.ceil(users / workers) + 1
        need[name] = per_worker * workers
    return need


def base_plan(profile: Profile, name: str, over: Overrides, workers: int) -> dict[str, Any]:
    """Everything but the data slots."""
    st = stages(profile, over)
    return {
        "version": 1,
        "profile": name,
        "workers": max(1, workers),
        "stages": st,
        "duration_s": sum(s["duration"] for s in st),
        "peak_users": max(s["users"] for s in st),
        "personas": {p: {"weight": v.weight, "think": list(v.think_time)} for p, v in profile.personas.items()},
        "thresholds": {g: t.limits() for g, t in profile.thresholds.items()},
        "abort": profile.abort.model_dump() if profile.abort else None,
    }
