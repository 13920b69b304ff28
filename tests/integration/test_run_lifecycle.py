"""Dead and stale runs, dry runs and the rollback's history row (issue 22, items 6 and 14),
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import subprocess

from tests.conftest import cli
from tests.integration import test_rollback_later_work as later
from tests.integration.test_rollback_later_work import ROWS, estate, one_line_error, run, sql

target, target_pg = later.target, later.target_pg  # the fixtures: a SQLite file, a PostgreSQL database


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def kill_in_history(target: str, rid: int, mapping: str = "case") -> None:
    """What SIGKILL leaves: the run marked running, its lock held by a process that is gone."""
    sql(target, "UPDATE crmkit_runs SET status = 'running', finished_at = NULL WHERE id = :r", r=rid)
    sql(
        target,
        "INSERT INTO crmkit_locks (mapping_name, run_id, host, pid, acquired_at) "
        "VALUES (:m, :r, :h, :p, '2026-01-01 00:00:00')",
        m=mapping,
        r=rid,
        h=socket.gethostname(),
        p=dead_pid(),
    )


def status(target: str, rid: int) -> str:
    return str(sql(target, "SELECT status FROM crmkit_runs WHERE id = :r", r=rid)[0][0])


def test_a_killed_run_is_marked_interrupted_by_the_next_run_and_then_resumes(tmp_path, target):
    mapping = estate(tmp_path)
    first = run(mapping, target)
    kill_in_history(target, first)
    res = cli("migrate", "run", str(mapping), "--target", target, "--resume", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["run_id"] == first and status(target, first) == "succeeded"

    kill_in_history(target, first)
    second = run(mapping, target)  # a new run, not a resume: the dead one is found and marked
    assert second == first + 1 and status(target, first) == "interrupted"


def test_resume_refuses_once_a_later_run_wrote_the_same_entities(tmp_path, target):
    mapping = estate(tmp_path)
    first = run(mapping, target)
    kill_in_history(target, first)
    estate(tmp_path, [["C1", "Li Wei Jr", "li@example.cn", "A1"], ROWS[1]])
    second = run(mapping, target)  # writes C1 anew
    estate(tmp_path)  # the sources as run 1 read them: its resume would put C1's old name back
    res = cli("migrate", "run", str(mapping), "--target", target, "--resume")
    one_line_error(res, f"run {first} cannot be resumed: run {second} has written", "without --resume")
    assert status(target, first) == "interrupted"


def test_resume_with_nothing_to_resume_says_so(tmp_path, target):
    mapping = estate(tmp_path)
    res = cli("migrate", "run", str(mapping), "--target", target, "--resume")
    one_line_error(res, "nothing to resume", "without --resume")
    run(mapping, target)
    one_line_error(cli("migrate", "run", str(mapping), "--target", target, "--resume"), "nothing to resume")


def test_dry_runs_take_no_run_id_and_the_rollback_history_names_its_mapping(tmp_path, target):
    mapping = estate(tmp_path)
    for _ in range(2):
        res = cli("migrate", "run", str(mapping), "--target", target, "--dry-run", "--json")
        assert res.exit_code == 0 and json.loads(res.stdout)["run_id"] is None, res.output
    assert "Dry run of case" in cli("migrate", "run", str(mapping), "--target", target, "--dry-run").stdout
    rid = run(mapping, target)
    assert rid == 1 and sql(target, "SELECT count(*) FROM crmkit_runs") == [(1,)]
    assert cli("migrate", "rollback", str(rid), "--target", target).exit_code == 0
    rows = json.loads(cli("migrate", "history", "--target", target, "--json").stdout)
    assert [r["action"] for r in rows].count("dry_run") == 3
    assert next(r for r in rows if r["action"] == "rollback")["mapping_name"] == "case"
