#!/usr/bin/env python3
"""Benchmark: a 1,000,000-row legacy contacts migration, beside the raw floors of the same run.

It generates (seeded, column-wise) a legacy contacts CSV and the accounts CSV it
references, writes a mapping for them, and per repetition measures:

* ``crmkit migrate run`` end to end (the real CLI, a process of its own) into a fresh
  SQLite file and into a fresh PostgreSQL database;
* the same run through the library (``migrate.pipeline.run.run``) with every stage timed, to get
  the load stage on its own;
* the floors: ``sqlite3 DB .mode csv .import`` of the same CSV into a fresh file, and
  PostgreSQL ``COPY ... FROM STDIN (FORMAT csv, HEADER)`` into a fresh table of text columns.

It prints the medians, rows per second and the issue's targets as PASS/MISS, and checks
that every row had its outcome (inserted or rejected, as generated).  Exit codes: 0 the
benchmark ran (targets may be missed: see the table, or pass ``--strict``); 1 a run gave
wrong outcomes (or, with ``--strict``, a target was missed); 2 it could not run.

    .venv/bin/python bench/bench_migrate.py                      # 1,000,000 rows, 3 repeats
    .venv/bin/python bench/bench_migrate.py --quick              # smoke run, small sizes
    .venv/bin/python bench/bench_migrate.py --rows 200000 --repeat 5 --no-pg --profile
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench" / "migrate"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
GENERATOR_VERSION = 4  # bump when the generated data changes, so cached files are rebuilt

TARGET_ROWS_PER_S = 100_000  # end to end into SQLite
TARGET_SQLITE_RATIO = 2.0  # load into SQLite / sqlite3 .import
TARGET_PG_RATIO = 4.0  # load into PostgreSQL / COPY


class BenchError(Exception):
    """The benchmark cannot run (missing tool, unreachable server): exit 2."""


class BenchFailure(Exception):
    """A run finished with the wrong outcomes: exit 1."""


# --- options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    rows: int
    accounts: int
    repeat: int
    bad_share: float
    seed: int
    pg_url: str | None  # None: PostgreSQL skipped
    profile: bool
    strict: bool
    quick: bool
    out: Path


def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=None, help="contacts rows (default 1,000,000; --quick 20,000)")
    p.add_argument("--accounts", type=int, default=None, help="accounts rows (default 50,000; --quick 2,000)")
    p.add_argument("--repeat", type=int, default=None, help="repetitions, medians quoted (default 3; --quick 1)")
    p.add_argument("--bad-share", type=float, default=0.01, help="share of contacts with one defect (rejected)")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument(
        "--pg-url",
        default=os.environ.get("CRMKIT_BENCH_PG_URL", DEFAULT_PG),
        help="PostgreSQL server; a fresh database is created and dropped per run",
    )
    p.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    p.add_argument("--profile", action="store_true", help="also profile one SQLite run (pyinstrument)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    p.add_argument("--out", type=Path, default=OUT, help="where data, databases and results go")
    a = p.parse_args(argv)
    rows = a.rows or (20_000 if a.quick else 1_000_000)
    accounts = a.accounts or (2_000 if a.quick else 50_000)
    repeat = a.repeat or (1 if a.quick else 3)
    if rows < 100 or accounts < 10 or repeat < 1 or not 0 <= a.bad_share < 0.5:
        p.error("need --rows >= 100, --accounts >= 10, --repeat >= 1 and 0 <= --bad-share < 0.5")
    return Config(
        rows,
        accounts,
        repeat,
        a.bad_share,
        a.seed,
        None if a.no_pg else a.pg_url,
        a.profile,
        a.strict,
        a.quick,
        a.out.resolve(),
    )


# --- generated legacy data -----------------------------------------------------------------

SURNAMES = [
    ("王", "Wang"),
    ("李", "Li"),
    ("张", "Zhang"),
    ("刘", "Liu"),
    ("陈", "Chen"),
    ("杨", "Yang"),
    ("黄", "Huang"),
    ("赵", "Zhao"),
    ("吴", "Wu"),
    ("周", "Zhou"),
    ("徐", "Xu"),
    ("孙", "Sun"),
    ("马", "Ma"),
    ("朱", "Zhu"),
    ("胡", "Hu"),
    ("郭", "Guo"),
    ("何", "He"),
    ("高", "Gao"),
    ("林", "Lin"),
    ("罗", "Luo"),
    ("郑", "Zheng"),
    ("梁", "Liang"),
    ("谢", "Xie"),
    ("宋", "Song"),
    ("唐", "Tang"),
    ("许", "Xu"),
    ("韩", "Han"),
    ("冯", "Feng"),
    ("邓", "Deng"),
    ("曹", "Cao"),
    ("彭", "Peng"),
    ("曾", "Zeng"),
    ("肖", "Xiao"),
    ("田", "Tian"),
    ("董", "Dong"),
    ("袁", "Yuan"),
    ("潘", "Pan"),
    ("蒋", "Jiang"),
    ("蔡", "Cai"),
    ("余", "Yu"),
    ("杜", "Du"),
    ("叶", "Ye"),
    ("程", "Cheng"),
    ("苏", "Su"),
    ("魏", "Wei"),
    ("吕", "Lv"),
    ("丁", "Ding"),
    ("任", "Ren"),
    ("沈", "Shen"),
    ("欧阳", "Ouyang"),
    ("司马", "Sima"),
    ("上官", "Shangguan"),
]
GIVEN = [
    ("伟", "Wei"),
    ("芳", "Fang"),
    ("娜", "Na"),
    ("敏", "Min"),
    ("静", "Jing"),
    ("丽", "Li"),
    ("强", "Qiang"),
    ("磊", "Lei"),
    ("军", "Jun"),
    ("洋", "Yang"),
    ("勇", "Yong"),
    ("艳", "Yan"),
    ("杰", "Jie"),
    ("娟", "Juan"),
    ("涛", "Tao"),
    ("明", "Ming"),
    ("超", "Chao"),
    ("秀", "Xiu"),
    ("霞", "Xia"),
    ("平", "Ping"),
    ("刚", "Gang"),
    ("英", "Ying"),
    ("华", "Hua"),
    ("玉", "Yu"),
    ("兰", "Lan"),
    ("文", "Wen"),
    ("辉", "Hui"),
    ("建", "Jian"),
    ("鹏", "Peng"),
    ("宇", "Yu"),
    ("浩", "Hao"),
    ("思", "Si"),
    ("远", "Yuan"),
    ("婷", "Ting"),
    ("雪", "Xue"),
    ("琳", "Lin"),
    ("晨", "Chen"),
    ("欣", "Xin"),
    ("怡", "Yi"),
    ("博", "Bo"),
    ("涵", "Han"),
    ("子", "Zi"),
    ("轩", "Xuan"),
    ("嘉", "Jia"),
    ("俊", "Jun"),
    ("凯", "Kai"),
    ("佳", "Jia"),
    ("志", "Zhi"),
    ("海", "Hai"),
]
TITLES = [
    "经理",
    "销售经理",
    "总经理",
    "技术总监",
    "采购主管",
    "工程师",
    "财务",
    "行政助理",
    "市场专员",
    "董事长",
    "CEO",
    "IT Manager",
    "  采购 ",
    "项目经理 ",
    "ＣＴＯ",
]
DOMAINS = [
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "gmail.com",
    "outlook.com",
    "foxmail.com",
    "acme.com.cn",
    "huaxin-tech.cn",
    "139.com",
]
MOBILE_PREFIXES = [str(p) for p in [*range(130, 140), 150, 151, 152, 153, 155, 156, 157, 158, 159, *range(180, 190)]]
AREA_CODES = ["010", "021", "020", "022", "023", "025", "027", "028", "029", "0755", "0571", "0512", "0532"]
NOTES = [
    "重要客户",
    "请勿在工作时间外联系",
    "展会获取, 待跟进",
    '客户说"下月再谈"',
    "VIP；年度采购约 50 万",
    "Met at expo 2019, prefers email",
    "  已离职？待核实  ",
    "老客户，2015年起合作",
]
INDUSTRIES = ["制造", "零售", "金融", "教育", "医疗", "物流", "互联网", "能源", "  政府 "]
CITIES = ["北京", "上海市", "广州", "深圳市", "杭州", "成都", "武汉市", "南京", "西安", "苏州"]
COMPANY_WORDS = ["华信", "远航", "东方", "恒通", "新锐", "博达", "中科", "天成", "瑞丰", "金桥", "Ａｃｍｅ"]
COMPANY_KINDS = ["科技有限公司", "贸易有限公司", "（集团）股份有限公司", "信息技术有限公司", "制造厂"]
CONTACT_HEADER = ["编号", "客户编号", "姓名", "职务", "手机", "电话", "邮箱", "生日", "是否同意联系", "备注"]


def _take(values: list[str], idx: np.ndarray) -> pl.Series:
    return pl.Series(values, dtype=pl.String).gather(idx)


def _digits(rng: np.random.Generator, n: int, width: int, first: tuple[int, int] = (0, 10)) -> pl.Series:
    """``n`` random digit strings of ``width``, the first digit in ``first`` [lo, hi)."""
    head = rng.integers(*first, n)
    tail = rng.integers(0, 10 ** (width - 1), n)
    return pl.Series(head * 10 ** (width - 1) + tail).cast(pl.String).str.zfill(width)


def _people(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """Name parts in characters and pinyin, and a style draw per row (0-99)."""
    given2 = GIVEN + [("", "")]
    s, g1 = rng.integers(0, len(SURNAMES), n), rng.integers(0, len(GIVEN), n)
    g2 = np.where(rng.random(n) < 0.6, rng.integers(0, len(GIVEN), n), len(GIVEN))
    return pl.DataFrame(
        {
            "sur": _take([c for c, _ in SURNAMES], s),
            "sur_py": _take([p for _, p in SURNAMES], s),
            "given": _take([c for c, _ in GIVEN], g1) + _take([c for c, _ in given2], g2),
            "given_py": _take([p for _, p in GIVEN], g1) + _take([p.lower() for _, p in given2], g2),
            "style": rng.integers(0, 100, n),
            "fmt": rng.integers(0, 100, n),
            "num": pl.Series(rng.integers(0, 1000, n)).cast(pl.String),
        }
    )


def _full_name() -> pl.Expr:
    """Characters mostly; some with a full-width space, padding, or in pinyin."""
    cn = pl.col("sur") + pl.col("given")
    pinyin = pl.col("sur_py") + pl.lit(" ") + pl.col("given_py")
    style = pl.col("style")
    return (
        pl.when(style < 70)
        .then(cn)
        .when(style < 78)
        .then(pl.col("sur") + pl.lit("\u3000") + pl.col("given"))
        .when(style < 84)
        .then(pl.lit("  ") + cn + pl.lit(" "))
        .when(style < 97)
        .then(pinyin)
        .otherwise(pl.col("sur_py") + pl.lit("  ") + pl.col("given_py"))
    )


def _email(domain: pl.Expr) -> pl.Expr:
    """given.surname[digits]@domain in mixed case, some padded, a few with a full-width @."""
    local = (pl.col("given_py") + pl.lit(".") + pl.col("sur_py")).str.to_lowercase()
    local = pl.when(pl.col("fmt") < 50).then(local + pl.col("num")).otherwise(local)
    at = pl.when(pl.col("fmt") == 99).then(pl.lit("＠")).otherwise(pl.lit("@"))
    addr = local + at + domain
    style = pl.col("style")
    cased = (
        pl.when(style < 20).then(addr.str.to_uppercase()).when(style < 35).then(addr.str.to_titlecase()).otherwise(addr)
    )
    padded = (
        pl.when(pl.col("fmt") < 10)
        .then(pl.lit(" ") + cased)
        .when(pl.col("fmt") < 20)
        .then(cased + pl.lit(" "))
        .otherwise(cased)
    )
    return pl.when(pl.col("fmt").is_between(60, 64)).then(None).otherwise(padded)


def _mobile(number: pl.Expr, fmt: pl.Expr) -> pl.Expr:
    """138-0013-8000, +86 139 1234 5678, 13800138000, or full-width digits."""
    a, b, c = number.str.slice(0, 3), number.str.slice(3, 4), number.str.slice(7, 4)
    full_width = number.str.replace_many(list("0123456789"), list("０１２３４５６７８９"))
    return (
        pl.when(fmt < 35)
        .then(pl.concat_str([a, b, c], separator="-"))
        .when(fmt < 65)
        .then(pl.concat_str([pl.lit("+86"), a, b, c], separator=" "))
        .when(fmt < 98)
        .then(number)
        .otherwise(full_width)
    )


def _landline(area: pl.Expr, local: pl.Expr, fmt: pl.Expr) -> pl.Expr:
    """010-62345678, 021 5123 4567; 40% have none."""
    spaced = pl.concat_str([area, local.str.slice(0, 4), local.str.slice(4, 4)], separator=" ")
    return pl.when(fmt < 40).then(None).when(fmt < 80).then(area + pl.lit("-") + local).otherwise(spaced)


def _birth(days: pl.Expr, fmt: pl.Expr) -> pl.Expr:
    """2024-01-31, 2024/01/31, 20240131 or an Excel serial; 8% empty."""
    date = days.cast(pl.Date)
    serial = (days + 25_569).cast(pl.String)  # 1970-01-01 is Excel day 25569
    return (
        pl.when(fmt < 8)
        .then(None)
        .when(fmt < 45)
        .then(date.dt.strftime("%Y-%m-%d"))
        .when(fmt < 68)
        .then(date.dt.strftime("%Y/%m/%d"))
        .when(fmt < 82)
        .then(date.dt.strftime("%Y%m%d"))
        .otherwise(serial)
    )


def contacts_frame(n: int, accounts: int, seed: int, bad_share: float) -> tuple[pl.DataFrame, int]:
    """The legacy contacts and how many of them carry a defect (each exactly one)."""
    rng = np.random.default_rng(seed)
    base = _people(rng, n).with_columns(
        key=pl.lit("CT") + pl.Series(np.arange(1, n + 1)).cast(pl.String).str.zfill(8),
        account=pl.lit("C") + pl.Series(rng.integers(1, accounts + 1, n)).cast(pl.String).str.zfill(6),
        acct_fmt=rng.integers(0, 100, n),
        title=_take(TITLES, rng.integers(0, len(TITLES), n)),
        mobile_no=_take(MOBILE_PREFIXES, rng.integers(0, len(MOBILE_PREFIXES), n)) + _digits(rng, n, 8),
        mobile_fmt=rng.integers(0, 100, n),
        area=_take(AREA_CODES, rng.integers(0, len(AREA_CODES), n)),
        local=_digits(rng, n, 8, (2, 8)),
        tel_fmt=rng.integers(0, 100, n),
        domain=_take(DOMAINS, rng.integers(0, len(DOMAINS), n)),
        days=pl.Series(rng.integers(-7305, 12784, n)),  # 1950-01-01 .. 2004-12-31
        birth_fmt=rng.integers(0, 100, n),
        consent=_take(["是", "否", "Y", "N", ""], rng.choice(5, n, p=[0.45, 0.35, 0.05, 0.05, 0.10])),
        note=_take(NOTES, rng.integers(0, len(NOTES), n)),
        note_fmt=rng.integers(0, 100, n),
        defect=np.where(rng.random(n) < bad_share, rng.integers(1, 5, n), 0),
    )
    frame = base.select(
        pl.col("key").alias("编号"),
        pl.when(pl.col("acct_fmt") < 5).then(None).otherwise(pl.col("account")).alias("客户编号"),
        _full_name().alias("姓名"),
        pl.col("title").alias("职务"),
        _mobile(pl.col("mobile_no"), pl.col("mobile_fmt")).alias("手机"),
        _landline(pl.col("area"), pl.col("local"), pl.col("tel_fmt")).alias("电话"),
        _email(pl.col("domain")).alias("邮箱"),
        _birth(pl.col("days"), pl.col("birth_fmt")).alias("生日"),
        pl.when(pl.col("consent") == "").then(None).otherwise(pl.col("consent")).alias("是否同意联系"),
        pl.when(pl.col("note_fmt") < 70).then(None).otherwise(pl.col("note")).alias("备注"),
        pl.col("defect"),
    )
    return _with_defects(frame), int((base["defect"] > 0).sum())


def _with_defects(frame: pl.DataFrame) -> pl.DataFrame:
    """One defect per bad row: an email without domain, an impossible date, an unknown
    account, a truncated mobile.  Each must become a reject with its reason."""
    d = pl.col("defect")
    return frame.with_columns(
        pl.when(d == 1).then(pl.lit("zhang.wei@")).otherwise(pl.col("邮箱")).alias("邮箱"),
        pl.when(d == 2).then(pl.lit("1985-13-45")).otherwise(pl.col("生日")).alias("生日"),
        pl.when(d == 3).then(pl.lit("X404404")).otherwise(pl.col("客户编号")).alias("客户编号"),
        pl.when(d == 4).then(pl.lit("138-0013")).otherwise(pl.col("手机")).alias("手机"),
    ).drop("defect")


def accounts_frame(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed + 1)
    city = _take(CITIES, rng.integers(0, len(CITIES), n))
    name = (
        city.str.replace("市$", "")
        + _take(COMPANY_WORDS, rng.integers(0, len(COMPANY_WORDS), n))
        + _take(COMPANY_KINDS, rng.integers(0, len(COMPANY_KINDS), n))
    )
    number = pl.Series(np.arange(1, n + 1)).cast(pl.String).str.zfill(6)
    return pl.DataFrame(
        {
            "客户编号": number,
            "客户名称": name,
            "行业": _take(INDUSTRIES, rng.integers(0, len(INDUSTRIES), n)),
            "城市": city,
        }
    ).with_columns((pl.lit("C") + pl.col("客户编号")).alias("客户编号"))


MAPPING = """\
# Generated by bench/bench_migrate.py: the benchmark's legacy contacts and their accounts.
version: 1
name: bench-contacts
max_rejects: {max_rejects}
sources:
  accounts: {{kind: csv, path: accounts.csv}}
  contacts: {{kind: csv, path: contacts.csv}}
entities:
  accounts:
    from: accounts
    key: 客户编号
    fields:
      name:     {{column: 客户名称, transform: [nfkc, strip, collapse_spaces]}}
      industry: {{column: 行业, transform: strip}}
      city:     {{column: 城市, transform: [strip, {{replace: {{pattern: "市$", with: ""}}}}]}}
  contacts:
    from: contacts
    key: 编号
    fields:
      account:    {{ref: accounts, column: 客户编号}}
      full_name:  {{column: 姓名, transform: [nfkc, strip, collapse_spaces]}}
      title:      {{column: 职务, transform: [nfkc, strip]}}
      mobile:     {{column: 手机, transform: {{phone: {{region: CN}}}}}}
      phone:      {{column: 电话, transform: {{phone: {{region: CN}}}}}}
      email:      {{column: 邮箱, transform: email}}
      birth_date: {{column: 生日, transform: {{date: ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", excel_serial]}}}}
      consent_to_contact: {{column: 是否同意联系, transform: bool}}
      notes:      {{column: 备注, transform: strip}}
"""


@dataclass(frozen=True)
class Dataset:
    dir: Path
    rows: int
    accounts: int
    bad: int

    @property
    def contacts_csv(self) -> Path:
        return self.dir / "contacts.csv"

    @property
    def accounts_csv(self) -> Path:
        return self.dir / "accounts.csv"

    @property
    def mapping(self) -> Path:
        return self.dir / "bench-contacts.yaml"


def generate(cfg: Config) -> Dataset:
    """The CSVs and mapping under ``cfg.out/data-<rows>``, reused when already generated alike."""
    params = {
        "rows": cfg.rows,
        "accounts": cfg.accounts,
        "seed": cfg.seed,
        "bad_share": cfg.bad_share,
        "version": GENERATOR_VERSION,
    }
    ddir = cfg.out / f"data-{cfg.rows}"
    stamp = ddir / "params.json"
    if stamp.exists() and json.loads(stamp.read_text())["params"] == params:
        return Dataset(ddir, cfg.rows, cfg.accounts, json.loads(stamp.read_text())["bad"])
    ddir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    contacts, bad = contacts_frame(cfg.rows, cfg.accounts, cfg.seed, cfg.bad_share)
    ds = Dataset(ddir, cfg.rows, cfg.accounts, bad)
    contacts.write_csv(ds.contacts_csv)
    accounts_frame(cfg.accounts, cfg.seed).write_csv(ds.accounts_csv)
    ds.mapping.write_text(MAPPING.format(max_rejects=bad), encoding="utf-8")
    stamp.write_text(json.dumps({"params": params, "bad": bad}))
    size = ds.contacts_csv.stat().st_size / 1e6
    print(
        f"generated {cfg.rows:,} contacts ({size:.0f} MB, {bad:,} with a defect) and {cfg.accounts:,} accounts "
        f"in {time.perf_counter() - t0:.1f} s under {ddir}"
    )
    return ds


# --- PostgreSQL databases -----------------------------------------------------------------


def _pg_params(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    params = {
        "host": u.host,
        "port": u.port,
        "user": u.username,
        "password": u.password,
        "dbname": u.database or "postgres",
    }
    return {k: v for k, v in params.items() if v is not None}


def _masked(url: str) -> str:
    from crmkit.db.url import mask_url

    return mask_url(url)


def pg_check(server: str) -> str:
    """The server's version; BenchError when it cannot be reached."""
    import psycopg

    try:
        with psycopg.connect(**_pg_params(server), autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(
            f"cannot reach PostgreSQL at {_masked(server)}: {first} "
            f"(start it, pass --pg-url URL, or skip it with --no-pg)"
        ) from None
    return str(row[0]) if row else "?"


@contextmanager
def fresh_pg(server: str, tag: str) -> Iterator[str]:
    """A new empty database on ``server`` (its URL), dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"crmkit_bench_{tag}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**_pg_params(server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**_pg_params(server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the floors ------------------------------------------------------------------------------


def sqlite_import(ds: Dataset, work: Path) -> float:
    """Seconds for ``sqlite3 DB ".mode csv" ".import contacts.csv contacts"`` into a fresh file."""
    db = work / "floor-import.db"
    db.unlink(missing_ok=True)
    cmd = ["sqlite3", str(db), ".mode csv", f".import {ds.contacts_csv.name} contacts"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ds.dir, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or proc.stderr.strip():
        raise BenchFailure(f"sqlite3 .import failed: {(proc.stderr.strip() or f'exit {proc.returncode}')[:300]}")
    _expect_count(f"sqlite:///{db}", "contacts", ds.rows, "sqlite3 .import")
    db.unlink()
    return seconds


def pg_copy(ds: Dataset, server: str) -> float:
    """Seconds for CREATE TABLE (text columns) + ``COPY contacts FROM STDIN (FORMAT csv, HEADER)``."""
    import psycopg

    cols = ", ".join(f'"{c}" text' for c in CONTACT_HEADER)
    with fresh_pg(server, "copy") as url, psycopg.connect(**_pg_params(url), autocommit=True) as conn:
        t0 = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"CREATE TABLE contacts ({cols})")
            with cur.copy("COPY contacts FROM STDIN (FORMAT csv, HEADER)") as copy, ds.contacts_csv.open("rb") as f:
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
        seconds = time.perf_counter() - t0
        _expect_count(url, "contacts", ds.rows, "PostgreSQL COPY")
    return seconds


def _expect_count(url: str, table: str, want: int, what: str) -> None:
    from crmkit.db.loader import open_loader
    from crmkit.db.sql import q

    loader = open_loader(url)
    try:
        got = int(loader.scalar(f"SELECT count(*) FROM {q(table)}") or 0)
    finally:
        loader.close()
    if got != want:
        raise BenchFailure(f"{what}: {table} holds {got:,} rows, expected {want:,}")


# --- crmkit runs --------------------------------------------------------------------------------


def crmkit_exe() -> str:
    exe = Path(sys.executable).with_name("crmkit")
    found = str(exe) if exe.exists() else shutil.which("crmkit")
    if not found:
        raise BenchError("the crmkit command is not installed: run `make install` (pip install -e .)")
    return found


def check_outcomes(summary: dict[str, Any], ds: Dataset, what: str) -> None:
    """Every row has the outcome it was generated for: inserted, or rejected for its defect."""
    ents = summary.get("entities", {})
    want = {"accounts": (ds.accounts, ds.accounts, 0), "contacts": (ds.rows, ds.rows - ds.bad, ds.bad)}
    problems = []
    for entity, expected in want.items():
        got = ents.get(entity, {})
        counts = (got.get("extracted"), got.get("inserted"), got.get("rejected"))
        if counts != expected:
            problems.append(
                f"{entity}: extracted/inserted/rejected {'/'.join(map(str, counts))}, "
                f"expected {'/'.join(map(str, expected))}"
            )
    if summary.get("status") != "succeeded" or problems:
        raise BenchFailure(f"{what}: status {summary.get('status')}; {'; '.join(problems) or 'counts as expected'}")


def cli_run(ds: Dataset, target: str) -> float:
    """Wall seconds of ``crmkit migrate run MAPPING --target TARGET --json``, outcomes checked."""
    cmd = [crmkit_exe(), "migrate", "run", str(ds.mapping), "--target", target, "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    what = f"crmkit migrate run into {_masked(target)}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise BenchFailure(f"{what} exited {proc.returncode}: {last[:300]}")
    check_outcomes(json.loads(proc.stdout), ds, what)
    _expect_count(target, "contacts", ds.rows - ds.bad, what)
    return seconds


class StageClock:
    """Times the pipeline's stages by wrapping the functions ``migrate.pipeline`` calls.

    Nothing in ``migrate/`` changes: the wrappers are installed for one run and removed.
    Top-level stages (``mapping``, ``extract``, ``transform:E``, ``sources_hash``,
    ``schema``, ``check:E``, ``delta``, ``load:E``, ``reconcile``) do not nest;
    ``append:T``, ``ids``, ``commit``, ``indexes`` and ``rejects`` are parts of ``load``; ``background:X`` is
    X on the companion connection's thread (it overlaps them), ``background wait`` the main thread waiting for it.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.missing: list[str] = []  # hooks the engine no longer has (it changed): reported, not fatal
        self._undo: list[tuple[Any, str, Any]] = []
        self._active: set[str] = set()

    def wrap(self, owner: Any, attr: str, label: Callable[[tuple[Any, ...]], str]) -> None:
        original = owner.__dict__.get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
        if original is None:
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{attr}")
            return
        fn = cast(Callable[..., Any], original.fget if isinstance(original, property) else original)

        def timed(*args: Any, **kwargs: Any) -> Any:
            name = label(args)
            if threading.current_thread() is not threading.main_thread():
                name = f"background:{name}"  # overlaps the main thread's stages
            if name in self._active:  # nested (an override calling super()): timed once, outside
                return fn(*args, **kwargs)
            self._active.add(name)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0
                self._active.discard(name)

        setattr(owner, attr, property(timed) if isinstance(original, property) else timed)
        self._undo.append((owner, attr, original))

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


@contextmanager
def stage_clock() -> Iterator[StageClock]:
    import crmkit.migrate.pipeline.bulk
    import crmkit.migrate.pipeline.delta
    import crmkit.migrate.pipeline.feed
    import crmkit.migrate.pipeline.prepare
    import crmkit.migrate.pipeline.run
    import crmkit.migrate.pipeline.write
    from crmkit.db.background import Background
    from crmkit.db.loader import Loader
    from crmkit.db.postgres import PostgresLoader
    from crmkit.db.sqlite import SqliteLoader

    pipeline = crmkit.migrate.pipeline
    clock, r, prep, writer = StageClock(), pipeline.run, pipeline.prepare, pipeline.write.Writer

    def fixed(name: str) -> Callable[[tuple[Any, ...]], str]:
        return lambda args: name

    for owner, attr, name in (
        (r, "load_mapping", "mapping"),
        (prep, "extract", "extract"),
        (r, "ensure_schema", "schema"),
    ):
        clock.wrap(owner, attr, fixed(name))
    clock.wrap(prep, "shape", lambda a: f"transform:{a[1].name}")
    clock.wrap(pipeline.feed, "check", lambda a: f"check:{a[0].entity}")
    clock.wrap(prep.Prepared, "sources_hash", fixed("sources_hash"))
    for attr in ("with_row_hash", "existing", "classify"):
        clock.wrap(pipeline.delta, attr, fixed("delta"))
    clock.wrap(writer, "vanished", fixed("delta"))
    for attr in ("insert", "update", "reject"):
        clock.wrap(writer, attr, lambda a: f"load:{a[1].entity}")
    clock.wrap(pipeline.bulk, "insert", lambda a: f"load:{a[1].entity}")  # around Writer.insert: timed once
    clock.wrap(writer, "reject", fixed("rejects"))  # nested: the part of load that writes rejects
    for cls in (Loader, PostgresLoader):  # bulk mode: drop, then rebuild indexes
        for attr in ("drop_indexes", "create_indexes"):
            clock.wrap(cls, attr, fixed("indexes"))
    clock.wrap(Background, "close", fixed("background wait"))
    clock.wrap(r, "reconcile", fixed("reconcile"))
    for cls in (SqliteLoader, PostgresLoader):
        clock.wrap(cls, "append", lambda a: f"append:{a[1]}")
        clock.wrap(cls, "next_ids", fixed("ids"))
    clock.wrap(Loader, "commit", fixed("commit"))
    try:
        yield clock
    finally:
        clock.restore()


def library_run(ds: Dataset, target: str) -> dict[str, float]:
    """``migrate.pipeline.run.run`` in this process with every stage timed; ``total`` is the whole call."""
    from crmkit.migrate.pipeline.result import Options
    from crmkit.migrate.pipeline.run import run

    with stage_clock() as clock:
        t0 = time.perf_counter()
        result = run(ds.mapping, Options(target=target))
        total = time.perf_counter() - t0
    if clock.missing:
        print(f"note: the engine has no {', '.join(clock.missing)} any more: not timed separately", flush=True)
    check_outcomes(result.to_json(), ds, f"library run into {_masked(target)}")
    return {**clock.seconds, "total": total}


def startup_seconds() -> float:
    """What the CLI costs before any work: ``crmkit migrate run --help``."""
    t0 = time.perf_counter()
    subprocess.run([crmkit_exe(), "migrate", "run", "--help"], capture_output=True, check=True)
    return time.perf_counter() - t0


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Figures:
    """Every timed run, in seconds, by measure."""

    runs: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    stages: dict[str, list[dict[str, float]]] = field(default_factory=lambda: defaultdict(list))

    def median(self, measure: str) -> float:
        return statistics.median(self.runs[measure])

    def stage_median(self, target: str, stage: str) -> float:
        return statistics.median(s.get(stage, 0.0) for s in self.stages[target])


def measure(cfg: Config, ds: Dataset) -> Figures:
    """Each repetition runs every measure once, interleaved, so noise falls on all alike."""
    import crmkit.migrate.pipeline.run  # noqa: F401  (import cost is not the pipeline's)

    figs, work = Figures(), cfg.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    for i in range(cfg.repeat):
        _step(figs, "startup", startup_seconds)
        _step(figs, "sqlite_import", lambda: sqlite_import(ds, work))
        _step(figs, "sqlite_cli", lambda: cli_run(ds, _fresh_sqlite(work, "cli")))
        figs.stages["sqlite"].append(library_run(ds, _fresh_sqlite(work, "lib")))
        if cfg.pg_url:
            server = cfg.pg_url
            _step(figs, "pg_copy", lambda server=server: pg_copy(ds, server))
            with fresh_pg(server, "cli") as url:
                _step(figs, "pg_cli", lambda: cli_run(ds, url))
            with fresh_pg(server, "lib") as url:
                figs.stages["pg"].append(library_run(ds, url))
        print(f"repetition {i + 1}/{cfg.repeat} done (load average {_loadavg()})", flush=True)
    for name in ("cli", "lib"):
        _fresh_sqlite(work, name)
    return figs


def _step(figs: Figures, measure: str, fn: Callable[[], float]) -> None:
    figs.runs[measure].append(fn())


def _fresh_sqlite(work: Path, name: str) -> str:
    db = work / f"{name}.db"
    for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        p.unlink(missing_ok=True)
    return f"sqlite:///{db}"


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# --- reporting ------------------------------------------------------------------------------------


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 else "n/a"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _runs(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


@dataclass
class Verdict:
    target: str
    measured: str
    ok: bool


def verdicts(figs: Figures, ds: Dataset, with_pg: bool) -> list[Verdict]:
    e2e = figs.median("sqlite_cli")
    out = [
        Verdict(
            f"end to end into SQLite >= {TARGET_ROWS_PER_S:,} rows/s",
            f"{ds.rows / e2e:,.0f} rows/s",
            ds.rows / e2e >= TARGET_ROWS_PER_S,
        )
    ]
    sq = figs.stage_median("sqlite", "load:contacts") / figs.median("sqlite_import")
    out.append(
        Verdict(
            f"load into SQLite <= {TARGET_SQLITE_RATIO:g}x sqlite3 .import", f"{sq:.2f}x", sq <= TARGET_SQLITE_RATIO
        )
    )
    if with_pg:
        pg = figs.stage_median("pg", "load:contacts") / figs.median("pg_copy")
        out.append(Verdict(f"load into PostgreSQL <= {TARGET_PG_RATIO:g}x COPY", f"{pg:.2f}x", pg <= TARGET_PG_RATIO))
    return out


def main_table(figs: Figures, ds: Dataset, with_pg: bool) -> list[str]:
    n = ds.rows
    lines = ["| measure | median s | runs (s) | contacts rows/s |", "|---|---:|---|---:|"]

    def row(label: str, values: list[float]) -> None:
        med = statistics.median(values)
        lines.append(f"| {label} | {med:.2f} | {_runs(values)} | {_rate(n, med)} |")

    row("SQLite floor: `sqlite3 .import` of contacts.csv", figs.runs["sqlite_import"])
    row("SQLite: `crmkit migrate run`, end to end (CLI process)", figs.runs["sqlite_cli"])
    for label, key in (("in-process run (library)", "total"), ("load stage, contacts", "load:contacts")):
        row(f"SQLite: {label}", [s.get(key, 0.0) for s in figs.stages["sqlite"]])
    if with_pg:
        row("PostgreSQL floor: `COPY ... FROM STDIN` of contacts.csv", figs.runs["pg_copy"])
        row("PostgreSQL: `crmkit migrate run`, end to end (CLI process)", figs.runs["pg_cli"])
        for label, key in (("in-process run (library)", "total"), ("load stage, contacts", "load:contacts")):
            row(f"PostgreSQL: {label}", [s.get(key, 0.0) for s in figs.stages["pg"]])
    row("CLI start-up alone (`crmkit migrate run --help`)", figs.runs["startup"])
    return lines


STAGE_ORDER = [
    "mapping",
    "extract",
    "transform:accounts",
    "transform:contacts",
    "sources_hash",
    "schema",
    "check:accounts",
    "check:contacts",
    "delta",
    "load:accounts",
    "load:contacts",
    "reconcile",
]
LOAD_PARTS = [
    "append:contacts",
    "append:crmkit_id_map",
    "ids",
    "commit",
    "indexes",
    "rejects",
    "append:crmkit_rejects",
    "append:accounts",
]


def stage_table(figs: Figures, targets: list[str]) -> list[str]:
    head = "| stage (median s) | " + " | ".join(targets) + " |"
    lines = [head, "|---|" + "---:|" * len(targets)]
    for stage in STAGE_ORDER:
        lines.append(f"| {stage} | " + " | ".join(f"{figs.stage_median(t, stage):.2f}" for t in targets) + " |")
    other = [figs.stage_median(t, "total") - sum(figs.stage_median(t, s) for s in STAGE_ORDER) for t in targets]
    lines.append("| other (connect, lock, split ok/bad, bookkeeping) | " + " | ".join(f"{o:.2f}" for o in other) + " |")
    lines.append("| **total** | " + " | ".join(f"**{figs.stage_median(t, 'total'):.2f}**" for t in targets) + " |")
    for part in LOAD_PARTS:
        lines.append(
            f"| &nbsp;&nbsp;of load: {part} | "
            + " | ".join(f"{figs.stage_median(t, part):.2f}" for t in targets)
            + " |"
        )
    return lines


def machine() -> dict[str, str]:
    import adbc_driver_sqlite
    import psycopg

    mem = (
        next((ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")), "0")
        if Path("/proc/meminfo").exists()
        else "0"
    )
    cpu = next((ln.split(":", 1)[1].strip() for ln in _lscpu().splitlines() if ln.startswith("Model name")), "?")
    sqlite_cli = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split()[:1]
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory_gib": f"{int(mem) / 2**20:.0f}",
        "os": platform.platform(),
        "python": platform.python_version(),
        "polars": pl.__version__,
        "adbc_driver_sqlite": getattr(adbc_driver_sqlite, "__version__", "?"),
        "psycopg": psycopg.__version__,
        "sqlite3_cli": sqlite_cli[0] if sqlite_cli else "?",
    }


def _lscpu() -> str:
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return ""


def report(cfg: Config, ds: Dataset, figs: Figures, info: dict[str, Any]) -> list[Verdict]:
    with_pg = cfg.pg_url is not None
    found = verdicts(figs, ds, with_pg)
    print(
        f"\n## Migration benchmark: {ds.rows:,} contacts ({ds.bad:,} rejected by design) + {ds.accounts:,} accounts, "
        f"median of {cfg.repeat}"
    )
    print(
        f"machine: {info['machine']['cpus']} CPUs ({info['machine']['cpu']}), {info['machine']['memory_gib']} GiB; "
        f"load average before/after: {info['loadavg_before']} / {info['loadavg_after']}\n"
    )
    print("\n".join(main_table(figs, ds, with_pg)))
    print()
    print("\n".join(stage_table(figs, ["sqlite", "pg"] if with_pg else ["sqlite"])))
    print("\n| target | measured | result |\n|---|---:|---|")
    for v in found:
        print(f"| {v.target} | {v.measured} | {_verdict(v.ok)} |")
    if cfg.quick or ds.rows < 1_000_000:
        print(f"\n(the targets are defined at 1,000,000 rows; at {ds.rows:,} fixed costs weigh more)")
    return found


def save(cfg: Config, ds: Dataset, figs: Figures, info: dict[str, Any], found: list[Verdict]) -> Path:
    path = cfg.out / f"results-{ds.rows}.json"
    path.write_text(
        json.dumps(
            {
                **info,
                "config": {k: str(v) for k, v in asdict(cfg).items() if k != "pg_url"},
                "dataset": {"rows": ds.rows, "accounts": ds.accounts, "rejected_by_design": ds.bad},
                "runs": dict(figs.runs),
                "stages": dict(figs.stages),
                "verdicts": [asdict(v) for v in found],
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return path


# --- profile ------------------------------------------------------------------------------------


def profile(cfg: Config, ds: Dataset) -> None:
    """One in-process SQLite run under pyinstrument: call tree and flat self-time list."""
    try:
        from pyinstrument import Profiler
        from pyinstrument.renderers import ConsoleRenderer
    except ModuleNotFoundError:
        raise BenchError("--profile needs pyinstrument: pip install -e '.[bench]'") from None
    from crmkit.migrate.pipeline.result import Options
    from crmkit.migrate.pipeline.run import run

    target = _fresh_sqlite(cfg.out / "work", "profile")
    profiler = Profiler(interval=0.005)
    profiler.start()
    run(ds.mapping, Options(target=target))
    profiler.stop()
    _fresh_sqlite(cfg.out / "work", "profile")
    tree = profiler.output(ConsoleRenderer(unicode=True, show_all=False, short_mode=False))
    flat = profiler.output(ConsoleRenderer(unicode=True, flat=True, flat_time="self"))
    (cfg.out / f"profile-{ds.rows}.txt").write_text(tree + "\n\n" + flat)
    (cfg.out / f"profile-{ds.rows}.html").write_text(profiler.output_html())
    print("\n## Profile of one end-to-end SQLite run (pyinstrument, self time, top 25)")
    print("\n".join(flat.splitlines()[:32]))
    print(f"(call tree and HTML: {cfg.out}/profile-{ds.rows}.txt, .html)")


# --- main --------------------------------------------------------------------------------------------


def preflight(cfg: Config) -> str | None:
    if shutil.which("sqlite3") is None:
        raise BenchError("the sqlite3 command-line shell is needed for the floor: apt-get install sqlite3")
    crmkit_exe()
    return pg_check(cfg.pg_url) if cfg.pg_url else None


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        pg_version = preflight(cfg)
        ds = generate(cfg)
        before = _loadavg()
        figs = measure(cfg, ds)
        info = {
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "machine": {**machine(), "postgresql": pg_version or "skipped"},
            "loadavg_before": before,
            "loadavg_after": _loadavg(),
        }
        found = report(cfg, ds, figs, info)
        print(f"\nresults: {save(cfg, ds, figs, info, found)}")
        if cfg.profile:
            profile(cfg, ds)
    except BenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except BenchFailure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 1 if cfg.strict and not all(v.ok for v in found) else 0


if __name__ == "__main__":
    sys.exit(main())
