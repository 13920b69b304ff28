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
from hypothesis import HealthCheck, given, settings
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

transform = st.sampled_from(
    ["strip", "upper", "lower", "nfkc", "email", "phone", "collapse_spaces", "nosuch", {"date": ["%Y-%m-%d"]}]
)
field_spec = st.one_of(
    st.sampled_from(COLUMNS + ["missing_column"]),
    st.fixed_dictionaries(
        {"column": st.sampled_from(COLUMNS)}, optional={"transform": st.lists(transform, max_size=3)}
    ),
    st.fixed_dictionaries({"const": st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none())}),
    st.fixed_dictionaries(
        {
            "column": st.sampled_from(COLUMNS),
            "map": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3),
        },
        optional={"default": st.text(max_size=3)},
    ),
    st.fixed_dictionaries({"column": st.sampled_from(COLUMNS), "null_if": st.lists(st.text(max_size=3), max_size=3)}),
)
account_fields = st.fixed_dictionaries(
    {"name": field_spec},
    optional={
        "industry": field_spec,
        "phone": field_spec,
        "tier": field_spec,
        "created_at": field_spec,
        "website": field_spec,
        "bogus_field": field_spec,
    },
)
source = st.sampled_from(
    [
        {"kind": "csv", "path": "source.csv"},
        {"kind": "csv", "path": "source.csv", "encoding": "gb18030"},
        {"kind": "csv", "path": "source.csv", "delimiter": ";"},
        {"kind": "xlsx", "path": "source.xlsx"},
        {"kind": "sql", "url": "sqlite:///legacy.sqlite", "table": "T"},
        {"kind": "sql", "url": "sqlite:///legacy.sqlite", "query": 'SELECT * FROM "T"'},
        {"kind": "sql", "url": "sqlite:///legacy.sqlite", "query": 'DELETE FROM "T"'},
        {"kind": "sql", "url": "sqlite:///legacy.sqlite", "query": 'SELECT 1; DROP TABLE "T"'},
    ]
)
mapping = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "name": st.sampled_from(["p", "属性", ""]),
        "sources": st.fixed_dictionaries({"src": source}),
        "entities": st.fixed_dictionaries(
            {
                "accounts": st.fixed_dictionaries(
                    {
                        "from": st.just("src"),
                        "key": st.sampled_from(["id", "name", "missing"]),
                        "fields": account_fields,
                    },
                    optional={"filter": st.sampled_from(["id IS NOT NULL", "amount > 0", "nosuch = 1", "1 = 1 OR"])},
                )
            }
        ),
    },
    optional={"max_rejects": st.sampled_from(["0", "10%", "100%", 3])},
)
encoding = st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "cp1252", "latin-1"])
# a few raw byte edits of the YAML text: the parser's errors must be one line too
mutation = st.lists(st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=3)), max_size=2)


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


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(spec=mapping, data=rows, enc=encoding, edits=mutation)
def test_any_mapping_and_any_bytes_end_in_a_known_exit_code(spec, data, enc, edits) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_sources(folder, data, enc)
        text = yaml.safe_dump(spec, allow_unicode=True, sort_keys=False).encode("utf-8")
        for at, raw in edits:
            at %= len(text)
            text = text[:at] + raw + text[at:]
        (folder / "mapping.yaml").write_bytes(text)
        before = hashlib.sha256((folder / "legacy.sqlite").read_bytes()).hexdigest()
        target = folder / "target.db"

        res = cli("migrate", "run", str(folder / "mapping.yaml"), "--target", f"sqlite:///{target}", "--json")

        shown = f"exit {res.exit_code}\n{text.decode('utf-8', 'replace')}\n--- stdout\n{res.stdout[-2000:]}\n--- stderr\n{res.stderr[-2000:]}"
        assert res.exit_code in (0, 1, 2), shown
        assert "Traceback" not in res.stdout + res.stderr, shown
        assert hashlib.sha256((folder / "legacy.sqlite").read_bytes()).hexdigest() == before, "the source was written"
        if res.exit_code == 2:
            assert len(res.stderr.strip().splitlines()) == 1, shown
        else:
            outcomes_add_up(json.loads(res.stdout), target)
