"""Load profiles, thresholds and test-data partitioning (no load is generated here).

The runs themselves are in test_loadtest_run.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import MAPPINGS, ROOT, cli

PROFILES = sorted((ROOT / "configs" / "loadtest").glob("*.yaml"))
DOC = ROOT / "docs" / "loadtest-reference.md"

GOOD = """\
description: test
users: 4
duration: 10s
personas:
  sales:   {weight: 2, think_time: [0.1s, 0.5s]}
  service: {weight: 1}
thresholds:
  search: {p95: 300ms, error_rate: 1%}
  all:    {min_rps: 1}
"""


def assert_one_line_error(res, *fragments: str) -> str:
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("Error: ") and "Traceback" not in res.output, err
    for f in fragments:
        assert f in err, err
    return err


def profile(tmp_path: Path, text: str = GOOD, old: str = "", new: str = "") -> Path:
    assert old in text
    path = tmp_path / "p.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def line_of(path: Path, fragment: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if fragment in line)


# --- profiles --------------------------------------------------------------------------


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_shipped_profiles_are_valid(path):
    res = cli("loadtest", "check", "--profile", path.stem)
    assert res.exit_code == 0, res.output
    assert "valid" in res.output


def test_the_reference_pages_example_profile_is_valid(tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks, "docs/loadtest-reference.md has no yaml example"
    for i, block in enumerate(blocks):
        path = tmp_path / f"doc{i}.yaml"
        path.write_text(block, encoding="utf-8")
        res = cli("loadtest", "check", "--profile", str(path))
        assert res.exit_code == 0, (block, res.output)


def test_a_good_profile_checks(tmp_path):
    res = cli("loadtest", "check", "--profile", str(profile(tmp_path)))
    assert res.exit_code == 0 and "peak 4 users" in res.output


@pytest.mark.parametrize(
    ("old", "new", "where", "what"),
    [
        ("{p95: 300ms,", "{p96: 300ms,", "thresholds.search.p96", "unknown key"),
        ("  search: {p95", "  serch: {p95", "thresholds.serch", "unknown endpoint group 'serch'"),
        ("  all:    {min_rps: 1}", "  all:    {min_rps: 1, max_rps: 9}", "thresholds.all.max_rps", "unknown key"),
        ("  service: {weight: 1}", "  support: {weight: 1}", "personas.support", "unknown persona 'support'"),
        ("error_rate: 1%", "error_rate: 150%", "thresholds.search.error_rate", "between 0% and 100%"),
        ("p95: 300ms", "p95: soon", "thresholds.search.p95", "not a duration"),
        ("duration: 10s", "duration: 2d", "duration", "not a duration"),
        ("duration: 10s", "duration: 48h", "duration", "bounded"),
    ],
    ids=[
        "unknown-metric",
        "unknown-group",
        "unknown-metric-2",
        "unknown-persona",
        "bad-rate",
        "bad-ms",
        "bad-duration",
        "unbounded",
    ],
)
def test_profile_mistakes_name_file_line_and_key(tmp_path, old, new, where, what):
    path = profile(tmp_path, GOOD, old, new)
    err = assert_one_line_error(cli("loadtest", "check", "--profile", str(path)), where, what)
    assert err.startswith(f"Error: {path}:{line_of(path, new)}: "), err


def test_a_threshold_on_a_group_no_persona_sends_is_an_error(tmp_path):
    path = profile(tmp_path, GOOD, "  all:    {min_rps: 1}", "  report: {p95: 1s}")
    err = assert_one_line_error(
        cli("loadtest", "check", "--profile", str(path)), "thresholds: report", "no persona", "manager"
    )
    assert f"{path}:{line_of(path, 'thresholds:')}:" in err


def test_stages_that_do_not_add_up_to_the_duration(tmp_path):
    text = GOOD.replace("users: 4\n", "") + "stages:\n  - {kind: ramp, duration: 5s, users: 4}\n"
    path = profile(tmp_path, text)
    assert_one_line_error(cli("loadtest", "check", "--profile", str(path)), "duration is 10s", "add up to 5s")


def test_a_ramp_without_users(tmp_path):
    text = GOOD.replace("users: 4\nduration: 10s\n", "") + "stages:\n  - {kind: ramp, duration: 5s}\n"
    path = profile(tmp_path, text)
    err = assert_one_line_error(cli("loadtest", "check", "--profile", str(path)), "stages.0", "needs users")
    assert f":{line_of(path, 'kind: ramp')}:" in err


def test_an_unknown_profile_lists_the_known_ones():
    assert_one_line_error(cli("loadtest", "check", "--profile", "nosuch"), "no load profile 'nosuch'", "smoke")


def test_malformed_yaml(tmp_path):
    path = profile(tmp_path, GOOD, "personas:\n", "personas: [\n")
    assert_one_line_error(cli("loadtest", "check", "--profile", str(path)), f"{path}:", "invalid YAML")


# --- the run command refuses before doing anything ---------------------------------------


@pytest.fixture(scope="module")
def estate_db(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('lt') / 'crm.db'}"
    assert cli("migrate", "run", str(MAPPINGS / "acme-legacy.yaml"), "--target", url).exit_code == 0
    return url


@pytest.mark.parametrize(
    "host",
    [
        "http://10.1.2.3:8000",
        "http://crm.example.com",
        "http://localhost.evil.com",
        "ftp://127.0.0.1",
        "127.0.0.1:8000",
    ],
)
def test_load_is_only_aimed_at_loopback(estate_db, tmp_path, host):
    res = cli(
        "loadtest", "run", "--profile", "smoke", "--target", estate_db, "--host", host, "--report", str(tmp_path / "r")
    )
    assert_one_line_error(res, "--host")
    assert not (tmp_path / "r").exists()


def test_more_users_than_records_of_their_own_is_an_error_before_any_load(estate_db, tmp_path):
    from sqlalchemy import create_engine, text

    res = cli(
        "loadtest",
        "run",
        "--profile",
        "smoke",
        "--target",
        estate_db,
        "--users",
        "500",
        "--report",
        str(tmp_path / "r"),
    )
    assert_one_line_error(res, "lower --users")
    engine = create_engine(estate_db)
    with engine.connect() as conn:
        live = conn.execute(text("SELECT count(*) FROM crmkit_api_tokens WHERE revoked_at IS NULL")).scalar()
    engine.dispose()
    assert live == 0 and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "args,what",
    [
        (("--duration", "forever"), "--duration"),
        (("--duration", "3d"), "--duration"),
        (("--remote-workers", "2"), "--master-port"),
        (("--master-bind", "0.0.0.0"), "--remote-workers"),
    ],
    ids=["duration-words", "duration-days", "remote-no-port", "bind-public"],
)
def test_bad_run_options(estate_db, args, what):
    assert_one_line_error(cli("loadtest", "run", "--profile", "smoke", "--target", estate_db, *args), what)


def test_loadtest_help_has_examples():
    for args in (("loadtest",), ("loadtest", "run"), ("loadtest", "check"), ("loadtest", "worker")):
        assert "Example:" in cli(*args, "--help").output


# --- test data: every virtual user works on records of its own ---------------------------


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_slots_never_share_a_record_on_any_worker(estate_db, workers):
    from crmkit.api.db import make_engine
    from crmkit.loadtest import data, plan
    from crmkit.loadtest.profile import load_profile

    prof, _ = load_profile("pilot")
    needed = plan.slots_needed(prof, prof.peak_users(), workers)
    engine = make_engine(estate_db)
    estate = data.read_estate(engine)
    engine.dispose()
    slots = data.build_slots(estate, needed)
    for persona, kinds in (("sales", ("accounts", "contacts", "opportunities")), ("service", ("cases",))):
        assert len(slots[persona]) == needed[persona]
        for kind in kinds:
            owned = [r["id"] if isinstance(r, dict) else r for s in slots[persona] for r in s[kind]]
            assert len(owned) == len(set(owned)), f"{persona} {kind} shared"
        assert all(s["accounts" if persona == "sales" else "cases"] for s in slots[persona])
        per_worker = [slots[persona][w::workers] for w in range(workers)]
        assert sum(len(p) for p in per_worker) == needed[persona]
    by_id = {u["id"]: u for u in estate.users}
    acct_dept = {a["id"]: a["department_id"] for a in estate.accounts}
    for s in slots["sales"]:  # a rep only ever gets records of their own department
        assert by_id[s["user_id"]]["role"] == "sales"
        assert {acct_dept[a] for a in s["accounts"]} == {by_id[s["user_id"]]["department_id"]}


def test_slot_needs_cover_locusts_share_per_worker():
    from crmkit.loadtest.plan import slots_needed
    from crmkit.loadtest.profile import Persona, Profile

    prof = Profile(users=10, duration=10, personas={"sales": Persona(weight=3), "service": Persona(weight=1)})
    need = slots_needed(prof, 10, 2)
    assert need["sales"] >= 2 * (8 // 2 + 1) and need["sales"] % 2 == 0
    assert need["service"] >= 2 * 2


# --- thresholds and stages ----------------------------------------------------------------


def test_thresholds_judge_ceilings_floors_and_missing_groups():
    from crmkit.loadtest.thresholds import evaluate, first_breach

    groups = {
        "search": {"requests": 100, "p95": 250.0, "error_rate": 0.02, "rps": 4.0},
        "all": {"requests": 100, "p95": 250.0, "error_rate": 0.02, "rps": 4.0},
    }
    checks = {
        (c.group, c.metric): c
        for c in evaluate(
            {"search": {"p95": 300.0, "error_rate": 0.01}, "all": {"min_rps": 5.0}, "report": {"p95": 1000.0}}, groups
        )
    }
    assert checks[("search", "p95")].passed and not checks[("search", "error_rate")].passed
    assert not checks[("all", "min_rps")].passed and checks[("all", "min_rps")].measured == 4.0
    assert not checks[("report", "p95")].passed and checks[("report", "p95")].note == "no requests in this group"
    breach = first_breach({"all": {"min_rps": 5.0}, "search": {"error_rate": 0.01}}, groups, min_requests=50)
    assert breach is not None and breach.metric == "error_rate"  # floors wait for the end of the run
    assert first_breach({"search": {"error_rate": 0.01}}, groups, min_requests=500) is None


def test_users_and_duration_overrides_scale_the_stages():
    from crmkit.loadtest.plan import Overrides, stages
    from crmkit.loadtest.profile import load_profile

    prof, _ = load_profile("pilot")
    st = stages(prof, Overrides(users=90, duration_s=66))
    assert [s["users"] for s in st] == [60, 60, 90, 60]
    assert sum(s["duration"] for s in st) == pytest.approx(66)
    assert st[0]["spawn_rate"] == pytest.approx(60 / st[0]["duration"])
