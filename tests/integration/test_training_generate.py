"""`crmkit training generate`: coherent, locale-true worlds, byte-identical for a seed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import phonenumbers
import polars as pl
import pytest
from sqlalchemy import create_engine, text

from crmkit.training.generate import generate
from crmkit.training.mask import dangling
from crmkit.training.scenario import load_scenario
from tests.conftest import ROOT, cli

SCENARIOS = ROOT / "configs" / "training"
EN = SCENARIOS / "sales-en.yaml"


def run_process(*args: str) -> None:
    """The CLI in a separate Python process (so hash randomisation differs between runs)."""
    code = "import sys; from crmkit.cli import main; sys.exit(main())"
    res = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_different_seed_different_data(tmp_path):
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        run_process("training", "generate", "--scenario", str(EN), "--seed", seed, "--out", str(tmp_path / name))
    a, b, c = digests(tmp_path / "a"), digests(tmp_path / "b"), digests(tmp_path / "c")
    assert set(a) >= {
        "contacts.csv",
        "accounts.csv",
        "opportunities.csv",
        "activities.csv",
        "cases.csv",
        "exercises.json",
        "manifest.json",
    }
    assert a == b
    changed = [f for f in a if f.endswith(".csv") and a[f] != c[f] and f not in ("departments.csv", "tags.csv")]
    assert len(changed) >= 7, changed


@pytest.mark.parametrize("locale", ["en_US", "zh_CN", "de_DE"])
def test_every_reference_resolves_and_values_fit_the_locale(locale):
    s, _ = load_scenario(EN)
    s = s.model_copy(update={"locale": locale, "unique": []})
    w = generate(s, 3)
    assert dangling(w.tables) == []
    c = w.tables["contacts"]
    assert c.height == 701  # 700 + the planted duplicate of the merge exercise
    region = {"en_US": "US", "zh_CN": "CN", "de_DE": "DE"}[locale]
    assert set(c["country"].unique()) == {region}
    for number in pl.concat([c["phone"], c["mobile"], w.tables["accounts"]["phone"]]).sample(1000, seed=1):
        assert phonenumbers.is_valid_number(phonenumbers.parse(number, None)), number
    names = c["full_name"]
    if locale == "zh_CN":
        assert names.str.contains(r"^[\u4e00-\u9fff]{2,4}$").all()
        assert w.tables["accounts"]["name"].str.ends_with("公司").all()
        assert c["email"].str.contains(r"^[a-z]+\.[a-z]+\d*@").all()  # pinyin
    else:
        assert names.str.contains(" ").all()
        suffixes = (
            ("GmbH", "AG", "KG", "OHG", "KGaA", "GbR", "e.V.", "e.G.", "mbH")
            if locale == "de_DE"
            else ("Inc.", "LLC", "Corp.", "Group", "Ltd.")
        )
        assert w.tables["accounts"]["name"].map_elements(lambda n: n.endswith(suffixes), return_dtype=pl.Boolean).all()
    # the activity / case / opportunity world hangs together
    o, a = w.tables["opportunities"], w.tables["accounts"]
    assert (
        o.join(a.select("id", pl.col("department_id").alias("d")), left_on="account_id", right_on="id")
        .filter(pl.col("department_id") != pl.col("d"))
        .height
        == 0
    )
    assert (o["close_date"] >= o["created_at"]).all()
    k = w.tables["cases"]
    closed = k.filter(pl.col("status") == "closed")
    assert closed["closed_at"].is_not_null().all() and (closed["closed_at"] > closed["opened_at"]).all()
    assert (k["sla_due_at"] > k["opened_at"]).all()
    open_stages = o.filter(pl.col("stage").is_in(["prospecting", "qualification", "proposal", "negotiation"]))
    assert (open_stages["close_date"] > s.dates.end).all()


def test_unique_fields_are_unique_and_an_impossible_one_is_named(tmp_path):
    s, _ = load_scenario(EN)
    w = generate(s, 1)
    assert w.tables["accounts"]["name"].is_unique().all()
    assert w.tables["users"]["email"].is_unique().all()
    emails = w.tables["contacts"]["email"].drop_nulls()
    assert emails.is_unique().all()
    big = tmp_path / "big.yaml"
    big.write_text(
        EN.read_text(encoding="utf-8")
        .replace("locale: en_US", "locale: zh_CN")
        .replace("unique: [users.email, accounts.name, contacts.email]", "unique: [contacts.full_name]")
        .replace("contacts: 360", "contacts: 90000"),
        encoding="utf-8",
    )
    res = cli("training", "generate", "--scenario", str(big), "--seed", "1", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert err.startswith("Error: ") and len(err.splitlines()) == 1
    assert "contacts.full_name" in err and "zh_CN" in err and "90,340 contacts" in err
    assert not (tmp_path / "o").exists()


def test_bad_scenario_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EN.read_text(encoding="utf-8").replace("closed_won: 18", "closed_wonn: 18"), encoding="utf-8")
    res = cli("training", "generate", "--scenario", str(bad), "--seed", "1", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    assert f"{bad}:" in res.stderr and "closed_wonn" in res.stderr and "Traceback" not in res.output


def test_out_and_target_are_exclusive(tmp_path):
    res = cli("training", "generate", "--scenario", str(EN), "--seed", "1")
    assert res.exit_code == 2 and "exactly one of --out" in res.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_generate_into_a_target_fills_the_id_map(request, backend):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    res = cli("training", "generate", "--scenario", str(EN), "--seed", "4", "--target", url, "--json")
    assert res.exit_code == 0, res.output
    counts = json.loads(res.output)["counts"]
    engine = create_engine(url)
    with engine.connect() as conn:
        for table, n in counts.items():
            assert conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar() == n
        mapped = conn.execute(
            text(
                "SELECT count(*) FROM crmkit_id_map m JOIN contacts c ON c.id = m.target_id "
                "AND m.entity = 'contacts' AND m.legacy_key = c.legacy_key"
            )
        ).scalar()
        assert mapped == counts["contacts"]
        kind = conn.execute(text("SELECT kind, status FROM crmkit_runs")).one()
        assert tuple(kind) == ("generate", "succeeded")
        assert (
            conn.execute(
                text("SELECT count(*) FROM contacts WHERE run_id IS NOT NULL OR row_hash IS NOT NULL")
            ).scalar()
            == 0
        )
        if backend == "postgresql":  # sequences moved past the generated ids: the CRM can add rows
            conn.execute(text("INSERT INTO tags (name) VALUES ('new')"))
    engine.dispose()
    again = cli("training", "generate", "--scenario", str(EN), "--seed", "4", "--target", url)
    assert again.exit_code == 2 and "already holds" in again.stderr
