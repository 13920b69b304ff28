"""Export a generated world as a messy legacy estate, with an answer key of what was done to it.

The estate (docs/training-legacy.md) is what an implementation team meets in the field:

* ``legacy.sqlite`` (or tables in a MariaDB database): the old ERP, with its own naming
  (``ORG_UNIT``, ``STAFF``, ``CUSTOMER``, ``DEAL``, ``TICKET``, ``INTERACTION``), every
  column text;
* ``contacts.xlsx``: the sales team's contact list, a title row and an export-date row
  above Chinese or English headers;
* ``leads.csv``: the marketing lead list, GB18030-encoded, CRLF line ends;
* ``answer_key.json``: every injected problem (source, key, row, class, field, whether a
  correct migration must reject the row) and every true duplicate pair;
* ``mapping.yaml``: a crmkit mapping that migrates exactly this estate.

Problems are injected at the scenario's ``legacy.rates`` (a share of each source's rows,
rounded).  Rejects (``missing_required``, ``orphan_reference`` and their consequence
``cascade_orphan``) are put on disjoint rows so that each rejected row has one class;
valid mess (``mixed_date_format``, ``mixed_phone_format``, ``fullwidth``, ``swapped_names``)
may land anywhere; duplicates copy clean rows under new keys, with a typo, swapped names or
a differently written phone number.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from crmkit.training.columns import rng_for
from crmkit.training.generate import World

RNG = np.random.Generator
HOUSE_DATE = {"en_US": "%m/%d/%Y", "zh_CN": "%Y-%m-%d", "de_DE": "%d.%m.%Y"}
OTHER_DATES = ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "excel_serial"]
EXCEL_EPOCH = dt.date(1899, 12, 30)
DATETIME = "%Y-%m-%d %H:%M:%S"
FIXED_TIME = dt.datetime(2024, 1, 1, 9, 0, 0)  # xlsx document properties: no wall clock in the files

#: header names of the spreadsheet and the CSV, by header language
HEADERS = {
    "zh": {
        "sheet": "联系人",
        "key": "编号",
        "account": "客户编号",
        "last": "姓",
        "first": "名",
        "title": "职务",
        "phone": "电话",
        "mobile": "手机",
        "email": "邮箱",
        "address": "地址",
        "city": "城市",
        "birth": "生日",
        "consent": "同意联系",
        "notes": "备注",
        "created": "录入日期",
        "lead_key": "线索编号",
        "lead_name": "姓名",
        "company": "公司",
        "lead_email": "邮箱",
        "lead_phone": "电话",
        "source": "来源",
        "status": "状态",
        "owner": "负责人",
        "dept": "部门",
        "date": "日期",
    },
    "en": {
        "sheet": "Contacts",
        "key": "Contact No",
        "account": "Customer No",
        "last": "Last Name",
        "first": "First Name",
        "title": "Job Title",
        "phone": "Phone",
        "mobile": "Mobile",
        "email": "E-mail",
        "address": "Address",
        "city": "City",
        "birth": "Birthday",
        "consent": "Consent",
        "notes": "Notes",
        "created": "Entered On",
        "lead_key": "Lead No",
        "lead_name": "Name",
        "company": "Company",
        "lead_email": "Email",
        "lead_phone": "Phone",
        "source": "Source",
        "status": "Status",
        "owner": "Owner",
        "dept": "Dept",
        "date": "Date",
    },
}
#: legacy codes of target values, by header language (the mapping maps them back)
CODES: dict[str, dict[str, dict[str, str]]] = {
    "zh": {
        "stage": {
            "prospecting": "初步接洽",
            "qualification": "需求确认",
            "proposal": "方案报价",
            "negotiation": "商务谈判",
            "closed_won": "赢单",
            "closed_lost": "输单",
        },
        "case_status": {"new": "新建", "open": "处理中", "pending": "挂起", "closed": "已关闭"},
        "priority": {"low": "低", "medium": "中", "high": "高", "urgent": "紧急"},
        "activity": {"call": "电话", "meeting": "会议", "email": "邮件", "note": "备注", "task": "任务"},
        "lead_status": {
            "new": "新线索",
            "working": "跟进中",
            "qualified": "已确认",
            "lost": "已丢失",
            "converted": "已转化",
        },
        "lead_source": {
            "web": "官网",
            "referral": "转介绍",
            "event": "展会",
            "partner": "合作伙伴",
            "cold_call": "电话营销",
        },
        "yes": {"true": "是", "false": "否"},
        "country": {"CN": "中国", "US": "美国", "DE": "德国"},
    },
    "en": {
        "stage": {
            "prospecting": "1-Prospect",
            "qualification": "2-Qualify",
            "proposal": "3-Proposal",
            "negotiation": "4-Negotiate",
            "closed_won": "Won",
            "closed_lost": "Lost",
        },
        "case_status": {"new": "NEW", "open": "OPEN", "pending": "PEND", "closed": "CLOSED"},
        "priority": {"low": "L", "medium": "M", "high": "H", "urgent": "U"},
        "activity": {"call": "CALL", "meeting": "MEET", "email": "MAIL", "note": "NOTE", "task": "TASK"},
        "lead_status": {
            "new": "New",
            "working": "Working",
            "qualified": "Qualified",
            "lost": "Lost",
            "converted": "Converted",
        },
        "lead_source": {
            "web": "Website",
            "referral": "Referral",
            "event": "Trade show",
            "partner": "Partner",
            "cold_call": "Cold call",
        },
        "yes": {"true": "Yes", "false": "No"},
        "country": {"CN": "China", "US": "USA", "DE": "Germany"},
    },
}
ROLE_CODES = {"manager": "MGR", "sales": "REP", "service": "SVC", "admin": "ADM"}
KEY_PREFIX = {
    "users": "S",
    "accounts": "CU",
    "contacts": "P",
    "leads": "LD",
    "opportunities": "DL",
    "cases": "TK",
    "activities": "IN",
}
REJECT_CLASSES = ("missing_required", "orphan_reference", "cascade_orphan")


# --- column helpers ------------------------------------------------------------------------


def fullwidth(e: pl.Expr) -> pl.Expr:
    """ASCII letters, digits and punctuation as their full-width forms (space kept)."""
    ascii_ = [chr(c) for c in range(0x21, 0x7F)]
    return e.str.replace_many(ascii_, [chr(ord(c) + 0xFEE0) for c in ascii_])


def fmt_date(e: pl.Expr, style: pl.Expr, formats: list[str]) -> pl.Expr:
    """Dates written in formats[style] (``excel_serial`` = days since 1899-12-30, as text)."""
    out = pl.lit(None, dtype=pl.String)
    for i, f in enumerate(formats):
        text = (e - pl.lit(EXCEL_EPOCH)).dt.total_days().cast(pl.String) if f == "excel_serial" else e.dt.strftime(f)
        out = pl.when(style == i).then(text).otherwise(out)
    return out


def fmt_phone(e164: pl.Expr, locale: str, style: pl.Expr) -> pl.Expr:
    """An E.164 number written as people write it locally; style 0 is the house style, 1-4 others."""
    if locale == "en_US":
        nsn = e164.str.slice(2)
        a, x, line = nsn.str.slice(0, 3), nsn.str.slice(3, 3), nsn.str.slice(6)
        forms = [
            pl.concat_str([pl.lit("("), a, pl.lit(") "), x, pl.lit("-"), line]),
            pl.concat_str([a, x, line], separator="-"),
            pl.concat_str([pl.lit("+1"), a, x, line], separator=" "),
            pl.concat_str([a, x, line], separator="."),
            pl.concat_str([pl.lit("1"), a, x, line], separator="-"),
        ]
    else:
        cc = "86" if locale == "zh_CN" else "49"
        nsn = e164.str.slice(3)
        mobile = nsn.str.starts_with("1") & (nsn.str.len_chars() == 11)
        two = nsn.str.contains("^(1|2|30|40|69|89)") if locale == "zh_CN" else nsn.str.contains("^(30|40|69|89)")
        alen = pl.when(mobile & pl.lit(locale == "zh_CN")).then(3).when(two).then(2).otherwise(3)
        area, sub = nsn.str.slice(0, alen), nsn.str.slice(alen)
        trunk = pl.concat_str([pl.lit("0"), area])
        if locale == "zh_CN":
            m = [nsn.str.slice(0, 3), nsn.str.slice(3, 4), nsn.str.slice(7)]
            house = pl.when(mobile).then(nsn).otherwise(pl.concat_str([trunk, sub], separator="-"))
            forms = [
                house,
                pl.concat_str([pl.lit("+" + cc), *m], separator=" "),
                pl.when(mobile)
                .then(pl.concat_str(m, separator="-"))
                .otherwise(pl.concat_str([pl.lit("("), trunk, pl.lit(") "), sub])),
                pl.when(mobile)
                .then(pl.concat_str(m, separator=" "))
                .otherwise(pl.concat_str([trunk, sub], separator=" ")),
                pl.concat_str([pl.lit("+" + cc), area, sub], separator="-"),
            ]
        else:
            forms = [
                pl.concat_str([trunk, sub], separator=" "),
                pl.concat_str([pl.lit("+" + cc), area, sub], separator=" "),
                pl.concat_str([trunk, sub], separator="/"),
                pl.concat_str([pl.lit("("), trunk, pl.lit(") "), sub]),
                pl.concat_str([trunk, sub], separator="-"),
            ]
    out = pl.lit(None, dtype=pl.String)
    for i, f in enumerate(forms):
        out = pl.when(style == i).then(f).otherwise(out)
    return pl.when(e164.is_null()).then(None).otherwise(out)


def typo(e: pl.Expr, pos: pl.Expr, kind: pl.Expr) -> pl.Expr:
    """A typing slip at ``pos``: two letters swapped (0), one dropped (1) or doubled (2)."""
    n = e.str.len_chars()
    p = pl.min_horizontal(pos, pl.max_horizontal(n - 2, pl.lit(0)))
    head, c1, c2, tail = e.str.slice(0, p), e.str.slice(p, 1), e.str.slice(p + 1, 1), e.str.slice(p + 2)
    return (
        pl.when(kind == 0)
        .then(pl.concat_str([head, c2, c1, tail]))
        .when(kind == 1)
        .then(pl.concat_str([head, c2, tail]))
        .otherwise(pl.concat_str([head, c1, c1, c2, tail]))
    )


def amount_text(e: pl.Expr, locale: str) -> pl.Expr:
    cents = (e * 100).round(0).cast(pl.Int64).cast(pl.String).str.zfill(3)
    sep = "," if locale == "de_DE" else "."
    return pl.concat_str([cents.str.slice(0, cents.str.len_chars() - 2), pl.lit(sep), cents.str.slice(-2)])


def legacy_key(entity: str, ids: pl.Expr, width: int) -> pl.Expr:
    return pl.lit(KEY_PREFIX[entity]) + ids.cast(pl.String).str.zfill(width)


# --- one source ----------------------------------------------------------------------------------


@dataclass
class Source:
    """A legacy source being made: its frame (text columns + helpers starting with ``_``) and its traits."""

    name: str
    entity: str
    key: str
    frame: pl.DataFrame
    first_row: int  # the row number a person sees for the first data row
    refs: dict[str, str] = field(default_factory=dict)  # column -> parent entity
    required: list[str] = field(default_factory=list)  # columns blanked for missing_required
    orphan_col: str | None = None
    dates: list[str] = field(default_factory=list)  # columns with a _d_<col> helper (pl.Date)
    phones: list[str] = field(default_factory=list)  # columns with a _p_<col> helper (E.164)
    name_col: str | None = None  # typo / full-width target
    swap: tuple[str, str] | None = None  # two name columns, or (col, col) for "Last First" in one column
    email_col: str | None = None
    dupes: bool = False


@dataclass
class Estate:
    """Everything exported, and what was done to it."""

    sources: dict[str, pl.DataFrame] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: dict[str, set[str]] = field(default_factory=dict)  # entity -> legacy keys rejected


class Injector:
    """Applies the scenario's rates to one source after another, parents first."""

    def __init__(self, world: World):
        self.w, self.rates = world, world.scenario.legacy.rates
        self.locale = world.scenario.locale
        self.formats = [HOUSE_DATE[self.locale]] + [f for f in OTHER_DATES if f != HOUSE_DATE[self.locale]]
        self.estate = Estate()

    def count(self, rate: float, n: int) -> int:
        return min(n, int(round(rate * n)))

    def choose(self, r: RNG, pool: np.ndarray, k: int) -> np.ndarray:
        k = min(k, pool.shape[0])
        return np.sort(r.choice(pool, size=k, replace=False)) if k else np.zeros(0, dtype=np.int64)

    def run(self, src: Source) -> None:
        r = rng_for(self.w.seed, f"legacy:{src.name}")
        f = src.frame
        n = f.height
        keys = f[src.key]
        cascade = np.zeros(n, dtype=bool)
        for col, parent in src.refs.items():
            bad = self.estate.rejected.get(parent, set())
            if bad:
                cascade |= f[col].is_in(sorted(bad)).fill_null(False).to_numpy()
        free = np.flatnonzero(~cascade)
        missing = self.choose(r, free, self.count(self.rates.missing_required, n)) if src.required else free[:0]
        left = np.setdiff1d(free, missing)
        orphans = self.choose(r, left, self.count(self.rates.orphans, n)) if src.orphan_col else left[:0]
        clean = np.setdiff1d(left, orphans)
        dup_src = self.choose(r, clean, self.count(self.rates.duplicates, n)) if src.dupes else clean[:0]
        swapped = self.choose(r, np.arange(n), self.count(self.rates.swapped_names, n)) if src.swap else clean[:0]
        mixed_d = self.choose(r, np.arange(n), self.count(self.rates.mixed_dates, n)) if src.dates else clean[:0]
        mixed_p = self.choose(r, np.arange(n), self.count(self.rates.mixed_phones, n)) if src.phones else clean[:0]
        fw_cols = [c for c in (src.name_col, src.email_col) if c] + src.phones[:1]
        wide = self.choose(r, np.arange(n), self.count(self.rates.fullwidth, n)) if fw_cols else clean[:0]
        fw_col = np.array(fw_cols or [""])[r.integers(0, len(fw_cols) or 1, n)]

        clean_frame = self._format(f, r, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        out = self._format(f, r, mixed_d, mixed_p)
        out = self._swap(out, src, swapped)
        out = self._fullwidth(out, wide, fw_col)
        out = self._blank(out, src.required, missing)
        orphan_keys = self._orphan_keys(src, orphans.shape[0])
        if src.orphan_col and orphans.shape[0]:
            out = out.with_columns(_scatter(out[src.orphan_col], orphans, orphan_keys))
        rows = np.arange(n) + src.first_row
        note = self._note(src, keys, rows)
        note(cascade.nonzero()[0], "cascade_orphan", ",".join(src.refs), True, "refers to a rejected parent")
        note(missing, "missing_required", "+".join(src.required), True, "left empty")
        note(
            orphans, "orphan_reference", src.orphan_col or "", True, "points at a key that does not exist", orphan_keys
        )
        note(swapped, "swapped_names", "+".join(dict.fromkeys(src.swap or ())), False, "names in each other's place")
        note(mixed_d, "mixed_date_format", ",".join(src.dates), False, "dates not in the house format")
        note(mixed_p, "mixed_phone_format", ",".join(src.phones), False, "phone not in the house format")
        note(wide, "fullwidth", "", False, "full-width characters", fw_col[wide].tolist())
        out = self._duplicates(src, r, clean_frame, out, dup_src)
        rejected = np.concatenate([cascade.nonzero()[0], missing, orphans])
        self.estate.rejected[src.entity] = set(keys.gather(rejected).to_list())
        self.estate.sources[src.name] = out.select([c for c in out.columns if not c.startswith("_")])
        self._expect(src, out.height, rejected.shape[0])

    def _format(self, f: pl.DataFrame, r: RNG, mixed_d: np.ndarray, mixed_p: np.ndarray) -> pl.DataFrame:
        n = f.height
        d_style = np.zeros(n, dtype=np.int64)
        d_style[mixed_d] = r.integers(1, len(self.formats), mixed_d.shape[0])
        p_style = np.zeros(n, dtype=np.int64)
        p_style[mixed_p] = r.integers(1, 5, mixed_p.shape[0])
        ds, ps = pl.Series(d_style), pl.Series(p_style)
        exprs = [fmt_date(pl.col(c), pl.lit(ds), self.formats).alias(c[3:]) for c in f.columns if c.startswith("_d_")]
        exprs += [fmt_phone(pl.col(c), self.locale, pl.lit(ps)).alias(c[3:]) for c in f.columns if c.startswith("_p_")]
        return f.with_columns(exprs)

    def _swap(self, f: pl.DataFrame, src: Source, rows: np.ndarray) -> pl.DataFrame:
        if not src.swap or not rows.shape[0]:
            return f
        mask = pl.lit(_mask(f.height, rows))
        a, b = src.swap
        if a == b:  # one name column: "Last First" / "Last, First"
            parts = pl.col(a).str.split(" ")
            sep = ", " if self.locale != "zh_CN" else ""
            swapped = (
                pl.when(parts.list.len() > 1)
                .then(
                    pl.concat_str(
                        [parts.list.last(), parts.list.head(parts.list.len() - 1).list.join(" ")], separator=sep
                    )
                )
                .otherwise(pl.col(a))
            )
            return f.with_columns(pl.when(mask).then(swapped).otherwise(pl.col(a)).alias(a))
        return f.with_columns(
            pl.when(mask).then(pl.col(b)).otherwise(pl.col(a)).alias(a),
            pl.when(mask).then(pl.col(a)).otherwise(pl.col(b)).alias(b),
        )

    def _fullwidth(self, f: pl.DataFrame, rows: np.ndarray, which: np.ndarray) -> pl.DataFrame:
        if not rows.shape[0]:
            return f
        exprs = []
        for col in sorted(set(which[rows].tolist())):
            chosen = rows[which[rows] == col]
            mask = pl.lit(_mask(f.height, chosen))
            exprs.append(pl.when(mask).then(fullwidth(pl.col(col))).otherwise(pl.col(col)).alias(col))
        return f.with_columns(exprs)

    def _blank(self, f: pl.DataFrame, cols: list[str], rows: np.ndarray) -> pl.DataFrame:
        if not rows.shape[0]:
            return f
        mask = pl.lit(_mask(f.height, rows))
        return f.with_columns(
            [pl.when(mask).then(pl.lit(None, dtype=pl.String)).otherwise(pl.col(c)).alias(c) for c in cols]
        )

    def _orphan_keys(self, src: Source, k: int) -> list[str]:
        parent = src.refs[src.orphan_col] if src.orphan_col else ""
        width = len(str(self.w.tables[parent].height * 2)) + 2 if parent in self.w.tables else 6
        return [f"{KEY_PREFIX.get(parent, 'X')}{10**width - 1 - i}" for i in range(k)]

    def _note(self, src: Source, keys: pl.Series, rows: np.ndarray) -> Any:
        def note(
            idx: np.ndarray, cls: str, fld: str, reject: bool, detail: str, per_row: list[str] | None = None
        ) -> None:
            for j, i in enumerate(idx.tolist()):
                extra = per_row[j] if per_row else ""
                self.estate.problems.append(
                    {
                        "source": src.name,
                        "entity": src.entity,
                        "key": keys[i],
                        "row": int(rows[i]),
                        "class": cls,
                        "field": extra if cls == "fullwidth" else fld,
                        "reject": reject,
                        "detail": f"{detail} ({extra})" if extra and cls != "fullwidth" else detail,
                    }
                )

        return note

    def _duplicates(
        self, src: Source, r: RNG, clean: pl.DataFrame, out: pl.DataFrame, rows: np.ndarray
    ) -> pl.DataFrame:
        if not rows.shape[0]:
            return out
        k: int = rows.shape[0]
        dup = clean[rows]
        variant = r.integers(0, 3 if src.swap else 2, k)  # 0 typo, 1 phone written differently, 2 swapped
        name = src.name_col or src.key
        dup = dup.with_columns(
            pl.when(pl.Series(variant == 0))
            .then(typo(pl.col(name), pl.lit(pl.Series(r.integers(1, 4, k))), pl.lit(pl.Series(r.integers(0, 3, k)))))
            .otherwise(pl.col(name))
            .alias(name)
        )
        for c in src.phones:
            alt = fmt_phone(pl.col(f"_p_{c}"), self.locale, pl.lit(pl.Series(r.integers(1, 5, k))))
            dup = dup.with_columns(pl.when(pl.Series(variant == 1)).then(alt).otherwise(pl.col(c)).alias(c))
        if src.swap:
            dup = self._swap(dup, src, np.flatnonzero(variant == 2))
        start = out.height + 1
        width = len(out[src.key][0]) - len(KEY_PREFIX[src.entity])
        new_keys = [f"{KEY_PREFIX[src.entity]}{str(start + i).zfill(width)}" for i in range(k)]
        originals = out[src.key].gather(rows).to_list()
        dup = dup.with_columns(pl.Series(src.key, new_keys, dtype=pl.String))
        names = ("typo", "phone_format", "swapped_names")
        for i in range(k):
            self.estate.duplicates.append(
                {
                    "entity": src.entity,
                    "source": src.name,
                    "original": originals[i],
                    "duplicate": new_keys[i],
                    "variant": names[int(variant[i])],
                }
            )
        return pl.concat([out, dup.select(out.columns)])

    def _expect(self, src: Source, extracted: int, rejected: int) -> None:
        e = self.estate.expected.setdefault(src.entity, {"extracted": 0, "rejected": 0, "inserted": 0})
        e["extracted"] += extracted
        e["rejected"] += rejected
        e["inserted"] += extracted - rejected


def _mask(n: int, rows: np.ndarray) -> pl.Series:
    m = np.zeros(n, dtype=bool)
    m[rows] = True
    return pl.Series(m)


def _scatter(s: pl.Series, idx: np.ndarray, values: list[str]) -> pl.Series:
    return s.clone().scatter(idx, pl.Series(values, dtype=pl.String))
