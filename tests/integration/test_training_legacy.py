"""`crmkit training legacy`: a messy estate whose migration matches its answer key."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import create_engine, text

from crmkit.training.legacy_mapping import render_mapping
from crmkit.training.scenario import load_scenario
from tests.conftest import MAPPINGS, ROOT, cli

SCENARIO = ROOT / "configs" / "training" / "legacy-zh.yaml"
CLASSES = {
    "required value is missing": "missing_required",
    "not found in": "orphan_reference",
    "was rejected in this run": "cascade_orphan",
}


def reason_class(reasons: str) -> set[str]:
    return {cls for fragment, cls in CLASSES.items() if fragment in reasons}


@pytest.fixture(scope="module")
def estate(tmp_path_factory) -> Path:
    """The default estate where the checked-in mapping expects it, relative to a copy of the mapping."""
    root = tmp_path_factory.mktemp("repo")
    res = cli(
        "training",
        "legacy",
        "--scenario",
        str(SCENARIO),
        "--seed",
        "7",
        "--out",
        str(root / "build" / "training-estate"),
    )
    assert res.exit_code == 0, res.output
    (root / "crmkit.yaml").write_text("", encoding="utf-8")  # the project root its mapping's ../../ reaches
    (root / "migrate" / "mappings").mkdir(parents=True)
    shutil.copy(MAPPINGS / "training-legacy.yaml", root / "migrate" / "mappings")
    return root


def test_checked_in_mapping_is_the_rendering_for_the_default_estate():
    s, _ = load_scenario(SCENARIO)
    expected = render_mapping(s, "../../build/training-estate/", "sqlite:///legacy.sqlite")
    assert (MAPPINGS / "training-legacy.yaml").read_text(encoding="utf-8") == expected


def test_estate_files_and_their_mess(estate):
    d = estate / "build" / "training-estate"
    assert {p.name for p in d.iterdir()} == {
        "legacy.sqlite",
        "contacts.xlsx",
        "leads.csv",
        "answer_key.json",
        "mapping.yaml",
    }
    raw = (d / "leads.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert raw.decode("gb18030").startswith("线索编号,姓名,公司") and b"\r\n" in raw
    sheet = pl.read_excel(
        d / "contacts.xlsx", sheet_name="联系人", read_options={"header_row": 2}, infer_schema_length=0
    )
    assert sheet.columns[:4] == ["编号", "客户编号", "姓", "名"]
    key = json.loads((d / "answer_key.json").read_text(encoding="utf-8"))
    classes = {p["class"] for p in key["problems"]}
    assert classes == {
        "missing_required",
        "orphan_reference",
        "cascade_orphan",
        "swapped_names",
        "mixed_date_format",
        "mixed_phone_format",
        "fullwidth",
    }
    variants = {p["variant"] for p in key["duplicates"]}
    assert variants == {"typo", "phone_format", "swapped_names"}
    assert {p["entity"] for p in key["duplicates"]} == {"accounts", "contacts", "leads"}
    wide = [p for p in key["problems"] if p["class"] == "fullwidth"]
    assert wide and all(p["field"] for p in wide)


def check_against_answer_key(url: str, doc: dict, key: dict) -> None:
    """Rejects equal the answer key's, key by key and class by class; every duplicate row loads."""
    assert doc["status"] == "succeeded"
    for entity, exp in key["expected"].items():
        got = doc["entities"][entity]
        assert (got["extracted"], got["rejected"], got["inserted"]) == (
            exp["extracted"],
            exp["rejected"],
            exp["inserted"],
        ), entity
    expected = {(p["entity"], p["key"]): p["class"] for p in key["problems"] if p["reject"]}
    engine = create_engine(url)
    with engine.connect() as conn:
        rejects = conn.execute(text("SELECT entity, legacy_key, reasons FROM crmkit_rejects")).all()
        loaded = {(e, k) for e, k in conn.execute(text("SELECT entity, legacy_key FROM crmkit_id_map"))}
    engine.dispose()
    assert {(e, k) for e, k, _ in rejects} == set(expected)
    for entity, legacy_key, reasons in rejects:
        assert expected[(entity, legacy_key)] in reason_class(reasons), (legacy_key, reasons)
    for pair in key["duplicates"]:
        assert (pair["entity"], pair["original"]) in loaded and (pair["entity"], pair["duplicate"]) in loaded


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_round_trip_matches_the_answer_key(request, estate, backend):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    res = cli(
        "migrate", "run", str(estate / "migrate" / "mappings" / "training-legacy.yaml"), "--target", url, "--json"
    )
    assert res.exit_code == 0, res.output
    key = json.loads((estate / "build" / "training-estate" / "answer_key.json").read_text(encoding="utf-8"))
    check_against_answer_key(url, json.loads(res.output), key)


def test_legacy_database_in_mariadb_round_trips(mysql_url, tmp_path, sqlite_url):
    scenario = ROOT / "configs" / "training" / "sales-en.yaml"
    res = cli(
        "training",
        "legacy",
        "--scenario",
        str(scenario),
        "--seed",
        "3",
        "--out",
        str(tmp_path / "est"),
        "--legacy-db",
        mysql_url,
    )
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "est" / "legacy.sqlite").exists()
    mapping = tmp_path / "est" / "mapping.yaml"
    assert "${CRMKIT_LEGACY_DB_URL}" in mapping.read_text(encoding="utf-8")
    run = cli("migrate", "run", str(mapping), "--target", sqlite_url, "--json", env={"CRMKIT_LEGACY_DB_URL": mysql_url})
    assert run.exit_code == 0, run.output
    key = json.loads((tmp_path / "est" / "answer_key.json").read_text(encoding="utf-8"))
    assert key["headers"] == "en"
    check_against_answer_key(sqlite_url, json.loads(run.output), key)
    again = cli(
        "training",
        "legacy",
        "--scenario",
        str(scenario),
        "--seed",
        "3",
        "--out",
        str(tmp_path / "e2"),
        "--legacy-db",
        mysql_url,
    )
    assert again.exit_code == 2 and "already has table" in again.stderr
    assert not (tmp_path / "e2" / "answer_key.json").exists()


def test_estate_bytes_are_the_same_for_a_seed(tmp_path):
    scenario = ROOT / "configs" / "training" / "sales-de.yaml"
    code = "import sys; from crmkit.cli import main; sys.exit(main())"
    args = ["training", "legacy", "--scenario", str(scenario), "--seed", "11"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--out", str(tmp_path / "a")], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert cli(*args, "--out", str(tmp_path / "b")).exit_code == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        a, b = ((tmp_path / d / name).read_bytes() for d in "ab")
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest(), name
