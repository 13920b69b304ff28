"""The PostgreSQL loader's two COPY encodings (binary where every column has one, else CSV), its
bulk mode through ADBC's PostgreSQL driver and its companion connection, against a real server;
the SQLite loader's own ADBC statements."""

from __future__ import annotations

import datetime as dt
import enum
import subprocess
import sys

import polars as pl
import pytest
from sqlalchemy.sql.elements import quoted_name

from crmkit.db.background import Background
from crmkit.db.copy import pg_binary_ready
from crmkit.db.loader import open_loader
from crmkit.db.postgres import PostgresLoader
from crmkit.db.sql import is_db_error
from crmkit.db.sqlite import SqliteLoader

COLUMNS = (
    "i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, b boolean, d date, ts timestamp, t text, v varchar(20), c char(3)"
)


def frame() -> pl.DataFrame:
    """Every type the binary path encodes, with NULLs, extremes and text that CSV must quote."""
    return pl.DataFrame(
        {
            "i2": [-32768, 32767, None, 0],
            "i4": [-2147483648, 2147483647, None, 7],
            "i8": [-(2**63), 2**63 - 1, None, 42],
            "f4": [1.5, -0.0, None, float("inf")],
            "f8": [3.141592653589793, -1e300, None, float("-inf")],
            "b": [True, False, None, True],
            "d": [dt.date(1899, 12, 30), dt.date(2000, 1, 1), None, dt.date(2999, 12, 31)],
            "ts": [
                dt.datetime(1970, 1, 1, 0, 0, 0, 1),
                dt.datetime(2000, 1, 1),
                None,
                dt.datetime(2026, 12, 2, 23, 59, 59, 999999),
            ],
            "t": ["", 'comma, "quote"\nnew line', None, "全角ＡＢＣ 😀"],
            "v": ["x" * 20, "", None, "ü"],
            "c": ["ab", "abc", None, ""],
        },
        schema_overrides={"i2": pl.Int64, "i4": pl.Int64, "f4": pl.Float64},
    )


@pytest.fixture
def loader(pg_url):
    target = open_loader(pg_url)
    assert isinstance(target, PostgresLoader)
    for table in ("bin_t", "csv_t"):
        target.execute(f"DROP TABLE IF EXISTS {table}")
        target.execute(f"CREATE TABLE {table} (n serial, {COLUMNS})")
    yield target
    target.execute("DROP TABLE IF EXISTS bin_t, csv_t")
    target.close()


def _rows(loader, table):
    return loader.query(f"SELECT i2, i4, i8, f4, f8, b, d, ts, t, v, c FROM {table} ORDER BY n").rows()


def test_binary_copy_stores_exactly_what_csv_copy_stores(loader):
    data = frame()
    assert pg_binary_ready(data, loader.column_types("bin_t")) is not None  # the binary path is taken
    loader.append("bin_t", data)
    # the same rows through the server's CSV parser, for comparison
    from crmkit.db.copy import chunks, csv_bytes

    cols = ", ".join(data.columns)
    with loader.conn.cursor() as cur, cur.copy(f"COPY csv_t ({cols}) FROM STDIN (FORMAT csv)") as copy:
        for chunk in chunks(data, csv_bytes):
            copy.write(chunk)
    binary, csv = _rows(loader, "bin_t"), _rows(loader, "csv_t")
    assert binary == csv
    assert binary[2] == (None,) * 11  # NULLs stay NULL (not '' or 0)
    assert binary[0][8] == "" and binary[3][8] == "全角ＡＢＣ 😀"  # '' is not NULL; UTF-8 intact


def test_binary_copy_many_chunks_keeps_every_row_in_order(loader):
    n = 25_003  # more than two 10,000-row chunks, the last one short
    data = pl.DataFrame({"i4": pl.int_range(0, n, eager=True), "t": pl.int_range(0, n, eager=True).cast(pl.String)})
    loader.append("bin_t", data)
    back = loader.query("SELECT i4, t FROM bin_t ORDER BY n")
    assert back["i4"].to_list() == list(range(n)) and back["t"].to_list() == [str(i) for i in range(n)]


def test_types_without_a_binary_encoding_go_as_csv(loader):
    loader.execute("CREATE TEMPORARY TABLE num_t (amount numeric(12, 2), i4 int4)")
    data = pl.DataFrame({"amount": ["12.50", None], "i4": [1, 2]})
    assert pg_binary_ready(data, loader.column_types("num_t")) is None
    loader.append("num_t", data)
    assert loader.query("SELECT amount::text, i4 FROM num_t ORDER BY i4").rows() == [("12.50", 1), (None, 2)]


def test_an_integer_too_large_for_its_column_is_the_servers_error_not_a_wrong_value(loader):
    import psycopg

    data = pl.DataFrame({"i4": [2**40]})
    assert pg_binary_ready(data, loader.column_types("bin_t")) is None
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        loader.append("bin_t", data)


def test_background_jobs_run_on_a_second_connection_and_report_the_first_error(loader):
    loader.begin()
    loader.execute("LOCK TABLE bin_t IN SHARE ROW EXCLUSIVE MODE")  # the main connection's open batch
    side = Background(loader.companion())
    side.submit(lambda other: other.append("csv_t", pl.DataFrame({"i4": [1, 2, 3]})))
    side.submit(lambda other: other.execute("INSERT INTO no_such_table VALUES (1)"))
    side.submit(lambda other: other.append("csv_t", pl.DataFrame({"i4": [4]})))  # after the error: dropped
    with pytest.raises(Exception, match="no_such_table"):
        side.close()
    loader.commit()
    assert loader.query("SELECT i4 FROM csv_t ORDER BY i4")["i4"].to_list() == [1, 2, 3]


def test_bulk_mode_stores_exactly_what_the_psycopg_path_stores(loader):
    """Bulk mode writes through ADBC's driver: the same values, NULLs and text as the binary
    COPY of psycopg, integers cast to their column's width, all-NULL columns typed."""
    data = frame()
    loader.append("csv_t", data)
    loader.bulk_mode(True)
    loader.begin()
    loader.append("bin_t", data)
    loader.append("bin_t", pl.DataFrame({"i4": [None, None], "d": [None, None], "t": [None, None]}))  # Null dtype
    loader.commit()
    loader.bulk_mode(False)
    bulk, plain = _rows(loader, "bin_t"), _rows(loader, "csv_t")
    assert bulk[:4] == plain
    assert bulk[4:] == [(None,) * 11] * 2


def test_bulk_mode_lets_the_server_cast_what_adbc_cannot_write(loader):
    """A string for a date or a numeric column, a float for a numeric one: cast by the server
    from text, as CSV would be; a value it cannot cast is its error, and nothing is written."""
    from crmkit.db.copy import adbc_ready

    loader.execute("CREATE TABLE num_t (amount numeric(12, 2), d date, i4 int4, ts timestamptz)")
    types = loader.column_types("num_t")
    text = pl.DataFrame({"amount": ["12.50", None], "d": ["2024-02-29", None], "i4": [1, 2]})
    assert adbc_ready(text, types) is None
    loader.bulk_mode(True)
    loader.begin()
    loader.append("num_t", text)
    loader.append("num_t", pl.DataFrame({"amount": [0.125, 3.0], "i4": [3, 4], "ts": [None, None]}))
    loader.commit()
    loader.begin()
    with pytest.raises(Exception, match="date"):
        loader.append("num_t", pl.DataFrame({"d": ["2024-02-30"], "i4": [5]}))
    loader.rollback()
    loader.bulk_mode(False)
    assert loader.query("SELECT amount::text, d::text, i4 FROM num_t ORDER BY i4").rows() == [
        ("12.50", "2024-02-29", 1),
        (None, None, 2),
        ("0.13", None, 3),
        ("3.00", None, 4),
    ]


def test_bulk_mode_binds_parameters_and_a_none_is_null(loader):
    loader.bulk_mode(True)
    loader.execute("INSERT INTO bin_t (i4, t, d) VALUES (?, ?, ?)", (7, "it's ?", None))
    assert loader.scalar("SELECT count(*) FROM bin_t WHERE i4 = ? AND t = ? AND d IS NULL", (7, "it's ?")) == 1
    loader.bulk_mode(False)
    assert loader.query("SELECT i4, t, d FROM bin_t").rows() == [(7, "it's ?", None)]


def test_bulk_mode_drops_the_id_maps_primary_key_and_builds_it_back(pg_url):
    """The id map's primary key, which no foreign key refers to, goes with the secondary
    indexes during a bulk load; ``contacts``' stays (other tables' foreign keys refer to it)."""
    from crmkit.schema.versions import ensure_schema

    ensure_schema(pg_url)
    target = open_loader(pg_url)
    try:

        def keys():
            return set(
                target.query(
                    "SELECT conname FROM pg_constraint WHERE contype = 'p' AND conrelid "
                    "IN ('crmkit_id_map'::regclass, 'contacts'::regclass)"
                )["conname"].to_list()
            )

        assert keys() == {"pk_crmkit_id_map", "pk_contacts"}
        for table in ("contacts", "crmkit_id_map"):
            target.drop_indexes(table)
        assert keys() == {"pk_contacts"}
        for table in ("contacts", "crmkit_id_map"):
            target.create_indexes(table)
        assert keys() == {"pk_crmkit_id_map", "pk_contacts"}
    finally:
        target.close()


def test_a_foreign_key_is_validated_after_a_bulk_load_whether_its_column_is_empty_or_not(pg_url):
    """A sparse reference left NULL by the load is validated through its empty index; one with
    a value that resolves nowhere still fails its validation; the planner's settings are the
    session's again afterwards."""
    from crmkit.schema.versions import ensure_schema

    ensure_schema(pg_url)
    target = open_loader(pg_url)
    try:

        def valid():
            return dict(
                target.query(
                    "SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f' "
                    "AND conrelid = 'contacts'::regclass"
                ).iter_rows()
            )

        target.drop_indexes("contacts")
        target.execute("INSERT INTO contacts (full_name, active) VALUES ('Ada', true), ('Bo', true)")
        target.begin()
        target.create_indexes("contacts")
        assert target.scalar("SHOW enable_seqscan") == "on"
        target.commit()
        assert all(valid().values()) and len(valid()) == 3
        target.drop_indexes("contacts")
        target.execute("UPDATE contacts SET owner_id = 999 WHERE full_name = 'Bo'")  # no such user
        target.begin()
        with pytest.raises(Exception, match="fk_contacts_owner_id_users"):
            target.create_indexes("contacts")
        target.rollback()
    finally:
        target.close()


class Tier(enum.StrEnum):
    GOLD = "gold"


def test_sqlite_loader_ingests_a_frame_and_binds_parameters_as_plain_values(tmp_path):
    target = open_loader(f"sqlite:///{tmp_path / 't.db'}")
    assert isinstance(target, SqliteLoader)
    try:
        target.execute("CREATE TABLE t (n INTEGER, name TEXT, tier TEXT, d TEXT, ts TEXT, b INTEGER, f REAL)")
        data = frame().select(
            pl.col("i8").alias("n"),
            pl.col("t").alias("name"),
            pl.col("v").alias("tier"),
            "d",
            "ts",
            "b",
            pl.col("f8").alias("f"),
        )
        target.append("t", data)
        got = target.query("SELECT * FROM t ORDER BY rowid")
        assert got["n"].to_list() == data["n"].to_list()
        assert got["name"].to_list() == data["name"].to_list()  # quotes, new lines, CJK, emoji
        assert got["d"].to_list() == ["1899-12-30", "2000-01-01", None, "2999-12-31"]  # as SQLAlchemy reads dates
        assert got["ts"][3] == "2026-12-02 23:59:59.999999"
        assert got["b"].to_list() == [1, 0, None, 1]
        # a str subclass (SQLAlchemy's quoted_name, a str enum) binds as its characters, None as NULL
        target.execute("INSERT INTO t (n, name, tier) VALUES (?, ?, ?)", (5, quoted_name("x", None), Tier.GOLD))
        target.execute("INSERT INTO t (n, name) VALUES (?, ?)", (6, None))
        assert target.query("SELECT name, tier FROM t WHERE n = ?", (5,)).row(0) == ("x", "gold")
        assert target.scalar("SELECT count(*) FROM t WHERE n = ? AND name IS NULL", (6,)) == 1
        with pytest.raises(Exception) as err:
            target.execute("INSERT INTO missing VALUES (?)", (1,))
        assert is_db_error(err.value) and "no such table: missing" in str(err.value)
    finally:
        target.close()


def test_a_sqlite_load_does_not_import_pandas(tmp_path):
    """pyarrow.dataset imports pandas (0.6-0.9 s of a run's start-up here); the SQLite path needs neither."""
    code = (
        "import sys, polars as pl\n"
        "from crmkit.db.loader import open_loader\n"
        f"t = open_loader('sqlite:///{tmp_path / 'p.db'}')\n"
        "t.execute('CREATE TABLE t (a INTEGER)'); t.append('t', pl.DataFrame({'a': [1, 2]}))\n"
        "assert t.scalar('SELECT sum(a) FROM t WHERE a > ?', (0,)) == 3\n"
        "t.close(); print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
