"""`crmkit sandbox`: isolated trainee databases that reset to their seeded state."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import create_engine, text

from crmkit.training import sandbox as sbx
from crmkit.training.hashes import table_hashes
from tests.conftest import PG_URL, ROOT, cli

SCENARIO = str(ROOT / "configs" / "training" / "sales-en.yaml")


def change(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE contacts SET full_name = 'Changed by trainee' WHERE id = 1"))
        conn.execute(text("DELETE FROM taggings"))
        conn.execute(text("INSERT INTO tags (name) VALUES ('mine')"))
    engine.dispose()


def test_ten_sqlite_sandboxes_change_one_reset_it(tmp_path):
    home = str(tmp_path / "home")
    res = cli("sandbox", "create", "pilot", "--scenario", SCENARIO, "--trainees", "10", "--home", home, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert len(doc["trainees"]) == 10 and [e["id"] for e in doc["exercises"]] == ["q1", "q2", "q3"]
    sb = sbx.load(tmp_path / "home", "pilot")
    seeded = sb.seeded
    urls = dict(sbx.trainee_urls(tmp_path / "home", sb))
    change(urls["t04"])
    changed = table_hashes(urls["t04"])
    assert {t for t in seeded if changed[t] != seeded[t]} == {"contacts", "taggings", "tags"}
    assert table_hashes(urls["t05"]) == seeded  # the others are isolated
    res = cli("sandbox", "reset", "pilot", "--trainee", "t04", "--verify", "--home", home)
    assert res.exit_code == 0, res.output
    assert "every table equals the seeded state" in res.output
    assert table_hashes(urls["t04"]) == seeded
    listed = json.loads(cli("sandbox", "list", "--home", home, "--json").output)
    assert [(s["name"], len(s["trainees"])) for s in listed] == [("pilot", 10)]
    assert cli("sandbox", "drop", "pilot", "--home", home).exit_code == 0
    assert not (tmp_path / "home" / "sandboxes" / "pilot").exists()


def test_department_sandbox_and_grading(tmp_path):
    home = str(tmp_path / "home")
    res = cli(
        "sandbox",
        "create",
        "west",
        "--scenario",
        SCENARIO,
        "--department",
        "SALES_W",
        "--trainees",
        "2",
        "--home",
        home,
    )
    assert res.exit_code == 0, res.output
    sb = sbx.load(tmp_path / "home", "west")
    url = sb.url(tmp_path / "home", "t01")
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM departments")).scalar() == 1
    ex = {e["id"]: e for e in sb.exercises}
    assert "q2" not in ex  # the merge exercise belongs to SALES_E
    sheet = json.loads(cli("training", "check", "west", "--home", home, "--json").output)
    assert sheet["t01"]["score"] == 0 and sheet["t01"]["out_of"] == 4
    with engine.begin() as conn:  # trainee t01 does both tasks
        tag = conn.execute(text("SELECT id FROM tags WHERE name = :n"), {"n": ex["q1"]["answer"]["tag"]}).scalar()
        conn.execute(
            text("INSERT INTO taggings (tag_id, account_id) VALUES (:t, :a)"),
            {"t": tag, "a": ex["q1"]["answer"]["account_id"]},
        )
        conn.execute(
            text(
                "UPDATE cases SET status = 'closed', closed_at = '2025-01-02 10:00:00.000000', "
                "description = 'Resolution: replaced the unit' WHERE id = :i"
            ),
            {"i": ex["q3"]["answer"]["case_id"]},
        )
    engine.dispose()
    res = cli("training", "check", "west", "--home", home, "--json")
    sheet = json.loads(res.output)
    assert sheet["t01"]["score"] == 4 and sheet["t02"]["score"] == 0
    table = cli("training", "check", "west", "--trainee", "t01", "--home", home)
    assert "Score sheet: west/t01" in table.output and "closed with a resolution" in table.output


def test_merge_exercise_is_graded_on_references(tmp_path):
    home = tmp_path / "home"
    assert (
        cli(
            "sandbox", "create", "east", "--scenario", SCENARIO, "--department", "SALES_E", "--home", str(home)
        ).exit_code
        == 0
    )
    sb = sbx.load(home, "east")
    merge = next(e for e in sb.exercises if e["kind"] == "merge_duplicate_contact")
    keep, gone = merge["answer"]["contact_ids"]
    engine = create_engine(sb.url(home, "t01"))
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM activities WHERE contact_id = :g"), {"g": gone}).scalar() > 0
        conn.execute(text("UPDATE contacts SET active = 0 WHERE id = :g"), {"g": gone})
    half = json.loads(cli("training", "check", "east", "--home", str(home), "--json").output)["t01"]["exercises"]
    assert next(g for g in half if g["id"] == "q2")["score"] == 1.5  # merged, but references left
    with engine.begin() as conn:
        for table in ("activities", "cases", "taggings"):
            conn.execute(text(f"UPDATE {table} SET contact_id = :k WHERE contact_id = :g"), {"k": keep, "g": gone})
    engine.dispose()
    full = json.loads(cli("training", "check", "east", "--home", str(home), "--json").output)["t01"]["exercises"]
    assert next(g for g in full if g["id"] == "q2")["score"] == 3


@pytest.mark.slow
def test_postgresql_sandboxes_reset_from_the_template(tmp_path, pg_url):
    home = str(tmp_path / "home")
    server = PG_URL
    # the sandbox's databases are made on the server itself, not in this module's database:
    # a name of its own, so suites running at the same time on one server do not meet
    name = f"pgpilot_{uuid.uuid4().hex[:8]}"
    res = cli(
        "sandbox",
        "create",
        name,
        "--scenario",
        SCENARIO,
        "--trainees",
        "10",
        "--backend",
        "postgresql",
        "--server",
        server,
        "--home",
        home,
    )
    assert res.exit_code == 0, res.output
    sb = sbx.load(tmp_path / "home", name)
    try:
        url = sb.url(tmp_path / "home", "t07")
        change(url)
        assert table_hashes(url) != sb.seeded
        res = cli("sandbox", "reset", name, "--trainee", "t07", "--verify", "--home", home)
        assert res.exit_code == 0, res.output
        assert table_hashes(url) == sb.seeded
    finally:
        assert cli("sandbox", "drop", name, "--home", home).exit_code == 0
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM pg_database WHERE datname LIKE :n"), {"n": f"crmkit_sb_{name}%"}
        ).scalar()
    engine.dispose()
    assert left == 0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("sandbox", "reset", "nope"), "no sandbox named 'nope'"),
        (("sandbox", "create", "Bad-Name", "--scenario", SCENARIO), "sandbox name 'Bad-Name'"),
        (("sandbox", "create", "x", "--scenario", SCENARIO, "--department", "NOPE"), "no department 'NOPE'"),
    ],
    ids=["unknown", "bad-name", "unknown-department"],
)
def test_sandbox_errors_are_one_line(tmp_path, args, fragment):
    res = cli(*args, "--home", str(tmp_path / "home"))
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert err.startswith("Error: ") and len(err.splitlines()) == 1 and fragment in err
    assert not (tmp_path / "home" / "sandboxes" / "x").exists()


def test_existing_name_is_refused(tmp_path):
    home = str(tmp_path / "home")
    assert cli("sandbox", "create", "dup", "--scenario", SCENARIO, "--home", home).exit_code == 0
    res = cli("sandbox", "create", "dup", "--scenario", SCENARIO, "--home", home)
    assert res.exit_code == 2 and "exists already" in res.stderr
    assert (tmp_path / "home" / "sandboxes" / "dup" / "t01.db").exists()


def test_home_and_server_come_from_the_environment_through_the_cli(tmp_path):
    home = tmp_path / "home"
    env = {"CRMKIT_HOME": str(home)}
    assert cli("sandbox", "create", "envy", "--scenario", SCENARIO, env=env).exit_code == 0
    assert (home / "sandboxes" / "envy" / "sandbox.json").exists()
    res = cli("sandbox", "list", "--json", env=env)
    assert res.exit_code == 0 and "envy" in res.output
    create_pg = ("sandbox", "create", "pg", "--scenario", SCENARIO, "--backend", "postgresql")
    res = cli(*create_pg, env={**env, "CRMKIT_SANDBOX_PG_URL": ""})
    assert res.exit_code == 2 and "give --server URL or set CRMKIT_SANDBOX_PG_URL" in res.stderr
    res = cli(*create_pg, env={**env, "CRMKIT_SANDBOX_PG_URL": "sqlite:///x.db"})
    assert res.exit_code == 2 and "--server must be a PostgreSQL URL" in res.stderr
