"""``crmkit training mask``: a copy of a production CRM with personal data masked.

Rules (docs/training-masking.md) say, per table and column, how each value is masked. Every
column the schema flags personal (:mod:`crmkit.schema.vocabulary`) must have a rule
(``keep`` to copy it as it is, deliberately), so a new column is never copied unmasked by
accident.  Pseudonyms are HMAC-SHA256 of the value keyed by a salt read only from the
environment (:mod:`training.pseudonym`): the same value becomes the same fake in every
table.  Dates move by a per-person shift (the contact's, for its cases and activities too),
so intervals such as a case's time to resolution stay true.  Free text is scrubbed of the
e-mail addresses and phone numbers it contains and of every masked name.

An optional subset keeps one department and/or a sample of accounts, with every row
that points at them and every user and department they point at: every reference of the
copy resolves.  The copy goes into an empty target in one transaction; the source is only
read.  Bookkeeping tables (runs, rejects with their raw rows, audit) are not copied; the
id map is, with its legacy keys hashed like the entities' own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field, SecretStr, field_validator, model_validator

from crmkit.config import Strict, expand_env, load_model
from crmkit.errors import ConfigError
from crmkit.schema.models import ENTITY_MODELS, table_of
from crmkit.schema.target import entities
from crmkit.schema.vocabulary import personal_data
from crmkit.training import pseudonym as P
from crmkit.training.errors import MaskError

SALT_ENV = "CRMKIT_MASK_SALT"
Kind = Literal[
    "first_name",
    "last_name",
    "full_name",
    "company",
    "address",
    "email",
    "phone",
    "shift_date",
    "scrub",
    "clear",
    "keep",
]
STRING_KINDS = {"first_name", "last_name", "full_name", "company", "address", "email", "phone", "scrub"}


class Subset(Strict):
    """Keep one department and/or a sample of accounts (a share 0-1, or a count)."""

    department: str | None = None
    accounts: float | None = Field(None, gt=0)


class Rules(Strict):
    version: Literal[1]
    salt: SecretStr
    max_shift_days: int = Field(180, ge=1, le=3650)
    columns: dict[str, dict[str, Kind]]
    persons: dict[str, str] = {
        "contacts": "id",
        "cases": "contact_id",
        "activities": "contact_id",
        "leads": "id",
        "users": "id",
    }
    subset: Subset | None = None

    @field_validator("salt", mode="before")
    @classmethod
    def _from_env(cls, v: Any) -> SecretStr:
        text = str(v)
        if "${" not in text:
            raise ValueError(f'the salt must come from the environment: write salt: "${{{SALT_ENV}}}"')
        try:
            value = expand_env(text, "salt")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("salt: ")) from None
        if len(value) < 8:
            raise ValueError("the salt is shorter than 8 characters: use a long random secret")
        return SecretStr(value)

    @model_validator(mode="after")
    def _known(self) -> Rules:
        targets = entities()
        for table, cols in self.columns.items():
            if table not in targets:
                raise ValueError(f"columns: unknown table '{table}' (tables: {', '.join(targets)})")
            for col, kind in cols.items():
                f = targets[table].fields.get(col)
                if f is None:
                    raise ValueError(
                        f"columns.{table}: unknown column '{col}' (columns: {', '.join(targets[table].fields)})"
                    )
                if kind == "shift_date" and f.kind not in ("date", "datetime"):
                    raise ValueError(f"columns.{table}.{col}: shift_date needs a date column, {col} is {f.kind}")
                if kind in STRING_KINDS and f.kind != "string":
                    raise ValueError(f"columns.{table}.{col}: {kind} needs a text column, {col} is {f.kind}")
        for table, personal in personal_data().items():
            for col in personal:
                if col not in self.columns.get(table, {}):
                    raise ValueError(
                        f"{table}.{col} holds personal data and has no rule: add it under "
                        f"columns.{table} (or `{col}: keep` to copy it deliberately)"
                    )
        return self


def load_rules(path: Path) -> Rules:
    return load_model(path, Rules)[0]


# --- reading ---------------------------------------------------------------------------------


def _typed(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """Columns in the model's types, whatever the driver returned (SQLite gives text dates)."""
    from crmkit.schema.target import _kind

    exprs = []
    for c in table_of(ENTITY_MODELS[table]).columns:
        kind, col, dtype = _kind(c), pl.col(c.name), frame.schema[c.name]
        if kind == "date" and dtype != pl.Date:
            exprs.append(col.cast(pl.String).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False))
        elif kind == "datetime" and not isinstance(dtype, pl.Datetime):
            s = col.cast(pl.String)
            exprs.append(
                pl.coalesce(
                    s.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False),
                    s.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False),
                ).alias(c.name)
            )
        elif kind == "datetime":
            exprs.append(col.cast(pl.Datetime("us")))
        elif kind == "boolean":
            exprs.append(col.cast(pl.Boolean))
        elif kind == "decimal":
            exprs.append(col.cast(pl.Float64))
        elif kind == "integer":
            exprs.append(col.cast(pl.Int64))
        else:
            exprs.append(col.cast(pl.String))
    return frame.select(exprs)


def read_all(loader: Any) -> dict[str, pl.DataFrame]:
    from crmkit.db.sql import q

    out = {}
    for table, model in ENTITY_MODELS.items():
        cols = [c.name for c in table_of(model).columns]
        out[table] = _typed(loader.query(f"SELECT {', '.join(q(c) for c in cols)} FROM {q(table)}"), table)
    return out


# --- subset ---------------------------------------------------------------------------------------


def _ok(col: str, ids: pl.Series) -> pl.Expr:
    return pl.col(col).is_null() | pl.col(col).is_in(ids.implode())


def subset(t: dict[str, pl.DataFrame], sub: Subset, salt: str) -> dict[str, pl.DataFrame]:
    """Rows of one department / a sample of accounts, closed under references."""
    t = dict(t)
    dept = None
    if sub.department is not None:
        match = t["departments"].filter(pl.col("code") == sub.department)
        if match.height == 0:
            known = ", ".join(t["departments"]["code"].to_list())
            raise MaskError(f"subset: no department '{sub.department}' in the source (departments: {known})")
        dept = int(match["id"][0])
    acc = t["accounts"] if dept is None else t["accounts"].filter(pl.col("department_id") == dept)
    if sub.accounts is not None:
        k = int(round(sub.accounts * acc.height)) if sub.accounts <= 1 else int(sub.accounts)
        order = acc.with_columns(P.hmac_int(pl.col("id"), salt, "sample").alias("__o")).sort("__o")
        acc = order.head(k).drop("__o").sort("id")
    in_dept = pl.lit(True) if dept is None else (pl.col("department_id") == dept)
    t["accounts"] = acc
    t["contacts"] = t["contacts"].filter(
        pl.col("account_id").is_in(acc["id"].implode())
        | (pl.col("account_id").is_null() & in_dept & pl.lit(sub.accounts is None))
    )
    t["opportunities"] = t["opportunities"].filter(pl.col("account_id").is_in(acc["id"].implode()))
    con, opp = t["contacts"]["id"], t["opportunities"]["id"]
    t["cases"] = t["cases"].filter(
        _ok("account_id", acc["id"])
        & _ok("contact_id", con)
        & (pl.col("account_id").is_not_null() | pl.col("contact_id").is_not_null())
    )
    t["activities"] = t["activities"].filter(
        _ok("account_id", acc["id"])
        & _ok("contact_id", con)
        & _ok("opportunity_id", opp)
        & pl.any_horizontal(pl.col(c).is_not_null() for c in ("account_id", "contact_id", "opportunity_id"))
    )
    t["taggings"] = t["taggings"].filter(_ok("account_id", acc["id"]) & _ok("contact_id", con))
    t["leads"] = t["leads"].filter(in_dept)
    owners = pl.concat(
        [t[x]["owner_id"] for x in ("accounts", "contacts", "leads", "opportunities", "activities", "cases")]
    ).drop_nulls()
    users = t["users"]
    t["users"] = users.filter(pl.col("id").is_in(owners.implode()) | (in_dept if dept is not None else pl.lit(False)))
    depts = pl.concat(
        [t[x]["department_id"] for x in ("users", "accounts", "contacts", "leads", "opportunities", "cases")]
    ).drop_nulls()
    t["departments"] = t["departments"].filter(pl.col("id").is_in(depts.implode()) | (pl.col("id") == (dept or -1)))
    return t


def dangling(t: dict[str, pl.DataFrame]) -> list[str]:
    """References that do not resolve inside the frames (none, for a correct subset)."""
    out = []
    for table, model in ENTITY_MODELS.items():
        for c in table_of(model).columns:
            fk = next(iter(c.foreign_keys), None)
            if fk is None:
                continue
            parent = t[fk.column.table.name]["id"]
            bad = t[table].filter(pl.col(c.name).is_not_null() & ~pl.col(c.name).is_in(parent.implode())).height
            if bad:
                out.append(f"{table}.{c.name}: {bad} rows point at missing {fk.column.table.name}")
    return out


# --- masking ---------------------------------------------------------------------------------------


@dataclass
class Masker:
    rules: Rules
    salt: str
    originals: pl.Series = field(default_factory=lambda: pl.Series([], dtype=pl.String))
    pairs: dict[str, str] = field(default_factory=dict)  # original name/company -> pseudonym, for scrubbing

    def fn(self, kind: str) -> Callable[[pl.Series, str], pl.Series]:
        return {
            "first_name": lambda s, k: P.name_token(s, k, "first"),
            "last_name": lambda s, k: P.name_token(s, k, "last"),
            "full_name": P.full_name,
            "company": P.words,
            "address": P.words,
            "email": P.email,
            "phone": P.phone,
        }[kind]

    def string(self, values: pl.Series, kind: str) -> pl.Series:
        """Mask, then re-mask (another HMAC round) any value that happens to equal an original."""
        out = self.fn(kind)(values, self.salt)
        for round_ in range(1, 6):
            clash = out.is_in(self.originals.implode()).fill_null(False)
            if not clash.any():
                break
            again = self.fn(kind)(values.filter(clash), f"{self.salt}#{round_}")
            out = out.scatter(clash.arg_true(), again)
        return out

    def shift(self, frame: pl.DataFrame, table: str, col: str) -> pl.Expr:
        person = self.rules.persons.get(table, "id")
        ns = table if person == "id" else _parent(table, person)
        key = pl.coalesce(
            pl.lit(f"{ns}:") + pl.col(person).cast(pl.String), pl.lit(f"{table}:") + pl.col("id").cast(pl.String)
        )
        m = self.rules.max_shift_days
        days = P.hmac_int(key, self.salt, "shift") % (2 * m) - m
        days = pl.when(days == 0).then(m).otherwise(days)
        return (pl.col(col) + pl.duration(days=days)).alias(col)

    def scrub(self, values: pl.Series) -> pl.Series:
        emails = (
            values.str.extract_all(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}").explode().drop_nulls().unique()
        )
        phones = values.str.extract_all(r"\+?\d[\d \-().]{5,}\d").explode().drop_nulls().unique()
        pairs = dict(self.pairs)
        if emails.len():
            pairs.update(zip(emails.to_list(), self.string(emails, "email").to_list()))
        if phones.len():
            pairs.update(zip(phones.to_list(), self.string(phones, "phone").to_list()))
        if not pairs:
            return values
        keys = sorted(pairs, key=len, reverse=True)
        return values.str.replace_many(keys, [pairs[k] for k in keys], leftmost=True)


def _parent(table: str, col: str) -> str:
    c = table_of(ENTITY_MODELS[table]).columns[col]
    fk = next(iter(c.foreign_keys), None)
    return fk.column.table.name if fk is not None else table


def _originals(t: dict[str, pl.DataFrame], rules: Rules) -> pl.Series:
    vals = [
        t[table][col].cast(pl.String)
        for table, cols in rules.columns.items()
        for col, kind in cols.items()
        if kind in STRING_KINDS - {"scrub"} and t[table].height
    ]
    return pl.concat(vals).drop_nulls().unique() if vals else pl.Series([], dtype=pl.String)


def mask_tables(t: dict[str, pl.DataFrame], rules: Rules, salt: str) -> dict[str, pl.DataFrame]:
    """Every rule applied; names and companies first, so free text can be scrubbed of them."""
    m = Masker(rules, salt, _originals(t, rules))
    out = dict(t)
    order = sorted(
        ((tb, c, k) for tb, cols in rules.columns.items() for c, k in cols.items()), key=lambda x: x[2] == "scrub"
    )
    for table, col, kind in order:
        f = out[table]
        if f.height == 0 or kind == "keep":
            continue
        if kind == "clear":
            out[table] = f.with_columns(pl.lit(None, dtype=f.schema[col]).alias(col))
        elif kind == "shift_date":
            out[table] = f.with_columns(m.shift(f, table, col))
        elif kind == "scrub":
            out[table] = f.with_columns(m.scrub(f[col]).alias(col))
        else:
            masked = m.string(f[col], kind)
            if kind in ("first_name", "last_name", "full_name", "company"):
                orig = f[col]
                keep = orig.is_not_null() & (orig.str.len_chars() >= (2 if kind == "full_name" else 3))
                m.pairs.update(zip(orig.filter(keep).to_list(), masked.filter(keep).to_list()))
            out[table] = f.with_columns(masked.alias(col))
    for table, f in out.items():
        out[table] = f.with_columns(P.key(f["legacy_key"], salt).alias("legacy_key")) if f.height else f
    return out


# --- the command --------------------------------------------------------------------------------------


@dataclass
class MaskResult:
    tables: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"tables": self.tables}


def _id_map(loader: Any, t: dict[str, pl.DataFrame], salt: str) -> pl.DataFrame:
    ids = loader.query("SELECT entity, source_name, legacy_key, target_id, run_id FROM crmkit_id_map")
    if ids.height == 0:
        return ids
    kept = pl.concat(
        [f.select(pl.lit(n).alias("entity"), pl.col("id").cast(pl.Int64).alias("target_id")) for n, f in t.items()]
    )
    ids = ids.with_columns(pl.col("target_id").cast(pl.Int64), pl.col("run_id").cast(pl.Int64))
    ids = ids.join(kept, on=["entity", "target_id"], how="semi")
    return ids.with_columns(P.key(ids["legacy_key"], salt).alias("legacy_key"))


def mask(source: str, target: str, rules_path: Path) -> MaskResult:
    """Copy ``source`` into the empty ``target`` with ``rules_path`` applied."""
    from crmkit.db.loader import open_loader
    from crmkit.db.url import mask_url
    from crmkit.schema.versions import connect, current

    rules = load_rules(rules_path)
    salt = rules.salt.get_secret_value()
    if source == target:
        raise MaskError("--source and --target are the same database: the copy needs its own")
    engine = connect(source)
    try:
        if current(engine) is None:
            raise MaskError(f"source {mask_url(source)} has no crmkit CRM schema (see `crmkit db current`)")
    finally:
        engine.dispose()
    src = open_loader(source)
    try:
        t = read_all(src)
        counts = {n: f.height for n, f in t.items()}
        if rules.subset is not None:
            t = subset(t, rules.subset, salt)
        problems = dangling(t)
        if problems:
            raise MaskError(f"the copy would have dangling references ({problems[0]}): the source itself has them")
        masked = mask_tables(t, rules, salt)
        id_map = _id_map(src, t, salt)
    finally:
        src.close()
    _write(target, masked, id_map)
    return MaskResult(
        {
            n: {
                "source_rows": counts[n],
                "copied": masked[n].height,
                "masked": sorted(c for c, k in rules.columns.get(n, {}).items() if k != "keep"),
            }
            for n in masked
        }
    )


def _write(target: str, t: dict[str, pl.DataFrame], id_map: pl.DataFrame) -> None:
    from crmkit.db.loader import open_loader
    from crmkit.schema.versions import ensure_schema
    from crmkit.training.output import _refuse_non_empty

    ensure_schema(target)
    loader = open_loader(target)
    try:
        _refuse_non_empty(loader, target)
        loader.begin()
        try:
            for table, frame in t.items():
                loader.append(table, frame)
            loader.append("crmkit_id_map", id_map)
            if loader.dialect == "postgresql":
                for table in t:
                    loader.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f'coalesce((SELECT max(id) FROM "{table}"), 0) + 1, false)'
                    )
            loader.commit()
        except BaseException:
            loader.rollback()
            raise
    finally:
        loader.close()
