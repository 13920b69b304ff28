"""Properties of `crmkit migrate run` over generated mappings and generated source bytes.

Whatever the mapping YAML and the CSV/xlsx/SQLite bytes are, the run ends with exit 0, 1 or 2,
never a traceback; each entity's outcomes add up to the rows it extracted (and the target holds
what the run says it wrote); and the legacy SQLite database it read has the same bytes after.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import cli

COLUMNS = ["id", "name", "email", "phone", "created", "amount", "tier", "状态"]
OUTCOMES = ("filtered", "inserted", "updated", "unchanged", "merged", "rejected")

cell = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "0", "-1", "1e309", "NaN", "=1+1", "@SUM(A1)", "是", "2024-02-30", "13800138000", "a@b"]),
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6).map(lambda s: s + "\x00"),
)
rows = st.lists(st.lists(cell, min_size=len(COLUMNS), max_size=len(COLUMNS)), max_size=8)


def mostly(valid: st.SearchStrategy[Any], broken: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` eleven times in twelve: most examples get past the mapping's checks to the data."""
    return st.sampled_from(range(12)).flatmap(lambda i: broken if i == 0 else valid)


transform = mostly(
    st.sampled_from(["strip", "upper", "lower", "nfkc", "email", "collapse_spaces", {"date": ["%Y-%m-%d"]}]),
    st.sampled_from(["nosuch", {"date": 5}, {"replace": {"pattern": "("}}]),
)
field_spec = mostly(
    st.one_of(
        st.sampled_from(COLUMNS),
        st.fixed_dictionaries({"column": st.sampled_from(COLUMNS), "transform": st.lists(transform, max_size=3)}),
        st.fixed_dictionaries({"const": st.text(max_size=5)}),
        st.fixed_dictionaries(
            {
                "column": st.sampled_from(COLUMNS),
                "map": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3),
                "default": st.text(max_size=3),
            }
        ),
        st.fixed_dictionaries(
            {"column": st.sampled_from(COLUMNS), "null_if": st.lists(st.text(max_size=3), max_size=3)}
        ),
    ),
    st.one_of(
        st.sampled_from(["missing_column", None, 7, [], {"ref": "nosuch"}]),
        st.fixed_dictionaries({"const": st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=2))}),
        st.fixed_dictionaries({"column": st.sampled_from(COLUMNS), "map": st.text(max_size=3)}),
    ),
)
account_fields = st.fixed_dictionaries(
    {"name": field_spec},
    optional={
        "industry": field_spec,
        "phone": field_spec,
        "tier": field_spec,
        "created_at": field_spec,
        "website": field_spec,
        "city": field_spec,
    },
)
source = mostly(
    st.sampled_from(
        [
            {"kind": "csv", "path": "source.csv"},
            {"kind": "xlsx", "path": "source.xlsx"},
            {"kind": "sql", "url": "sqlite:///legacy.sqlite", "table": "T"},
            {"kind": "sql", "url": "sqlite:///legacy.sqlite", "query": 'SELECT * FROM "T" WHERE id IS NOT NULL'},
        ]
    ),
    st.sampled_from(
        [
            {"kind": "csv", "path": "source.csv", "encoding": "gb18030"},
            {"kind": "csv", "path": "source.csv", "delimiter": ";"},
            {"kind": "csv", "path": "../source.csv"},
            {"kind": "sql", "url": "sqlite:///legacy.sqlite", "query": 'DELETE FROM "T"'},
            {"kind": "sql", "url": "sqlite:///legacy.sqlite", "query": 'SELECT 1; DROP TABLE "T"'},
            {
                "kind": "sql",
                "url": "sqlite:///legacy.sqlite",
                "query": 'WITH d AS (DELETE FROM "T" RETURNING *) SELECT * FROM d',
            },
        ]
    ),
)
feed = st.fixed_dictionaries(
    {
        "from": st.just("src"),
        "key": mostly(st.just("id"), st.sampled_from(["name", "missing", ["id", "name"]])),
        "fields": account_fields,
    },
    optional={
        "filter": mostly(
            st.sampled_from(
                ["id IS NOT NULL", "amount <> '0'", "upper(tier) IN ('A', 'B')", "状态 IS NULL OR 状态 <> '无效'"]
            ),
            st.sampled_from(["nosuch = 1", "1 = 1 OR", "id IN (SELECT 1)", "read_csv('x') IS NULL"]),
        ),
        "on_vanished": st.sampled_from(["keep", "deactivate", "delete"]),
    },
)
mapping = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "name": st.sampled_from(["p", "legacy-2024_v1.0"]),
        "sources": st.fixed_dictionaries({"src": source}),
        "entities": st.fixed_dictionaries({"accounts": feed}),
    },
    optional={"max_rejects": st.sampled_from(["0", "10%", "100%", 3])},
)
encoding = st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "cp1252", "latin-1"])
# a few raw byte edits of the YAML text: the parser's errors must be one line too
mutation = mostly(
    st.just([]), st.lists(st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=3)), min_size=1, max_size=2)
)


def write_sources(folder: Path, data: list[list[str | None]], enc: str) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([["" if v is None else v for v in row] for row in data])
    (folder / "source.csv").write_bytes(buf.getvalue().encode(enc, errors="replace"))
    import xlsxwriter

    book = xlsxwriter.Workbook(str(folder / "source.xlsx"))
    sheet = book.add_worksheet()
    for r, row in enumerate([COLUMNS, *data]):
        for c, value in enumerate(row):
            if value is not None:
                sheet.write_string(r, c, value.replace("\x00", ""))
    book.close()
    con = sqlite3.connect(folder / "legacy.sqlite")
    with con:
        con.execute(f"CREATE TABLE T ({', '.join(f'{json.dumps(c)} TEXT' for c in COLUMNS)})")
        con.executemany(f"INSERT INTO T VALUES ({', '.join('?' * len(COLUMNS))})", data)
    con.close()


def outcomes_add_up(summary: dict[str, Any], target: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{target}")
    try:
        with engine.connect() as con:
            for entity, counts in summary["entities"].items():
                assert counts["extracted"] == sum(counts[k] for k in OUTCOMES), (entity, counts)
                if not summary["dry_run"]:
                    rows = con.execute(sa.text(f'SELECT count(*) FROM "{entity}"')).scalar_one()
                    assert rows == counts["inserted"], (entity, rows, counts)
    finally:
        engine.dispose()


def run_case(folder: Path, text: bytes) -> None:
    """Run the mapping ``text`` over the sources in ``folder`` and check every property."""
    (folder / "mapping.yaml").write_bytes(text)
    before = hashlib.sha256((folder / "legacy.sqlite").read_bytes()).hexdigest()
    target = folder / "target.db"

    res = cli("migrate", "run", str(folder / "mapping.yaml"), "--target", f"sqlite:///{target}", "--json")

    shown = f"exit {res.exit_code}\n{text.decode('utf-8', 'replace')}\n--- stdout\n{res.stdout[-2000:]}\n--- stderr\n{res.stderr[-2000:]}"
    event(f"exit {res.exit_code}")
    assert res.exit_code in (0, 1, 2), shown
    assert "Traceback" not in res.stdout + res.stderr, shown
    assert hashlib.sha256((folder / "legacy.sqlite").read_bytes()).hexdigest() == before, "the source was written"
    if res.exit_code == 2:
        assert len(res.stderr.strip().splitlines()) == 1, shown
    else:
        outcomes_add_up(json.loads(res.stdout), target)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(spec=mapping, data=rows, enc=encoding)
def test_any_mapping_over_any_source_bytes_ends_in_a_known_exit_code(spec, data, enc) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_sources(Path(tmp), data, enc)
        run_case(Path(tmp), yaml.safe_dump(spec, allow_unicode=True, sort_keys=False).encode("utf-8"))


VALID = {
    "version": 1,
    "name": "p",
    "sources": {"src": {"kind": "csv", "path": "source.csv"}},
    "entities": {
        "accounts": {
            "from": "src",
            "key": "id",
            "fields": {"name": "name", "tier": {"column": "tier", "map": {"A": "VIP"}, "default": "C"}},
        }
    },
}


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=3)), min_size=1, max_size=3))
def test_a_mapping_with_any_bytes_changed_ends_in_a_known_exit_code(edits) -> None:
    text = yaml.safe_dump(VALID, allow_unicode=True, sort_keys=False).encode("utf-8")
    for at, raw in edits:
        at %= len(text)
        text = text[:at] + raw + text[at:]
    with tempfile.TemporaryDirectory() as tmp:
        write_sources(Path(tmp), [["1", "Acme", None, None, None, None, "A", None]], "utf-8")
        run_case(Path(tmp), text)
