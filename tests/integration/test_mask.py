"""`crmkit training mask`: nothing personal survives, nothing links back, references and order hold."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from sqlalchemy import create_engine, inspect, text

from crmkit.db.loader import open_loader
from crmkit.schema.models import ENTITY_MODELS
from crmkit.schema.vocabulary import public_columns
from crmkit.training import pseudonym as P
from crmkit.training.mask import dangling, read_all
from tests.conftest import ROOT, cli

RULES = ROOT / "configs" / "training" / "mask.yaml"
SCENARIO = str(ROOT / "configs" / "training" / "sales-en.yaml")
ZH = str(ROOT / "configs" / "training" / "legacy-zh.yaml")
SALT = {"CRMKIT_MASK_SALT": "a-long-test-salt-0001"}
MASKED = {
    "users": ["name", "email"],
    "accounts": ["name", "phone", "email", "address"],
    "contacts": ["first_name", "last_name", "full_name", "email", "phone", "mobile", "address"],
    "leads": ["full_name", "company", "email", "phone"],
}
#: Chinese surnames are drawn from the real distribution (Faker's zh_CN list): a masked one
#: equals other people's original surnames, never its own row's
REAL_VOCABULARY = {("contacts", "last_name")}


def world(url: str, scenario: str = SCENARIO, seed: str = "8") -> None:
    """A generated world, with the row hashes and run ids a migration leaves behind."""
    res = cli("training", "generate", "--scenario", scenario, "--seed", seed, "--target", url)
    assert res.exit_code == 0, res.output
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in ENTITY_MODELS:
            conn.execute(text(f'UPDATE "{table}" SET row_hash = id * 7919 + 104729, run_id = 1'))
    engine.dispose()


def tiny(tmp: Path, scenario: str = SCENARIO) -> str:
    """The scenario with a tenth of its rows (a fast world for the backend pairs)."""
    doc = yaml.safe_load(Path(scenario).read_text(encoding="utf-8"))
    for d in doc["departments"]:
        for k, v in d.items():
            if isinstance(v, int) and k != "code":
                d[k] = max(1, v // 10) if v else 0
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return str(path)


def mask(source: str, target: str, rules: Path = RULES, **env: str) -> None:
    res = cli("training", "mask", "--source", source, "--target", target, "--rules", str(rules), env={**SALT, **env})
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


def frames(url: str, id_map: bool = False) -> dict[str, pl.DataFrame]:
    loader = open_loader(url)
    try:
        out = read_all(loader)
        if id_map:
            out["crmkit_id_map"] = loader.query("SELECT * FROM crmkit_id_map").with_columns(
                pl.col("target_id", "run_id").cast(pl.Int64)
            )
        return out
    finally:
        loader.close()


def origin(before: pl.DataFrame, after: pl.DataFrame, salt: str = SALT["CRMKIT_MASK_SALT"]) -> pl.DataFrame:
    """Each masked row beside its source row (columns ``*_src``), matched through the keyed
    hash of the legacy key: the test knows the salt, an attacker does not."""
    src = before.with_columns(P.key(before["legacy_key"], salt).alias("legacy_key"))
    return after.join(src, on="legacy_key", suffix="_src")


def links(before: dict[str, pl.DataFrame], after: dict[str, pl.DataFrame]) -> dict[str, int]:
    """Per table.column (public ones aside): masked rows that a join on that column links to
    the source.  Text, ids, references, keys and hashes: a match with ANY source row counts;
    dates and other values (which coincide by chance): a match with the row's own origin."""
    out = {}
    for table, a in after.items():
        b = before[table]
        pairs = origin(b, a) if "legacy_key" in a.columns and a.height else None
        public = public_columns(table) if table in before and table != "crmkit_id_map" else ("entity", "source_name")
        for col in a.columns:
            if col in public:
                continue
            dtype = a.schema[col]
            if table == "crmkit_id_map" and col == "target_id":  # ids are per entity
                n = a.join(b, on=["entity", col]).height
            elif dtype in (pl.String, pl.Int64, pl.Int32) and (table, col) not in REAL_VOCABULARY:
                n = a.filter(pl.col(col).is_in(b[col].drop_nulls().implode())).height
            else:
                assert pairs is not None and pairs.height == a.height, f"{table}: rows without their origin"
                n = pairs.filter(pl.col(col) == pl.col(f"{col}_src")).height
            if n:
                out[f"{table}.{col}"] = n
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('prod') / 'prod.db'}"
    world(url)
    return url


@pytest.fixture(scope="module")
def zh(tmp_path_factory) -> tuple[str, str]:
    """A zh_CN world and its masked copy."""
    d = tmp_path_factory.mktemp("zh")
    src, dst = f"sqlite:///{d / 'prod.db'}", f"sqlite:///{d / 'masked.db'}"
    world(src, ZH, "7")
    mask(src, dst)
    return src, dst


def test_no_original_value_survives_and_references_hold(source, tmp_path):
    target = f"sqlite:///{tmp_path / 'masked.db'}"
    mask(source, target)
    before, after = frames(source), frames(target)
    originals = {v for t, cols in MASKED.items() for c in cols for v in before[t][c].drop_nulls().to_list()}
    cells, texts = all_cells(target)
    assert not originals & cells  # no cell of any table equals an original value
    needles = [v for v in originals if len(v) >= 8]  # names, e-mails, phones inside free text
    hits = [(n, t) for t in texts for n in needles if n in t]
    assert hits == []
    assert dangling(after) == []
    assert {t: f.height for t, f in after.items()} == {t: f.height for t, f in before.items()}
    # the same name becomes the same fake in every column: full name = first + last still
    c = origin(before["contacts"], after["contacts"])
    whole = c.filter(pl.col("full_name_src") == pl.col("first_name_src") + " " + pl.col("last_name_src"))
    assert whole.height > 0.9 * c.height
    assert (whole["full_name"] == whole["first_name"] + " " + whole["last_name"]).all()
    # dates move by one shift per account: a case keeps its time to resolution...
    b = origin(before["cases"], after["cases"])
    assert (b["closed_at"] - b["opened_at"]).drop_nulls().equals((b["closed_at_src"] - b["opened_at_src"]).drop_nulls())
    shifts = b.filter(pl.col("contact_id").is_not_null()).with_columns(
        (pl.col("opened_at") - pl.col("opened_at_src")).alias("s")
    )
    assert shifts.group_by("contact_id").agg(pl.col("s").n_unique())["s"].max() == 1
    assert shifts.filter(pl.col("s") == pl.duration(days=0)).height == 0
    # ...and no contact is created before its account
    assert_children_after_parents(frames(source), after)
    # the id map still resolves every masked legacy key, at the renumbered ids
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


def assert_children_after_parents(before: dict[str, pl.DataFrame], after: dict[str, pl.DataFrame]) -> None:
    """Where the source has a child dated on or after its parent, so does the copy."""
    for child, col, ref in (("contacts", "created_at", "account_id"), ("opportunities", "created_at", "account_id")):
        for frames_ in (before, after):
            acc = frames_["accounts"].select(pl.col("id").alias(ref), pl.col("created_at").alias("parent"))
            joined = frames_[child].join(acc, on=ref).filter(pl.col(col).is_not_null() & pl.col("parent").is_not_null())
            bad = joined.filter(pl.col(col) < pl.col("parent"))
            if frames_ is before:
                assert joined.height and bad.height == 0, f"the generated world has {child} before their account"
            else:
                assert bad.height == 0, f"{bad.height} masked {child} dated before their account"


def test_same_salt_same_pseudonym_other_salt_other_ids_random_unless_keyed(source, tmp_path):
    runs = {}
    for name, salt, key in (
        ("a", "salt-number-one", "k1"),
        ("b", "salt-number-one", "k1"),
        ("c", "salt-number-two", ""),
    ):
        target = f"sqlite:///{tmp_path / (name + '.db')}"
        mask(source, target, CRMKIT_MASK_SALT=salt, CRMKIT_MASK_KEY=key)
        runs[name] = frames(target)["contacts"].sort("legacy_key")
    for col in ("full_name", "email", "phone", "address"):
        assert runs["a"][col].equals(runs["b"][col])
    assert runs["a"]["id"].equals(runs["b"]["id"])  # the same CRMKIT_MASK_KEY: the same ids
    assert set(runs["c"]["legacy_key"]).isdisjoint(runs["a"]["legacy_key"])  # other salt, other keys
    assert set(runs["c"]["full_name"]).isdisjoint(runs["a"]["full_name"])
    d = f"sqlite:///{tmp_path / 'd.db'}"
    mask(source, d, CRMKIT_MASK_SALT="salt-number-one")  # no key: a random one
    other = frames(d)["contacts"].sort("legacy_key")
    assert other["full_name"].equals(runs["a"]["full_name"]) and (other["id"] != runs["a"]["id"]).mean() > 0.9
    # and directly: one value, one salt → one pseudonym, wherever it is used
    names = pl.Series(["Ada Lovelace", "Ada Lovelace", "李雷"])
    assert P.full_name(names, "k1")[0] == P.full_name(names, "k1")[1] != P.full_name(names, "k2")[0]


def test_subset_keeps_every_reference(source, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        RULES.read_text(encoding="utf-8").replace(
            "# subset: {department: SALES_W, accounts: 0.5}", "subset: {department: SALES_W, accounts: 0.5}"
        ),
        encoding="utf-8",
    )
    url = f"sqlite:///{tmp_path / 'sub.db'}"
    mask(source, url, rules)
    before, after = frames(source), frames(url)
    assert dangling(after) == []
    west = before["departments"].filter(pl.col("code") == "SALES_W")
    new_west = origin(west, after["departments"])["id"].to_list()
    west_accounts = before["accounts"].filter(pl.col("department_id") == west["id"][0]).height
    assert after["accounts"].height == round(0.5 * west_accounts)
    assert after["accounts"]["department_id"].unique().to_list() == new_west
    assert after["contacts"].height > 0 and after["activities"].height > 0


@pytest.mark.parametrize("src_kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize("dst_kind", ["sqlite", "postgresql"])
def test_every_source_and_target_pair(src_kind, dst_kind, tmp_path, pg_new):
    """PostgreSQL gives dates as dates, SQLite as text: both sides, both ways."""
    url = {"sqlite": lambda n: f"sqlite:///{tmp_path / n}.db", "postgresql": lambda n: pg_new()}
    src, dst = url[src_kind]("src"), url[dst_kind]("dst")
    world(src, tiny(tmp_path))
    mask(src, dst)
    before, after = frames(src, id_map=True), frames(dst, id_map=True)
    assert dangling(after) == []
    assert {t: f.height for t, f in after.items()} == {t: f.height for t, f in before.items()}
    assert links(before, after) == {}
    c = origin(before["contacts"], after["contacts"]).filter(pl.col("created_at").is_not_null())
    assert c.height and (c["created_at"] != c["created_at_src"]).all() and c["created_at"].dtype == pl.Date
    if dst_kind == "postgresql":
        again = cli("training", "mask", "--source", src, "--target", dst, "--rules", str(RULES), env=SALT)
        assert again.exit_code == 2 and "already holds" in again.stderr


def test_the_copy_cannot_be_joined_back_to_its_source(source, zh, tmp_path):
    """Re-identification: every column, id, reference, hash and key of the copy joined to the
    source links no row, except on the columns the schema declares public."""
    target = f"sqlite:///{tmp_path / 'masked.db'}"
    mask(source, target)
    for src, dst in ((source, target), zh):
        before, after = frames(src, id_map=True), frames(dst, id_map=True)
        assert before["contacts"]["row_hash"].is_not_null().all()  # the source has them: they must go
        assert before["crmkit_id_map"].height > 0
        assert links(before, after) == {}


def test_chinese_names_stay_distinct_and_realistic(zh):
    before, after = frames(zh[0]), frames(zh[1])
    for table, col in (("accounts", "name"), ("contacts", "full_name"), ("contacts", "last_name"), ("users", "name")):
        n, m = before[table][col].n_unique(), after[table][col].n_unique()
        assert m >= 0.95 * n, f"{table}.{col}: {n} distinct names became {m}"
    # real surnames (Faker's weighted zh_CN list), the common ones among them
    from faker.providers.person.zh_CN import Provider

    surnames = after["contacts"]["last_name"]
    assert surnames.is_in(list(Provider.last_names)).all()
    assert len(set(list(Provider.last_names)[:20]) & set(surnames)) >= 15
    assert after["accounts"]["name"].str.ends_with("有限公司").mean() > 0.5  # the legal form stays
    c = origin(before["contacts"], after["contacts"])
    assert (c["last_name"] != c["last_name_src"]).all() and (c["full_name"] != c["full_name_src"]).all()
    assert (c["full_name"] == c["last_name"] + c["first_name"]).all()
    assert_children_after_parents(before, after)


CORPUS = [
    (
        "Met LI NA and her husband Peter Hargreaves at 42 Wellington Road, Leeds LS1 4AB. "
        "Write to peter dot hargreaves at gmail dot com, or call 0113 496 0822.",
        ["LI NA", "Hargreaves", "Wellington", "LS1 4AB", "gmail", "496 0822"],
    ),
    (
        "客户李娜（身份证号110105198503151234）住北京市朝阳区建国路88号，丈夫王建国，邮箱 lina at qq dot com。",
        ["李娜", "110105", "19850315", "1234", "建国路", "王建国", "朝阳", "qq dot com"],
    ),
    (
        "Frau Sabine Müller-Lüdenscheidt (geb. 03.04.1975), Hauptstraße 12, 80331 München; "
        "E-Mail sabine punkt mueller at web punkt de, Tel. 089 1234567.",
        ["Sabine", "Lüdenscheidt", "1975", "Hauptstraße", "80331", "mueller", "web punkt de", "1234567"],
    ),
]


def test_free_text_is_replaced_wholesale_by_default(source, tmp_path):
    """Names in other case, names in no column, addresses, obfuscated e-mails, ID numbers:
    none survives the default rules, in English, Chinese or German."""
    prod = tmp_path / "prod.db"
    shutil.copy(source.removeprefix("sqlite:///"), prod)
    engine = create_engine(f"sqlite:///{prod}")
    with engine.begin() as conn:
        ids = conn.execute(text("SELECT id FROM contacts ORDER BY id LIMIT 3")).scalars().all()
        for (note, _), i in zip(CORPUS, ids):
            conn.execute(text("UPDATE contacts SET notes = :n WHERE id = :i"), {"n": note, "i": i})
            conn.execute(text("UPDATE cases SET description = :n WHERE id = :i"), {"n": note, "i": i})
            conn.execute(text("UPDATE activities SET body = :n WHERE id = :i"), {"n": note, "i": i})
    engine.dispose()
    target = f"sqlite:///{tmp_path / 'masked.db'}"
    mask(f"sqlite:///{prod}", target)
    before, after = frames(f"sqlite:///{prod}"), frames(target)
    for table, col in (("contacts", "notes"), ("cases", "description"), ("activities", "body")):
        pairs = origin(before[table], after[table])
        for note, frags in CORPUS:
            (new,) = pairs.filter(pl.col(f"{col}_src") == note)[col].to_list()
            assert [f for f in frags if f in new] == [], (table, col, new)
            assert abs(len(new) - len(note)) <= 2, (note, new)  # about as long
            assert bool(re.search(P.CJK, new)) == bool(re.search(P.CJK, note))  # the same script


@pytest.mark.parametrize(
    "edit, env, fragment",
    [
        (None, {}, "CRMKIT_MASK_SALT is not set"),
        (('salt: "${CRMKIT_MASK_SALT}"', "salt: plain-text-salt"), SALT, "must come from the environment"),
        (("    mobile: phone\n", ""), SALT, "contacts.mobile holds personal data and has no rule"),
        (("notes: text", "notes: scrambled"), SALT, "columns.contacts.notes"),
        ((" close_date: shift_date,", ""), SALT, "opportunities.close_date is a date and has no rule"),
        (("columns:", "persons: {contacts: id}\ncolumns:"), SALT, "remove `persons:`"),
    ],
    ids=["no-salt", "literal-salt", "uncovered-column", "unknown-kind", "unshifted-date", "old-persons"],
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
