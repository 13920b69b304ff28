"""A mapping's dedupe: entry: duplicates merge before they load, and every legacy key resolves.

On the generated training estate, whose answer key lists every true duplicate pair.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import ROOT, cli, legacy_estate

RULES = ROOT / "configs" / "dedupe" / "training-accounts.yaml"


@pytest.fixture(scope="module")
def estate(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("estate")
    legacy_estate(out)
    mapping = out / "mapping.yaml"
    shutil.copy(RULES, out / RULES.name)  # the estate is the project: its mapping names files inside it
    (out / "mapping-dedupe.yaml").write_text(
        mapping.read_text(encoding="utf-8") + f"\ndedupe: {{accounts: {RULES.name}}}\n", encoding="utf-8"
    )
    return out


def pairs(url: str) -> tuple[set[tuple[str, str]], int]:
    """The pairs of legacy keys that share a golden row, and how many keys were merged into another."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT legacy_key, target_id FROM crmkit_id_map WHERE entity = 'accounts'")).all()
        dangling = conn.execute(
            text(
                "SELECT count(*) FROM crmkit_id_map m LEFT JOIN accounts a ON a.id = m.target_id "
                "WHERE m.entity = 'accounts' AND a.id IS NULL"
            )
        ).scalar()
    engine.dispose()
    assert dangling == 0, "every merged legacy key points at a golden row that exists"
    groups: dict[int, list[str]] = defaultdict(list)
    for key, target in rows:
        groups[target].append(key)
    found = {tuple(sorted(p)) for keys in groups.values() for p in combinations(keys, 2)}
    return found, sum(len(keys) - 1 for keys in groups.values())  # type: ignore[return-value]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_duplicates_merge_before_the_load_as_the_answer_key_says(request, estate, backend):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    answer = json.loads((estate / "answer_key.json").read_text(encoding="utf-8"))
    true = {tuple(sorted((d["duplicate"], d["original"]))) for d in answer["duplicates"] if d["entity"] == "accounts"}
    mapping = str(estate / "mapping-dedupe.yaml")
    res = cli("migrate", "run", mapping, "--target", url, "--json", "--max-rejects", "100%")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    accounts = doc["entities"]["accounts"]
    found, merged = pairs(url)
    precision, recall = len(found & true) / len(found), len(found & true) / len(true)
    tol = answer["tolerance"]
    assert precision >= tol["duplicates_precision"] and recall >= tol["duplicates_recall"], (precision, recall)
    assert accounts["merged"] == merged > 0
    assert accounts["inserted"] + accounts["merged"] + accounts["rejected"] == accounts["extracted"]
    # children of a merged duplicate load and point at the golden row: no more rejects than the answer key's
    expected = answer["expected"]["opportunities"]
    assert doc["entities"]["opportunities"]["rejected"] == expected["rejected"]
    # a second run merges the same way and writes nothing
    again = json.loads(cli("migrate", "run", mapping, "--target", url, "--json", "--max-rejects", "100%").output)
    assert again["entities"]["accounts"]["merged"] == accounts["merged"]
    assert again["entities"]["accounts"]["inserted"] == 0 and again["entities"]["accounts"]["updated"] == 0
    assert pairs(url) == (found, merged)


def test_a_dedupe_entry_for_an_entity_the_mapping_does_not_load_is_refused(estate, sqlite_url):
    bad = estate / "bad.yaml"
    bad.write_text(
        (estate / "mapping.yaml").read_text(encoding="utf-8") + f"\ndedupe: {{tags: {RULES.name}}}\n", encoding="utf-8"
    )
    res = cli("migrate", "run", str(bad), "--target", sqlite_url)
    assert res.exit_code == 2 and "dedupe.tags" in res.stderr and "loads no tags" in res.stderr
