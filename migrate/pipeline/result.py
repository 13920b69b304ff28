"""What a run is asked to do (:class:`Options`) and what it did (:class:`RunResult`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import polars as pl

from crmkit.errors import CrmkitError, MappingError
from crmkit.migrate.safety.hooks import RunHooks

Progress = Callable[[str, int, int], None]


COUNT_KEYS = (
    "extracted",
    "filtered",
    "inserted",
    "updated",
    "unchanged",
    "merged",
    "rejected",
    "warnings",
    "vanished",
    "deactivated",
    "deleted",
)

#: a listed row (crmkit_rejects without run_id): RunResult.rejects (severity error) and .warnings
LISTED_SCHEMA = {
    "entity": pl.String,
    "source_name": pl.String,
    "row_number": pl.Int64,
    "legacy_key": pl.String,
    "reasons": pl.String,
    "raw_json": pl.String,
    "severity": pl.String,
}
#: how many listed rejects and warnings to_json() carries each (the files and the table hold all)
JSON_LISTED = 1000

#: how a run ended (crmkit_runs.status; the schema's vocabulary RUN_STATUSES is the same list)
RunStatus = Literal[
    "running",
    "succeeded",
    "rejects_over_threshold",
    "gates_failed",
    "failed",
    "interrupted",
    "abandoned",
    "rolled_back",
]


@dataclass
class FeedCounts:
    """Outcomes of one feed.  ``extracted`` must equal the sum of the others."""

    entity: str
    source: str
    extracted: int = 0
    filtered: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    rejected: int = 0
    warnings: int = 0  # rows loaded (or unchanged) with a warning; each is listed (severity warning)
    vanished: int = 0  # rows an earlier run loaded whose legacy row is gone (not an outcome of this run)
    deactivated: int = 0  # of those, set inactive by this run (on_vanished: deactivate)
    deleted: int = 0  # of those, deleted by this run (on_vanished: delete)

    @property
    def accounted(self) -> int:
        return self.filtered + self.inserted + self.updated + self.unchanged + self.merged + self.rejected


@dataclass
class SourceInfo:
    name: str
    kind: str
    rows: int
    blank_rows: int = 0
    encoding: str | None = None
    detected: bool = False


@dataclass
class RunResult:
    run_id: int | None
    status: RunStatus
    dry_run: bool
    mapping: str
    mapping_hash: str
    target: str
    started_at: str
    finished_at: str = ""
    max_rejects: str = "0"
    sources: list[SourceInfo] = field(default_factory=list)
    counts: list[FeedCounts] = field(default_factory=list)
    rejects: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=LISTED_SCHEMA))
    #: rows that loaded with a warning, listed like the rejects (severity ``warning``)
    warnings: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=LISTED_SCHEMA))
    report_dir: str | None = None
    message: str = ""
    resumed: bool = False
    validation: Any = None  # validate.migration.PreloadValidation, when the mapping has rules

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "succeeded" else 1

    def totals(self) -> dict[str, int]:
        return {k: sum(getattr(c, k) for c in self.counts) for k in COUNT_KEYS}

    def to_json(self) -> dict[str, object]:
        per_entity: dict[str, dict[str, int]] = {}
        for c in self.counts:
            agg = per_entity.setdefault(c.entity, {k: 0 for k in COUNT_KEYS})
            for k in agg:
                agg[k] += getattr(c, k)
        return {
            "run_id": self.run_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "mapping": self.mapping,
            "mapping_hash": self.mapping_hash,
            "target": self.target,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "max_rejects": self.max_rejects,
            "entities": per_entity,
            "feeds": [{**asdict(c)} for c in self.counts],
            "sources": [asdict(s) for s in self.sources],
            "totals": self.totals(),
            "report_dir": self.report_dir,
            "message": self.message,
            "resumed": self.resumed,
            "validation": self.validation.to_json() if self.validation is not None else None,
            # the first JSON_LISTED of each, without the source row (all of them: rejects.csv, warnings.csv)
            "rejected_rows": _listed(self.rejects),
            "warned_rows": _listed(self.warnings),
        }


def _listed(rows: pl.DataFrame) -> list[dict[str, object]]:
    if rows.height == 0:
        return []
    return rows.head(JSON_LISTED).drop("raw_json", strict=False).to_dicts()


def over_threshold(rejected: int, extracted: int, limit: str) -> bool:
    """``limit`` is a count (``10``) or a share of extracted rows (``0.5%``)."""
    text = str(limit).strip()
    if text.endswith("%"):
        return extracted > 0 and rejected * 100 > float(text[:-1]) * extracted
    return rejected > int(text)


def parse_threshold(limit: str | int | None) -> str:
    text = "0" if limit is None else str(limit).strip()
    try:
        value = float(text[:-1]) if text.endswith("%") else int(text)
    except ValueError:
        raise MappingError(f"max rejects '{text}' is neither a count (10) nor a percentage (0.5%)") from None
    if value < 0:
        raise MappingError(f"max rejects '{text}' is negative")
    return text


@dataclass
class Options:
    target: str = "sqlite:///crm.db"
    dry_run: bool = False
    batch_size: int = 50_000
    max_rejects: str | None = None
    operator: str | None = None
    progress: Progress | None = None
    #: True: resume the last unfinished run of the mapping (if any); an int: that run
    resume: bool | int = False
    #: with resume: when the mapping or sources changed, abandon the old run and start anew
    restart: bool = False
    #: checkpoints and before-images (turned off only to measure their cost)
    safety: bool = True
    #: a rollout wave's scope: entity -> SQL condition over its source columns
    scope: dict[str, str] | None = None
    #: load even when a validation gate of the mapping fails
    force: bool = False
    #: inserts of at least this many rows drop the secondary indexes and build them after
    #: (the CLI passes Settings.bulk_rows, env CRMKIT_BULK_ROWS; tests lower it to exercise that path)
    bulk_rows: int = 200_000
    #: seconds a run waits for another run that holds its mapping or an entity it writes
    lock_wait: float = 0.0
    #: called at every named point of the run (the safety tests inject faults there)
    hooks: RunHooks = field(default_factory=RunHooks)


class ResumeError(CrmkitError):
    """The run asked to be resumed cannot be (changed mapping or sources, unknown run)."""
