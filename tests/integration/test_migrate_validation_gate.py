"""A mapping's validate: section: rules reject rows before the load, gates stop the run unless --force."""

from __future__ import annotations

import json

from crmkit.migrate.snapshot import table_hashes
from tests.conftest import cli


def with_rules(mapping, gates: str) -> None:
    text = mapping.read_text(encoding="utf-8")
    mapping.write_text(
        text.replace(
            "max_rejects: 10%\n",
            f"""max_rejects: 10%
validate:
  entities:
    opportunities:
      checks:
        - {{field: amount, range: {{min: 10000}}, severity: error, name: big_enough}}
  gates:
{gates}
""",
        ),
        encoding="utf-8",
    )


def test_a_failing_gate_stops_the_run_before_anything_is_written(estate, sqlite_url, tmp_path):
    with_rules(estate, "    - {name: few rejects, metric: rejected_rows, max: 1%}")
    cli("db", "upgrade", "--target", sqlite_url)
    empty = table_hashes(sqlite_url)
    res = cli("migrate", "run", str(estate), "--target", sqlite_url, "--json", "--report", str(tmp_path / "r"))
    assert res.exit_code == 1, res.output
    doc = json.loads(res.output)
    assert doc["status"] == "gates_failed" and "few rejects" in doc["message"] and "--force" in doc["message"]
    assert doc["validation"]["passed"] is False
    assert table_hashes(sqlite_url) == empty
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert 'href="validation/index.html"' in page and (tmp_path / "r" / "validation" / "index.html").exists()


def test_force_loads_and_rows_breaking_an_error_rule_are_rejected_with_the_rule(estate, sqlite_url, tmp_path):
    with_rules(estate, "    - {name: few rejects, metric: rejected_rows, max: 1%}")
    res = cli(
        "migrate",
        "run",
        str(estate),
        "--target",
        sqlite_url,
        "--force",
        "--max-rejects",
        "100%",
        "--report",
        str(tmp_path / "r"),
        "--json",
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    opp = doc["entities"]["opportunities"]
    rejects = (tmp_path / "r" / "rejects.csv").read_text(encoding="utf-8")
    assert "[rule big_enough]" in rejects
    assert opp["rejected"] > 8  # the 8 rejects of the estate, plus the small amounts


def test_gates_that_pass_let_the_run_load(estate, sqlite_url):
    with_rules(estate, "    - {name: rejects within reason, metric: rejected_rows, max: 50%}")
    res = cli("migrate", "run", str(estate), "--target", sqlite_url, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["validation"]["passed"] is True
