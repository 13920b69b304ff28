"""Validation inside a migration: the example estate's shaped feeds, checked before loading."""

from __future__ import annotations

import polars as pl

from crmkit.migrate.mapping import load_mapping
from crmkit.migrate.pipeline.prepare import prepare
from crmkit.validate import ValidationRules
from crmkit.validate.migration import merge_into_pipeline, validate_feeds
from tests.conftest import MAPPINGS


def estate_feeds() -> list[tuple[str, str, pl.DataFrame]]:
    prepared = prepare(load_mapping(MAPPINGS / "acme-legacy.yaml"))
    return [(e, sh.source, sh.frame) for e, feeds in prepared.shaped.items() for sh in feeds]


RULES = ValidationRules.model_validate(
    {
        "entities": {
            "contacts": {"checks": [{"field": "consent_to_contact", "not_null": True, "severity": "warning"}]}
        },
        "gates": [
            {"metric": "rejected_rows", "max": "10%", "name": "few rejects"},
            {"metric": "rejected_rows", "max": 0, "name": "no rejects"},
            {"entity": "contacts", "metric": "completeness", "field": "email", "min": "80%"},
        ],
    }
)


def test_gates_over_every_feed_before_loading(tmp_path):
    feeds = estate_feeds()
    pre = validate_feeds(RULES, feeds)
    assert [(f.entity, f.source) for f in pre.feeds] == [(e, s) for e, s, _ in feeds]
    gates = {g.name: g for g in pre.gates}
    total = sum(frame.height for _, _, frame in feeds)
    rejected = sum(
        f.result.checked.select((pl.col("__errors").list.len() + pl.col("__v_errors").list.len() > 0).sum()).item()
        for f in pre.feeds
    )
    assert gates["no rejects"].measured == rejected > 0 and not gates["no rejects"].passed
    assert gates["few rejects"].passed and gates["few rejects"].measured == round(100 * rejected / total, 4)
    assert not pre.passed
    page = pre.write_report(tmp_path / "validation")
    text = page.read_text(encoding="utf-8")
    for f in pre.feeds:
        assert f'href="{f.slug}/report.html"' in text and (tmp_path / "validation" / f.slug / "report.html").exists()
    assert "few rejects" in text and "FAILED" in text


def test_merged_reasons_keep_rows_and_leave_keys_and_required_to_the_pipeline():
    pre = validate_feeds(RULES, estate_feeds())
    sheet = next(f for f in pre.feeds if f.source == "sales_sheet")
    checked = sheet.result.checked
    merged = merge_into_pipeline(checked)
    assert merged.columns == [c for c in checked.columns if c not in ("__v_errors", "__v_warnings")]
    assert merged["__row"].equals(checked["__row"])
    dup = checked.filter(pl.col("__v_errors").list.len() > 0)
    assert any("legacy_key_unique" in r for rs in dup["__v_errors"].to_list() for r in rs)
    assert not any("legacy_key_unique" in r for rs in merged["__errors"].to_list() for r in rs)
    flagged = pl.element().str.contains("consent_to_contact_not_null")
    warned = merged.filter(pl.col("__warnings").list.eval(flagged).list.any())
    assert warned.height == checked.select(pl.col("consent_to_contact").is_null().sum()).item() > 0


def test_rules_without_gates_do_not_stop_a_migration():
    pre = validate_feeds(ValidationRules.model_validate({"entities": {}}), estate_feeds())
    assert pre.gates == [] and pre.passed
    assert any(f.result.rows_with("__v_errors") for f in pre.feeds)
