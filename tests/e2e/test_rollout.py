"""Staged rollout end to end: a generated estate with 3 departments, a pilot and 2 waves."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from crmkit.migrate.snapshot import table_hashes
from tests.conftest import ROOT, cli, legacy_estate

DEPTS = ("SALES_N", "SALES_S", "SERVICE")


@pytest.fixture(scope="module")
def estate(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("estate")
    legacy_estate(out)
    return out


def rollout(estate: Path, *args: str, env: dict[str, str] | None = None):
    """``crmkit rollout ...`` with the estate (beside the plan's folder) allowed: a plan names files in its project."""
    return cli("rollout", *args, "--allow-path", str(estate), env=env)


def scope(dept: str) -> str:
    return f'{{accounts: "UNIT_CD = \'{dept}\'", leads: "\\"部门\\" = \'{dept}\'"}}'


def write_plan(tmp: Path, estate: Path) -> Path:
    plan = tmp / "plan.yaml"
    plan.write_text(
        f"""version: 1
name: huaxin
target: "sqlite:///crm.db"
mappings: [{estate / "mapping.yaml"}]
waves:
  - name: pilot
    scope: {scope("SALES_N")}
    departments: [SALES_N]
    users: 5
    approvals: [it-lead]
  - name: south
    scope: {scope("SALES_S")}
    departments: [SALES_S]
    users: 4
    gates:
      reconciliation: {{max_rejects: "10%", verify: true}}
      feedback: {{file: feedback-pilot.csv, min_mean: 3.5, min_response_rate: 0.6}}
  - name: service
    scope: {scope("SERVICE")}
    departments: [SERVICE]
    users: 5
    gates:
      reconciliation: {{max_rejects: "10%", verify: true}}
      feedback: {{file: feedback-south.csv, min_mean: 3.5, min_response_rate: 0.5}}
""",
        encoding="utf-8",
    )
    return plan


def survey(path: Path, scores: list[int]) -> None:
    path.write_text(
        "respondent,satisfaction,comment\n" + "".join(f"u{i},{s},ok\n" for i, s in enumerate(scores)), encoding="utf-8"
    )


# sqlite3's connection context manager does not close: close explicitly, since the CLI's ADBC
# driver carries its own SQLite and two SQLite copies in one process must not share open files.
def source_accounts(estate: Path, dept: str) -> int:
    with closing(sqlite3.connect(estate / "legacy.sqlite")) as db:
        return db.execute("SELECT count(*) FROM customer WHERE UNIT_CD = ?", (dept,)).fetchone()[0]


def target_accounts_by_dept(url: str) -> dict[str, int]:
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
        return dict(
            db.execute(
                "SELECT d.code, count(*) FROM accounts a JOIN departments d ON d.id = a.department_id GROUP BY d.code"
            ).fetchall()
        )


def feed(doc: dict, entity: str) -> dict:
    return next(f for f in doc["runs"][0]["feeds"] if f["entity"] == entity)


def test_pilot_then_two_waves_gated_on_evidence(estate, tmp_path):
    plan = write_plan(tmp_path, estate)
    target = f"sqlite:///{tmp_path / 'crm.db'}"

    # the pilot waits for its approval, and says how to give it
    res = rollout(estate, "advance", str(plan))
    assert (
        res.exit_code == 1 and "approval:it-lead inconclusive" in res.stderr and "crmkit rollout approve" in res.stderr
    )
    assert rollout(estate, "approve", str(plan), "pilot", "--approval", "it-lead", "--by", "Wang Fang").exit_code == 0
    res = rollout(estate, "advance", str(plan), "--json")
    assert res.exit_code == 0, res.output
    pilot = json.loads(res.output)
    accounts = feed(pilot, "accounts")
    assert accounts["inserted"] + accounts["rejected"] == source_accounts(estate, "SALES_N")
    assert accounts["filtered"] == source_accounts(estate, "SALES_S") + source_accounts(estate, "SERVICE")
    assert set(target_accounts_by_dept(target)) == {"SALES_N"}

    # south: no survey yet -> inconclusive; a poor survey -> blocked; a good one -> advances
    res = rollout(estate, "advance", str(plan))
    assert res.exit_code == 1 and "feedback inconclusive" in res.stderr and "feedback-pilot.csv" in res.stderr
    survey(tmp_path / "feedback-pilot.csv", [2, 3, 2, 3])
    res = rollout(estate, "advance", str(plan))
    assert res.exit_code == 1 and "wave south of plan huaxin is blocked" in res.stderr
    assert "feedback fail (mean 2.50 from 4 answers" in res.stderr
    status = json.loads(rollout(estate, "status", str(plan), "--json").output)
    assert status["next_wave"] == "south" and not status["ready"]
    assert {g["gate"]: g["status"] for g in status["blocked_by"]} == {"feedback": "fail"}
    survey(tmp_path / "feedback-pilot.csv", [4, 5, 4, 3, 5])
    assert rollout(estate, "advance", str(plan)).exit_code == 0
    assert set(target_accounts_by_dept(target)) == {"SALES_N", "SALES_S"}
    before_last = table_hashes(target)

    survey(tmp_path / "feedback-south.csv", [4, 4, 5])
    res = rollout(estate, "advance", str(plan))
    assert res.exit_code == 0, res.output
    assert set(target_accounts_by_dept(target)) == set(DEPTS)

    # the final state equals a one-shot migration of everything
    one_shot = f"sqlite:///{tmp_path / 'one-shot.db'}"
    assert (
        cli("migrate", "run", str(estate / "mapping.yaml"), "--target", one_shot, "--max-rejects", "100%").exit_code
        == 0
    )
    assert table_hashes(target, content_only=True) == table_hashes(one_shot, content_only=True)

    # rolling back the last wave restores the state before it
    res = rollout(estate, "rollback", str(plan), "service")
    assert res.exit_code == 0, res.output
    assert table_hashes(target) == before_last
    status = json.loads(rollout(estate, "status", str(plan), "--json").output)
    assert status["next_wave"] == "service"

    page = tmp_path / "rollout.html"
    assert rollout(estate, "report", str(plan), "--out", str(page)).exit_code == 0
    html = page.read_text(encoding="utf-8")
    assert 'class="chart timeline"' in html and 'class="chart departments"' in html and "SALES_S" in html


def test_a_plan_with_a_mistake_is_one_line_and_exit_2(tmp_path, estate):
    plan = write_plan(tmp_path, estate)
    plan.write_text(
        plan.read_text(encoding="utf-8").replace(
            "min_mean: 3.5, min_response_rate: 0.6", "min_mean: 3.5, min_rate: 0.6"
        ),
        encoding="utf-8",
    )
    res = rollout(estate, "status", str(plan))
    assert res.exit_code == 2 and "plan.yaml:" in res.stderr and "min_rate" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_the_sandboxes_gate_looks_in_crmkit_home_when_the_plan_names_no_home(estate, tmp_path):
    home = tmp_path / "home"
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"""version: 1
name: homes
target: "sqlite:///{tmp_path / "crm.db"}"
mappings: [{estate / "mapping.yaml"}]
waves:
  - name: pilot
    scope: {scope("SALES_N")}
    departments: [SALES_N]
    users: 5
    gates:
      sandboxes: {{sandbox: pilot, min_trainees: 1}}
""",
        encoding="utf-8",
    )
    env = {"CRMKIT_HOME": str(home)}
    res = rollout(estate, "status", str(plan), "--json", env=env)
    gate = json.loads(res.output)["waves"][0]["gates"][0]
    assert res.exit_code == 1 and gate["status"] == "inconclusive" and f"--home {home}" in gate["hint"]
    scenario = str(ROOT / "configs" / "training" / "sales-en.yaml")
    assert cli("sandbox", "create", "pilot", "--scenario", scenario, env=env).exit_code == 0
    res = rollout(estate, "status", str(plan), "--json", env=env)
    assert res.exit_code == 0 and json.loads(res.output)["waves"][0]["gates"][0]["status"] == "pass"
