"""Fault injection: kill the migration with SIGKILL at random points, cut its connection, then resume.

After every fault and its resume, the hash of every target table must equal that of a clean,
uninterrupted run of the same mapping.  Points are chosen with a fixed seed from
``migrate.safety.hooks.POINTS`` (passed with the hidden ``--faults`` option) (inside and between batches, between the rows and the id map,
before and after commits), plus kills at random moments from outside the process.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from crmkit.migrate.snapshot import table_hashes

pytestmark = pytest.mark.slow

BATCH = "7"  # many small batches: faults land inside and between them
HOOK_CASES = 20
TIMED_KILLS = 4
# points and how often the demo mapping passes them with batches of 7
POINT_RANGE = {
    "run.opened": 1,
    "feed.start": 7,
    "insert.before_batch": 40,
    "insert.after_rows": 40,
    "insert.after_idmap": 40,
    "insert.before_commit": 40,
    "insert.after_commit": 40,
    "reject.before_commit": 7,
    "run.before_close": 1,
}


def crmkit(mapping, target, *extra, faults=None, wait=True):
    env = dict(os.environ)
    cmd = [
        sys.executable,
        "-m",
        "crmkit",
        "migrate",
        "run",
        str(mapping),
        "--target",
        target,
        "--batch-size",
        BATCH,
        *(["--faults", faults] if faults else []),
        *extra,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def cases(seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    points = sorted(POINT_RANGE)
    chosen = {(p, 1) for p in points}  # every point at least once
    while len(chosen) < HOOK_CASES:
        p = rng.choice(points)
        chosen.add((p, rng.randint(1, POINT_RANGE[p])))
    return sorted(chosen)


class Targets:
    """Fresh targets of one backend."""

    def __init__(self, backend, tmp_path, pg_base):
        self.backend, self.tmp, self.pg = backend, tmp_path, pg_base
        self.made: list[str] = []

    def new(self) -> str:
        name = f"f{uuid.uuid4().hex[:10]}"
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp / (name + '.db')}"
        import psycopg

        with psycopg.connect(**self._params(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return self.pg.set(database=name).render_as_string(False)

    def _params(self):
        return dict(host=self.pg.host, port=self.pg.port or 5432, user=self.pg.username, dbname="postgres")

    def drop_all(self):
        if self.backend == "postgresql":
            import psycopg

            with psycopg.connect(**self._params(), autocommit=True) as conn:
                for name in self.made:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def targets(request, tmp_path):
    pg = None
    if request.param == "postgresql":
        from sqlalchemy.engine import make_url

        pg = make_url(request.getfixturevalue("pg_url"))
    t = Targets(request.param, tmp_path, pg)
    yield t
    t.drop_all()


def resume(estate, target):
    """``--resume``; a run killed before it recorded itself wrote nothing, and ``--resume`` says
    there is nothing to resume (issue 22, item 6): then the run is simply run again."""
    res = crmkit(estate, target, "--resume")
    if res.returncode == 2 and "nothing to resume" in res.stderr:
        res = crmkit(estate, target)
    return res


def test_sigkill_at_random_points_then_resume_equals_a_clean_run(estate, targets):
    clean = targets.new()
    assert crmkit(estate, clean).returncode == 0
    expected = table_hashes(clean)

    def case(point: str, n: int) -> str | None:
        target = targets.new()
        killed = crmkit(estate, target, faults=f"kill@{point}#{n}")
        if killed.returncode != -signal.SIGKILL:
            return f"{point}#{n} was never reached (exit {killed.returncode})"
        resumed = resume(estate, target)
        if resumed.returncode != 0 or table_hashes(target) != expected:
            return f"{point}#{n}: exit {resumed.returncode} {resumed.stderr.strip()[:200]}"
        return None

    # cases are independent (a target each): two at a time, one per core
    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(lambda c: case(*c), cases(seed=20261123)) if f]
    assert not failures, failures


def test_sigkill_at_random_moments_from_outside_then_resume(estate, targets):
    clean = targets.new()
    assert crmkit(estate, clean).returncode == 0
    expected = table_hashes(clean)
    rng = random.Random(7)
    for _ in range(TIMED_KILLS):
        target = targets.new()
        # stretch the run (5 ms per batch) so that the kill lands inside it
        proc = crmkit(
            estate, target, faults=",".join(f"sleep=0.005@insert.after_rows#{i}" for i in range(1, 41)), wait=False
        )
        time.sleep(rng.uniform(0.8, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        resumed = resume(estate, target)
        assert resumed.returncode == 0, resumed.stderr
        assert table_hashes(target) == expected


@pytest.fixture
def pg_targets(pg_url, tmp_path):
    from sqlalchemy.engine import make_url

    t = Targets("postgresql", tmp_path, make_url(pg_url))
    yield t
    t.drop_all()


def test_connection_cut_mid_run_then_resume(estate, pg_targets):
    """A server-side connection cut (pg_terminate_backend): PostgreSQL only."""
    targets = pg_targets
    clean = targets.new()
    assert crmkit(estate, clean).returncode == 0
    expected = table_hashes(clean)
    for point, n in [("insert.after_rows", 9), ("insert.after_idmap", 17), ("reject.before_commit", 3)]:
        target = targets.new()
        cut = crmkit(estate, target, faults=f"pgterm@{point}#{n}")
        assert cut.returncode == 2, cut.stderr
        assert "--resume" in cut.stderr and "Traceback" not in cut.stderr
        resumed = resume(estate, target)
        assert resumed.returncode == 0, resumed.stderr
        assert table_hashes(target) == expected


def test_a_run_killed_while_its_indexes_are_dropped_gets_them_back_on_resume(estate, tmp_path):
    """Bulk inserts drop the secondary indexes and build them after; a crash in between must not lose them."""
    import sqlite3
    from contextlib import closing

    os.environ["CRMKIT_BULK_ROWS"] = "1"
    try:
        clean = f"sqlite:///{tmp_path / 'clean.db'}"
        assert crmkit(estate, clean).returncode == 0
        target = f"sqlite:///{tmp_path / 'killed.db'}"
        killed = crmkit(estate, target, faults="kill@insert.after_commit#3")
        assert killed.returncode == -signal.SIGKILL
        with closing(sqlite3.connect(tmp_path / "killed.db")) as db:
            missing_while_dead = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert resume(estate, target).returncode == 0
    finally:
        del os.environ["CRMKIT_BULK_ROWS"]
    assert table_hashes(target) == table_hashes(clean)

    def indexes(path):
        with closing(sqlite3.connect(path)) as db:
            return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}

    assert indexes(tmp_path / "killed.db") == indexes(tmp_path / "clean.db")
    assert "ix_crmkit_id_map_target" not in missing_while_dead  # it really was dropped during the load


def _schema_objects(url: str) -> set[tuple[str, ...]]:
    """Indexes, and on PostgreSQL foreign keys with whether they are validated."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                rows = conn.execute(text("SELECT 'index', name FROM sqlite_master WHERE type = 'index'"))
            else:
                rows = conn.execute(
                    text(
                        "SELECT 'index', indexname FROM pg_indexes WHERE schemaname = 'public' UNION ALL "
                        "SELECT 'fk', conname || CASE WHEN convalidated THEN '' ELSE ' (not valid)' END "
                        "FROM pg_constraint WHERE contype = 'f'"
                    )
                )
            return {tuple(r) for r in rows}
    finally:
        engine.dispose()


def test_a_bulk_load_killed_midway_gets_its_indexes_and_foreign_keys_back(estate, targets, monkeypatch):
    """A bulk load drops the secondary indexes (and on PostgreSQL the foreign keys, which COPY would
    check row by row) and builds them after; killed in between, the resume brings every one back,
    validated, and ends equal to a clean run."""
    monkeypatch.setenv("CRMKIT_BULK_ROWS", "1")
    clean = targets.new()
    assert crmkit(estate, clean).returncode == 0
    expected = _schema_objects(clean)
    target = targets.new()
    killed = crmkit(estate, target, faults="kill@insert.after_commit#3")
    assert killed.returncode == -signal.SIGKILL
    missing = expected - _schema_objects(target)
    assert missing, "the kill should have landed while indexes were dropped"
    if targets.backend == "postgresql":
        assert any(kind == "fk" for kind, _ in missing)
    resumed = resume(estate, target)
    assert resumed.returncode == 0, resumed.stderr
    assert _schema_objects(target) == expected
    assert table_hashes(target) == table_hashes(clean)


def test_a_bulk_insert_killed_before_its_id_map_caught_up_is_mapped_by_the_next_run(estate, pg_targets, monkeypatch):
    """PostgreSQL bulk inserts write their id map on a second connection, a batch behind the rows.
    Killed in between, committed rows have no id-map entry yet; the next run (a resume, or a new
    run that does not resume) maps them from their provenance before anything reads the id map,
    so none is inserted twice and the target ends equal to a clean run."""
    import psycopg

    monkeypatch.setenv("CRMKIT_BULK_ROWS", "1")
    clean = pg_targets.new()
    assert crmkit(estate, clean).returncode == 0

    def one(url, sql):
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            return conn.execute(sql).fetchone()

    for follow_up in (["--resume"], []):
        target = pg_targets.new()
        # after the third batch's commit, before its id-map entries are handed to the companion
        killed = crmkit(estate, target, faults="kill@insert.after_commit#3")
        assert killed.returncode == -signal.SIGKILL
        run_id, entity, source = one(
            target, "SELECT run_id, entity, source_name FROM crmkit_checkpoints WHERE phase = 'idmap-pending'"
        )
        (rows,) = one(target, f'SELECT count(*) FROM "{entity}" WHERE run_id = {run_id}')
        (mapped,) = one(target, f"SELECT count(*) FROM crmkit_id_map WHERE entity = '{entity}' AND run_id = {run_id}")
        assert mapped < rows, (rows, mapped)  # the killed batch is committed, its keys not yet mapped
        nxt = crmkit(estate, target, *follow_up)
        assert nxt.returncode == 0, nxt.stderr
        assert one(target, "SELECT count(*) FROM crmkit_checkpoints WHERE phase = 'idmap-pending'") == (0,)
        assert table_hashes(target, content_only=True) == table_hashes(clean, content_only=True), follow_up


def test_a_bulk_insert_that_loses_either_of_its_row_connections_resumes_to_a_clean_run(estate, pg_targets, monkeypatch):
    """PostgreSQL bulk inserts write every other batch on a second connection.  The first two
    batches go one to each connection, so cutting the first and then the second batch's
    connection (after its rows, before its commit) covers both: each run stops with one line
    and exit 2, and its resume ends equal to a clean run, keys, indexes and all."""
    monkeypatch.setenv("CRMKIT_BULK_ROWS", "1")
    clean = pg_targets.new()
    assert crmkit(estate, clean).returncode == 0
    expected, objects = table_hashes(clean), _schema_objects(clean)
    for n in (1, 2):
        target = pg_targets.new()
        cut = crmkit(estate, target, faults=f"pgterm@insert.after_rows#{n}")
        assert cut.returncode == 2, cut.stderr
        assert "Traceback" not in cut.stderr and len(cut.stderr.strip().splitlines()) == 1, cut.stderr
        assert "--resume" in cut.stderr
        resumed = resume(estate, target)
        assert resumed.returncode == 0, resumed.stderr
        assert table_hashes(target) == expected
        assert _schema_objects(target) == objects
