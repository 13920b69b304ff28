"""The library interface a migration calls: check_frame, load_rules, evaluate_gates."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from pydantic import Field

from crmkit.config import Strict, load_model
from crmkit.errors import ConfigError
from crmkit.validate import Checked, ValidationRules, check_frame, check_meaning, evaluate_gates, load_rules
from crmkit.validate.engine import evaluate


def shaped_contacts() -> pl.DataFrame:
    """What migrate.fields.shape hands over: __row, __key, typed fields, pipeline reasons."""
    return pl.DataFrame(
        {
            "__row": [2, 3, 4, 5, 6],
            "__key": ["P1", "P2", "P1", "P4", None],
            "full_name": ["Ann", "Bob", "Cy", None, "Ed"],
            "email": ["ann@example.com", "bob@", None, None, "ed@example.com"],
            "phone": ["+8613812345678", None, "+8613812345679", None, "12"],
            "birth_date": [dt.date(1980, 1, 1), dt.date(2999, 1, 1), None, None, dt.date(1850, 1, 1)],
            "account_id": pl.Series([None] * 5, dtype=pl.Int64),
            "__ref_account_id": ["A1", "A1", None, "A2", "A3"],
            "__errors": [[], [], [], [], ["phone: '12' is not a phone number"]],
            "__warnings": [[], [], [], [], []],
        },
        schema_overrides={"__errors": pl.List(pl.String), "__warnings": pl.List(pl.String)},
    )


def test_check_frame_adds_two_reason_lists_and_keeps_rows_and_order():
    frame = shaped_contacts()
    out = check_frame("contacts", frame, None)
    assert out.columns == [*frame.columns, "__v_errors", "__v_warnings"]
    assert out.schema["__v_errors"] == pl.List(pl.String) == out.schema["__v_warnings"]
    assert out.drop("__v_errors", "__v_warnings").equals(frame)
    errors = dict(zip(out["__row"], out["__v_errors"].to_list()))
    assert errors[2] == []
    assert errors[3] == [
        "email: 'b***@' is not an email address [rule email_syntax]",
        "birth_date: '2***1' is in the future [rule birth_date_not_future]",
    ]
    assert errors[4] == ["legacy_key: 'P1' appears more than once (first at row 2) [rule legacy_key_unique]"]
    assert errors[5] == ["full_name: value is missing [rule full_name_required]"]
    warnings = dict(zip(out["__row"], out["__v_warnings"].to_list()))
    assert warnings[5] == ["email: no email and no phone: the contact cannot be reached [rule contact_reachable]"]
    assert warnings[6] == ["birth_date: '1***1' is before 1900-01-01 [rule birth_date_after_1900]"]


def test_a_pending_reference_counts_as_present_and_missing_columns_are_not_checked():
    out = check_frame(
        "opportunities",
        pl.DataFrame(
            {
                "__row": [2, 3],
                "__key": ["O1", "O2"],
                "name": ["a", "b"],
                "stage": ["proposal", "closed_won"],
                "account_id": pl.Series([None, None], dtype=pl.Int64),
                "__ref_account_id": ["C1", None],
            }
        ),
        None,
    )
    # account_id waits for its reference (row 2); row 3 has none.  amount is not mapped: won_has_amount is skipped
    assert out["__v_errors"].to_list() == [[], ["account_id: value is missing [rule account_id_required]"]]


def test_skip_leaves_out_rules_by_name_or_kind():
    out = check_frame("contacts", shaped_contacts(), None, skip={"unique", "full_name_required"})
    reasons = [r for rs in out["__v_errors"].to_list() for r in rs]
    assert not any("legacy_key_unique" in r or "full_name_required" in r for r in reasons)
    assert any("email_syntax" in r for r in reasons)


def test_a_frame_of_the_wrong_types_is_refused():
    with pytest.raises(TypeError, match="contacts.birth_date is String"):
        check_frame("contacts", pl.DataFrame({"__row": [1], "birth_date": ["1980-01-01"]}), None)


def test_empty_frame():
    frame = shaped_contacts().head(0)
    out = check_frame("contacts", frame, None)
    assert out.height == 0 and out.schema["__v_errors"] == pl.List(pl.String)


def test_the_same_rules_in_a_mapping_section_or_a_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nentities:\n  contacts:\n    severity: {email_syntax: warning}\n", encoding="utf-8")
    from_file = load_rules(path)
    # embedded in a mapping: a section, or a path relative to the mapping
    inline = ValidationRules.model_validate({"entities": {"contacts": {"severity": {"email_syntax": "warning"}}}})
    by_path = ValidationRules.model_validate("rules.yaml", context={"base": tmp_path})
    assert from_file == inline == by_path
    out = check_frame("contacts", shaped_contacts(), inline)
    assert any("email_syntax" in r for rs in out["__v_warnings"].to_list() for r in rs)


def test_gates_over_checked_frames():
    checked = check_frame("contacts", shaped_contacts(), None)
    rules = ValidationRules.model_validate(
        {
            "gates": [
                {"metric": "rejected_rows", "max": "50%"},
                {"metric": "rejected_rows", "max": 2, "name": "at most two rejects"},
                {"metric": "warned_rows", "max": "10%"},
                {"metric": "completeness", "entity": "contacts", "field": "email", "min": "60%"},
                {"metric": "rule_failures", "rule": "email_syntax", "max": 0},
                {"metric": "rule_failures", "entity": "opportunities", "rule": "currency_iso4217", "max": 0},
            ]
        }
    )
    results = evaluate_gates(rules, [Checked("contacts", checked, "sales_sheet")])
    by_name = {g.name: g for g in results}
    # rows 3, 4, 5 and 6 have errors (row 6 also a pipeline error): 4 of 5 rows
    assert by_name["rejected rows <= 50%"].measured == 80.0 and not by_name["rejected rows <= 50%"].passed
    assert by_name["at most two rejects"].measured == 4 and not by_name["at most two rejects"].passed
    assert by_name["warned rows <= 10%"].measured == 40.0
    assert by_name["contacts completeness of email >= 60%"].measured == 60.0
    assert by_name["contacts completeness of email >= 60%"].passed
    email = by_name["failures of email_syntax <= 0"]
    assert email.measured == 1 and not email.passed
    assert len(results) == 5, "a gate on an entity that was not validated does not apply"


def test_gates_on_no_rows_are_inconclusive():
    empty = check_frame("contacts", shaped_contacts().head(0), None)
    rules = ValidationRules.model_validate(
        {
            "gates": [
                {"metric": "rejected_rows", "max": "1%"},
                {"metric": "rejected_rows", "max": "1%", "name": "lenient", "when_inconclusive": "pass"},
                {"metric": "rejected_rows", "max": 0, "name": "count"},
            ]
        }
    )
    a, b, c = evaluate_gates(rules, [Checked("contacts", empty)])
    assert (a.inconclusive, a.passed, a.measured) == (True, False, None)
    assert (b.inconclusive, b.passed) == (True, True)
    assert (c.inconclusive, c.passed, c.measured) == (False, True, 0)


def test_default_gate_is_no_row_with_an_error():
    checked = check_frame("contacts", shaped_contacts(), None)
    [gate] = evaluate_gates(None, [Checked("contacts", checked)])
    assert gate.name == "no row with an error" and not gate.passed and gate.measured == 4


def test_uniqueness_is_exact_despite_hashing():
    # many keys, a few repeated: exactly the later copies fail
    keys = [f"K{i}" for i in range(50_000)] + ["K7", "K49999", "K7"]
    frame = pl.DataFrame({"__row": range(2, len(keys) + 2), "__key": keys})
    ev = evaluate("tags", frame, None)
    assert ev.counts()["legacy_key_unique"] == 3
    failing = frame.filter(ev.masks["__m_legacy_key_unique"])
    assert failing["__key"].to_list() == ["K7", "K49999", "K7"]


def test_rules_errors_name_file_and_line(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "version: 1\nentities:\n  contacts:\n    checks:\n      - field: emial\n        regex: x\n", encoding="utf-8"
    )
    with pytest.raises(
        ConfigError,
        match=r"rules.yaml:5: entities.contacts.checks.0.field: 'emial' is not a "
        r"field of contacts",
    ):
        load_rules(path)


def test_gates_count_pipeline_errors_as_rejects_too():
    frame = pl.DataFrame(
        {
            "__row": [2, 3],
            "__key": ["T1", "T2"],
            "name": ["vip", "gold"],
            "__errors": [["name: 'x' is not a known tag"], []],
        },
        schema_overrides={"__errors": pl.List(pl.String)},
    )
    checked = check_frame("tags", frame, None)
    assert checked["__v_errors"].to_list() == [[], []]
    [gate] = evaluate_gates(None, [Checked("tags", checked)])
    assert gate.measured == 1 and not gate.passed


class _MappingWithSection(Strict):
    """How migrate.mapping.Mapping embeds the rules (``validate`` would shadow BaseModel.validate)."""

    name: str
    validate_: ValidationRules | None = Field(None, alias="validate")


def test_a_validate_section_embedded_in_another_yaml_file(tmp_path):
    (tmp_path / "rules.yaml").write_text(
        "version: 1\nentities:\n  contacts: {severity: {email_syntax: warning}}\n", encoding="utf-8"
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("name: m\nvalidate: rules.yaml\n", encoding="utf-8")
    by_path, _ = load_model(mapping, _MappingWithSection)
    mapping.write_text(
        "name: m\nvalidate:\n  entities:\n    contacts: {severity: {email_syntax: warning}}\n", encoding="utf-8"
    )
    inline, doc = load_model(mapping, _MappingWithSection)
    assert by_path.validate_ == inline.validate_ == load_rules(tmp_path / "rules.yaml")
    assert inline.validate_ is not None
    check_meaning(inline.validate_, doc, ("validate",))
    mapping.write_text(
        "name: m\nvalidate:\n  entities:\n    contacts:\n      checks:\n        - {field: emial, not_null: true}\n",
        encoding="utf-8",
    )
    broken, doc = load_model(mapping, _MappingWithSection)
    assert broken.validate_ is not None
    with pytest.raises(ConfigError, match=r"mapping.yaml:6: validate.entities.contacts.checks.0.field: 'emial'"):
        check_meaning(broken.validate_, doc, ("validate",))
    mapping.write_text("name: m\nvalidate:\n  gates:\n    - {metric: rejected_rows}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"mapping.yaml:4: validate.gates.0: give exactly one of min or max"):
        load_model(mapping, _MappingWithSection)
