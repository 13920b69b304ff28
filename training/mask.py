"""``crmkit training mask``: a copy of a production CRM that cannot be linked back to it.

Rules (:mod:`training.rules`, docs/training-masking.md) say, per table and column, how each
value is masked; every personal column of the schema's vocabulary and every date needs one.
Pseudonyms come from HMAC-SHA256 keyed by a salt read only from the environment
(:mod:`training.pseudonym`), one per distinct value of the run and never two values on one
fake (:mod:`training.names`): the same value becomes the same fake in every table, and
distinct names stay distinct.  Free text is replaced wholesale by generated text of its
length and language (:mod:`training.freetext`); ``scrub`` only on explicit choice.  Dates
move by one shift per account cluster, so related rows keep their order and intervals.
Keys are renumbered through a permutation keyed per run and derived columns dropped
(:mod:`training.unlink`): no id, hash or run of the source is left to join on.

An optional subset (:mod:`training.subset`) keeps one department and/or a sample of
accounts, closed under references.  The copy goes into an empty target in one transaction;
the source is only read.  Bookkeeping tables (runs, rejects with their raw rows, audit) are
not copied; the id map is, with its legacy keys hashed like the entities' own and its target
ids renumbered.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from crmkit.schema.models import ENTITY_MODELS, table_of
from crmkit.training import freetext
from crmkit.training import pseudonym as P
from crmkit.training.errors import MaskError
from crmkit.training.names import Lexicon, name_tokens, resolve
from crmkit.training.rules import NAME_KINDS, STRING_KINDS, Rules, load_rules
from crmkit.training.subset import dangling, subset
from crmkit.training.unlink import clusters, renumber, renumber_id_map

__all__ = ["dangling", "load_rules", "mask", "mask_tables", "read_all"]

# --- reading ---------------------------------------------------------------------------------


def _typed(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """Columns in the model's types, whatever the driver returned (SQLite gives text dates)."""
    from crmkit.schema.target import _kind

    exprs = []
    for c in table_of(ENTITY_MODELS[table]).columns:
        kind, col, dtype = _kind(c), pl.col(c.name), frame.schema[c.name]
        if kind == "date":  # a Date already (PostgreSQL), or text (SQLite)
            text = col.cast(pl.String).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
            exprs.append(col if dtype == pl.Date else text.alias(c.name))
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


# --- masking ---------------------------------------------------------------------------------------


@dataclass
class Masker:
    rules: Rules
    salt: str
    originals: pl.Series
    lexicon: Lexicon
    clusters: dict[str, pl.Series]
    pairs: dict[str, str] = field(default_factory=dict)  # original name/company -> pseudonym, for scrubbing

    def string(self, values: pl.Series, kind: str) -> pl.Series:
        """One fake per distinct value, none shared, none equal to an original of any column."""
        if kind in ("first_name", "last_name"):
            return self.lexicon.token(values, kind.removesuffix("_name"))
        if kind == "full_name":
            return self.lexicon.full_name(values)
        if kind == "text":
            return freetext.replace(values, self.salt)
        fn = {"company": P.words, "address": P.words, "email": P.email, "phone": P.phone}[kind]
        uniq = values.drop_nulls().unique().sort()
        fakes = resolve(uniq, lambda v, r: fn(v, self.salt if r == 0 else f"{self.salt}#{r}"), self.originals)
        return values.replace_strict(uniq, fakes, default=None, return_dtype=pl.String).alias(values.name)

    def shift(self, frame: pl.DataFrame, table: str, col: str) -> pl.Expr:
        """One shift per cluster (an account with its contacts, opportunities, cases, activities)."""
        m = self.rules.max_shift_days
        key = pl.lit(self.clusters[table])
        days = P.hmac_int(key, self.salt, "shift") % (2 * m) - m
        days = pl.when(days == 0).then(m).otherwise(days)
        return (pl.col(col) + pl.duration(days=days)).alias(col)

    def scrub(self, values: pl.Series) -> pl.Series:
        """Known values only (explicit choice): e-mails, phones and the masked names."""
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


def _columns(t: dict[str, pl.DataFrame], rules: Rules, kinds: set[str]) -> list[tuple[pl.Series, str]]:
    return [
        (t[table][col].cast(pl.String), kind)
        for table, cols in rules.columns.items()
        for col, kind in cols.items()
        if kind in kinds and t[table].height
    ]


def masker(t: dict[str, pl.DataFrame], rules: Rules, salt: str) -> Masker:
    """The run's masker: the originals to avoid, the name lexicon, the date clusters."""
    strings = _columns(t, rules, STRING_KINDS - {"scrub", "text"})
    originals = pl.concat([s for s, _ in strings]).drop_nulls().unique() if strings else pl.Series([], dtype=pl.String)
    tokens = [name_tokens(s, k) for s, k in _columns(t, rules, NAME_KINDS)]
    empty = pl.Series([], dtype=pl.String)
    first = pl.concat([f for f, _ in tokens] + [empty])
    last = pl.concat([la for _, la in tokens] + [empty])
    return Masker(rules, salt, originals, Lexicon(salt, first, last), clusters(t))


def mask_tables(t: dict[str, pl.DataFrame], rules: Rules, salt: str) -> dict[str, pl.DataFrame]:
    """Every rule applied; names and companies first, so free text can be scrubbed of them."""
    m = masker(t, rules, salt)
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
    ids = ids.with_columns(pl.col("target_id").cast(pl.Int64), pl.col("run_id").cast(pl.Int64))
    return ids.with_columns(P.key(ids["legacy_key"], salt).alias("legacy_key"))


def mask(source: str, target: str, rules_path: Path, key: str | None = None) -> MaskResult:
    """Copy ``source`` into the empty ``target`` with ``rules_path`` applied; ``key`` orders the
    new ids (random when None: the same source masked twice gets other ids)."""
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
        id_map = _id_map(src, t, salt)
    finally:
        src.close()
    masked, maps = renumber(mask_tables(t, rules, salt), key or secrets.token_hex(16))
    _write(target, masked, renumber_id_map(id_map, maps))
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
