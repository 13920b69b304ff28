"""`crmkit training mask`: nothing personal survives, references hold, pseudonyms are keyed by the salt."""

from __future__ import annotations

import shutil

import polars as pl
import pytest
from sqlalchemy import create_engine, inspect, text

from crmkit.db.loader import open_loader
from crmkit.training import pseudonym as P
from crmkit.training.mask import dangling, read_all
from tests.conftest import ROOT, cli

RULES = ROOT / "configs" / "training" / "mask.yaml"
SCENARIO = str(ROOT / "configs" / "training" / "sales-en.yaml")
SALT = {"CRMKIT_MASK_SALT": "a-long-test-salt-0001"}
MASKED = {
    "users": ["name", "email"],
    "accounts": ["name", "phone", "email", "address"],
    "contacts": ["first_name", "last_name", "full_name", "email", "phone", "mobile", "address"],
    "leads": ["full_name", "company", "email", "phone"],
}


def world(url: str, scenario: str = SCENARIO, seed: str = "8") -> None:
    res = cli("training", "generate", "--scenario", scenario, "--seed", seed, "--target", url)
    assert res.exit_code == 0, res.output


def all_cells(url: str) -> tuple[set[str], list[str]]:
    """Every value of every column of every table, as text; and the long text values."""
    engine = create_engine(url)
    cells: set[str] = set()
    texts: list[str] = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for v in row:
                    if v is not None:
                        cells.add(str(v))
                        if isinstance(v, str) and len(v) > 20:
                            texts.append(v)
    engine.dispose()
    return cells, texts


def frames(url: str) -> dict[str, pl.DataFrame]:
    loader = open_loader(url)
    try:
        return read_all(loader)
    finally:
        loader.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('prod') / 'prod.db'}"
    world(url)
    return url


def test_no_original_value_survives_and_references_hold(source, tmp_path):
    target = f"sqlite:///{tmp_path / 'masked.db'}"
    res = cli("training", "mask", "--source", source, "--target", target, "--rules", str(RULES), env=SALT)
    assert res.exit_code == 0, res.output
    before, after = frames(source), frames(target)
    originals = {v for t, cols in MASKED.items() for c in cols for v in before[t][c].drop_nulls().to_list()}
    cells, texts = all_cells(target)
    assert not originals & cells  # no cell of any table equals an original value
    needles = [v for v in originals if len(v) >= 8]  # names, e-mails, phones inside free text
    hits = [(n, t) for t in texts for n in needles if n in t]
    assert hits == []
    assert dangling(after) == []
    assert {t: f.height for t, f in after.items()} == {t: f.height for t, f in before.items()}
    # the same person gets the same pseudonym in every table
    c, k = after["contacts"], after["cases"]
    named = k.join(c.select("id", "full_name", "email"), left_on="contact_id", right_on="id")
    assert (
        named.height
        and named.filter(
            ~pl.col("description").str.contains(pl.col("full_name"), literal=True)
            | ~pl.col("description").str.contains(pl.col("email"), literal=True)
        ).height
        == 0
    )
    # dates move by one shift per contact: a case keeps its time to resolution
    b = before["cases"].join(after["cases"], on="id", suffix="_m")
    assert (b["closed_at_m"] - b["opened_at_m"]).drop_nulls().equals((b["closed_at"] - b["opened_at"]).drop_nulls())
    shifts = b.filter(pl.col("contact_id").is_not_null()).with_columns(
        (pl.col("opened_at_m") - pl.col("opened_at")).alias("s")
    )
    assert shifts.group_by("contact_id").agg(pl.col("s").n_unique())["s"].max() == 1
    assert shifts.filter(pl.col("s") == pl.duration(days=0)).height == 0
    # the id map still resolves every masked legacy key
    engine = create_engine(target)
    with engine.connect() as conn:
        unresolved = conn.execute(
            text(
                "SELECT count(*) FROM crmkit_id_map m LEFT JOIN contacts c ON "
                "c.id = m.target_id WHERE m.entity = 'contacts' AND "
                "(c.id IS NULL OR c.legacy_key != m.legacy_key)"
            )
        ).scalar()
        assert unresolved == 0
        assert conn.execute(text("SELECT count(*) FROM crmkit_runs")).scalar() == 0
    engine.dispose()


def test_same_salt_same_pseudonym_other_salt_other(source, tmp_path):
    runs = {}
    for name, salt in (("a", "salt-number-one"), ("b", "salt-number-one"), ("c", "salt-number-two")):
        target = f"sqlite:///{tmp_path / (name + '.db')}"
        assert (
            cli(
                "training",
                "mask",
                "--source",
                source,
                "--target",
                target,
                "--rules",
                str(RULES),
                env={"CRMKIT_MASK_SALT": salt},
            ).exit_code
            == 0
        )
        runs[name] = frames(target)["contacts"].sort("id")
    for col in ("full_name", "email", "phone", "address"):
        assert runs["a"][col].equals(runs["b"][col])
        same = (runs["a"][col] == runs["c"][col]).sum()
        assert same == 0, col
    # and directly: one value, one salt → one pseudonym, wherever it is used
    names = pl.Series(["Ada Lovelace", "Ada Lovelace", "李雷"])
    assert P.full_name(names, "k1")[0] == P.full_name(names, "k1")[1] != P.full_name(names, "k2")[0]
    assert (
        P.name_token(pl.Series(["Ada"]), "k1", "first")[0]
        == P.full_name(pl.Series(["Ada Lovelace"]), "k1")[0].split()[0]
    )


def test_subset_keeps_every_reference(source, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        RULES.read_text(encoding="utf-8").replace(
            "# subset: {department: SALES_W, accounts: 0.5}", "subset: {department: SALES_W, accounts: 0.5}"
        ),
        encoding="utf-8",
    )
    target = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    del target
    url = f"sqlite:///{tmp_path / 'sub.db'}"
    assert cli("training", "mask", "--source", source, "--target", url, "--rules", str(rules), env=SALT).exit_code == 0
    before, after = frames(source), frames(url)
    assert dangling(after) == []
    west = int(before["departments"].filter(pl.col("code") == "SALES_W")["id"][0])
    assert after["accounts"].height == round(0.5 * before["accounts"].filter(pl.col("department_id") == west).height)
    assert set(after["accounts"]["department_id"].unique()) == {west}
    assert after["contacts"].height > 0 and after["activities"].height > 0


def test_masking_into_postgresql(source, pg_url):
    res = cli("training", "mask", "--source", source, "--target", pg_url, "--rules", str(RULES), env=SALT)
    assert res.exit_code == 0, res.output
    assert dangling(frames(pg_url)) == []
    again = cli("training", "mask", "--source", source, "--target", pg_url, "--rules", str(RULES), env=SALT)
    assert again.exit_code == 2 and "already holds" in again.stderr


@pytest.mark.parametrize(
    "edit, env, fragment",
    [
        (None, {}, "CRMKIT_MASK_SALT is not set"),
        (('salt: "${CRMKIT_MASK_SALT}"', "salt: plain-text-salt"), SALT, "must come from the environment"),
        (("    mobile: phone\n", ""), SALT, "contacts.mobile holds personal data and has no rule"),
        (("notes: scrub", "notes: scrambled"), SALT, "columns.contacts.notes"),
    ],
    ids=["no-salt", "literal-salt", "uncovered-column", "unknown-kind"],
)
def test_rule_errors_are_one_line_and_write_nothing(source, tmp_path, monkeypatch, edit, env, fragment):
    monkeypatch.delenv("CRMKIT_MASK_SALT", raising=False)
    rules = tmp_path / "rules.yaml"
    shutil.copy(RULES, rules)
    if edit:
        body = rules.read_text(encoding="utf-8")
        assert edit[0] in body
        rules.write_text(body.replace(edit[0], edit[1]), encoding="utf-8")
    target = tmp_path / "t.db"
    res = cli("training", "mask", "--source", source, "--target", f"sqlite:///{target}", "--rules", str(rules), env=env)
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert err.startswith("Error: ") and len(err.splitlines()) == 1 and fragment in err, err
    assert str(rules) in err
    assert not target.exists()
    assert "a-long-test-salt" not in res.output
