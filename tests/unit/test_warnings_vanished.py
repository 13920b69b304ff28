"""Warnings and vanished rows without a database: the check, the page, the schema's references."""

from __future__ import annotations

from tests.unit.conftest import shape_case

WARN_REF = {"account": "{ref: accounts, column: acct, on_error: warn}"}


def test_a_reference_with_on_error_warn_that_does_not_resolve_is_a_warning(tmp_path):
    m = shape_case(tmp_path, "contacts", WARN_REF, ["id", "acct"], [["1", "A1"], ["2", "A9"], ["3", "A2"], ["4", ""]])
    assert {k: r["reasons"] for k, r in m.rows.items()} == {"1": [], "2": [], "3": [], "4": []}
    assert m.rows["2"]["warnings"] == ["account_id: 'A9' not found in accounts (source accts)"]
    assert m.rows["3"]["warnings"] == ["account_id: 'A2' of accounts (source accts) was rejected in this run"]
    assert m.rows["1"]["warnings"] == m.rows["4"]["warnings"] == []
    assert m.value("account_id", "1") == 1 and m.value("account_id", "2") is None


def test_a_reference_without_on_error_still_rejects(tmp_path):
    fields = {"account": "{ref: accounts, column: acct}"}
    m = shape_case(tmp_path, "contacts", fields, ["id", "acct"], [["1", "A9"]])
    assert m.reasons("1") == "account_id: 'A9' not found in accounts (source accts)"


def test_the_page_lists_warnings_apart_from_rejects():
    from crmkit.migrate.report import render_html

    doc = {
        "run_id": 3,
        "mapping": "m",
        "status": "succeeded",
        "dry_run": False,
        "target": "sqlite:///x",
        "started_at": "",
        "finished_at": "",
        "max_rejects": "0",
        "entities": {
            "contacts": dict.fromkeys(
                ("extracted", "inserted", "updated", "unchanged", "merged", "filtered", "rejected", "warnings"), 1
            )
        },
    }
    row = {"entity": "contacts", "source_name": "src", "row_number": 7, "legacy_key": "K7"}
    html = render_html(
        doc,
        [{**row, "reasons": "email: 'x' is not an email address"}],
        [{**row, "reasons": "mobile: '<12345>' is not a phone number"}],
    )
    rejects, warnings = html.split("<h2>Warnings</h2>")
    assert "is not an email address" in rejects and "phone" not in rejects
    assert "mobile: &#x27;&lt;12345&gt;&#x27;" in warnings  # escaped
    assert 'href="warnings.csv"' in warnings


def test_every_column_that_refers_to_an_entity_is_found():
    from crmkit.migrate.pipeline.vanish import referring_columns

    accounts = referring_columns("accounts")
    assert {("contacts", "account_id"), ("opportunities", "account_id"), ("taggings", "account_id")} <= set(accounts)
    assert ("crmkit_api_tokens", "user_id") in referring_columns("users")  # a CRM user with an API token stays
    assert referring_columns("tags") == [("taggings", "tag_id")]
