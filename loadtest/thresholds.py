"""Judging a run: every threshold of the profile against the measured figures of its group.

Pure Python with no Locust import: the runner uses it after the run, and the Locust master
uses it during the run to abort early.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from crmkit.loadtest.groups import METRICS

#: measured figures of one endpoint group (see loadtest/locustfile.py: group_stats)
GroupStats = dict[str, Any]


@dataclass(frozen=True)
class Check:
    """One threshold, its limit and what was measured."""

    group: str
    metric: str
    limit: float
    measured: float | None
    passed: bool
    unit: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        op = ">=" if METRICS[self.metric][1] == "min" else "<="
        shown = "n/a" if self.measured is None else fmt(self.metric, self.measured)
        return f"{self.group}.{self.metric} {shown} (limit {op} {fmt(self.metric, self.limit)})"


def fmt(metric: str, value: float) -> str:
    unit = METRICS[metric][0]
    if unit == "%":
        return f"{value * 100:.2f}%"
    if unit == "ms":
        return f"{value:.0f} ms"
    return f"{value:.1f} req/s"


def measured(metric: str, stats: GroupStats) -> float | None:
    if not stats or not stats.get("requests"):
        return None
    return float(stats["rps"] if metric == "min_rps" else stats[metric])


def evaluate(
    thresholds: dict[str, dict[str, float]], groups: dict[str, GroupStats], skip: tuple[str, ...] = ()
) -> list[Check]:
    """A Check per threshold.  A group that made no requests fails: nothing was shown to hold."""
    checks = []
    for group, limits in thresholds.items():
        for metric, limit in limits.items():
            if metric in skip:
                continue
            unit, kind = METRICS[metric]
            value = measured(metric, groups.get(group, {}))
            if value is None:
                checks.append(Check(group, metric, limit, None, False, unit, "no requests in this group"))
                continue
            ok = value >= limit if kind == "min" else value <= limit
            checks.append(Check(group, metric, limit, value, ok, unit))
    return checks


def first_breach(
    thresholds: dict[str, dict[str, float]], groups: dict[str, GroupStats], min_requests: int
) -> Check | None:
    """During a run: the first ceiling already broken by a group with enough requests, if any.

    Floors (``min_rps``) are not judged mid-run: a run ramping up has not reached its rate yet.
    """
    for check in evaluate(thresholds, groups, skip=("min_rps",)):
        if check.measured is None or check.passed:
            continue
        if groups.get(check.group, {}).get("requests", 0) >= min_requests:
            return check
    return None
