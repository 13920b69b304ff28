"""Validation inside a migration: every shaped feed checked before anything is loaded.

``migrate run`` calls :func:`validate_feeds` once every feed is shaped, then
:func:`merge_into_pipeline` on each feed's frame, and stops before writing when
:attr:`PreloadValidation.passed` is false (unless ``--force``).  The run's report links to
the page :meth:`PreloadValidation.write_report` writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from crmkit.report import Html, escape, page, table
from crmkit.validate.engine import ERRORS, WARNINGS
from crmkit.validate.gates import Checked, GateResult, evaluate_gates
from crmkit.validate.inputs import Input
from crmkit.validate.rules import ValidationRules
from crmkit.validate.run import ValidationResult, validate_input

PIPELINE_ERRORS, PIPELINE_WARNINGS = "__errors", "__warnings"  # migrate.fields
#: reasons migrate.check gives itself (required values, repeated legacy keys): not said twice
_CHECKED_BY_PIPELINE = r"\[rule (legacy_key_unique|\w+_required)\]$"


@dataclass
class FeedValidation:
    entity: str
    source: str
    result: ValidationResult

    @property
    def slug(self) -> str:
        return f"{self.entity}-{self.source}"


@dataclass
class PreloadValidation:
    feeds: list[FeedValidation]
    gates: list[GateResult]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_json(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "gates": [g.to_json() for g in self.gates],
            "feeds": [
                {
                    "entity": f.entity,
                    "source": f.source,
                    "rows": f.result.checked.height,
                    "rows_with_errors": f.result.rows_with(ERRORS),
                    "rows_with_warnings": f.result.rows_with(WARNINGS),
                }
                for f in self.feeds
            ],
        }

    def write_report(self, directory: str | Path) -> Path:
        """``DIR/index.html`` (gates, one line per feed) and a full report per feed under it."""
        from crmkit.validate.report import write_report

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for f in self.feeds:
            write_report(f.result, out / f.slug)
        (out / "validation.json").write_text(
            json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        path = out / "index.html"
        path.write_text(self._index(), encoding="utf-8")
        return path

    def _index(self) -> str:
        gates = [
            [
                g.name,
                g.required,
                g.detail,
                f"{'passed' if g.passed else 'FAILED'}{' (inconclusive)' if g.inconclusive else ''}",
            ]
            for g in self.gates
        ]
        feeds = [
            [f.entity, f.source, f.result.checked.height, f.result.rows_with(ERRORS), f.result.rows_with(WARNINGS)]
            + [Html(f'<a href="{escape(f.slug)}/report.html">report</a>')]
            for f in self.feeds
        ]
        return page(
            f"Validation before loading: {'passed' if self.passed else 'failed'}",
            [
                "<h2>Gates</h2>\n" + table(["gate", "required", "measured", "result"], gates, name="gates"),
                "<h2>Feeds</h2>\n"
                + table(["entity", "source", "rows", "with an error", "with a warning", ""], feeds, name="feeds"),
            ],
        )


def validate_feeds(rules: ValidationRules | None, feeds: list[tuple[str, str, pl.DataFrame]]) -> PreloadValidation:
    """Check every shaped feed ``(entity, source, frame)``; gates are measured over all of them.

    Rows with a pipeline error (``__errors``) count as rejected for the gates too.  Rules
    without gates gate nothing here (the mapping's ``max_rejects`` still judges the run).
    """
    done = []
    for entity, source, frame in feeds:
        inp = Input(source, "feed", frame.with_columns(pl.lit(source).alias("__source")))
        result = validate_input(inp, entity, rules)
        result.checked = result.checked.drop("__source")
        done.append(FeedValidation(entity, source, result))
    gates = evaluate_gates(rules, [Checked(f.entity, f.result.checked, f.source) for f in done], default=None)
    return PreloadValidation(done, gates)


def merge_into_pipeline(checked: pl.DataFrame) -> pl.DataFrame:
    """Validation reasons joined to the pipeline's ``__errors`` / ``__warnings``; ``__v_*`` dropped.

    Required values and repeated legacy keys are left to migrate.check, which says them itself.
    """
    own = pl.col(ERRORS).list.eval(pl.element().filter(~pl.element().str.contains(_CHECKED_BY_PIPELINE)))
    return checked.with_columns(
        pl.concat_list(pl.col(PIPELINE_ERRORS), own).alias(PIPELINE_ERRORS),
        pl.concat_list(pl.col(PIPELINE_WARNINGS), pl.col(WARNINGS)).alias(PIPELINE_WARNINGS),
    ).drop(ERRORS, WARNINGS)
