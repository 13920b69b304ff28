"""What would link a masked copy back to its source: keys, derived columns, date offsets.

* :func:`renumber`: every primary key goes through a permutation keyed by the run's key
  (random per run unless ``CRMKIT_MASK_KEY`` gives one) into the range just above the
  source's largest id, so no id of the copy equals an id of the source (id 1 does not stay
  id 1); every reference follows its parent's new id, and so do the id map's target ids.
* Columns the schema declares derived (``info=derived()`` in :mod:`crmkit.schema.vocabulary`:
  the row hash of the original values, the run that wrote the row) are dropped (NULL).
* :func:`clusters`: the rows whose dates move together: an account with its contacts,
  opportunities, cases and activities (so a contact is never created before its account and
  a case keeps its time to resolution); a contact without account with its cases and
  activities; every other row on its own.
"""

from __future__ import annotations

import polars as pl

from crmkit.schema.models import ENTITY_MODELS, table_of
from crmkit.schema.vocabulary import derived_columns
from crmkit.training import pseudonym as P


def _new_ids(f: pl.DataFrame, table: str, key: str) -> pl.DataFrame:
    base = int(f["id"].max() or 0)  # type: ignore[arg-type]
    order = f.select("id", P.hmac_int(pl.col("id"), key, f"id:{table}").alias("h")).sort("h", "id")
    return order.select(pl.col("id").alias("old"), (pl.int_range(1, pl.len() + 1, dtype=pl.Int64) + base).alias("new"))


def _via(col: str, m: pl.DataFrame) -> pl.Expr:
    return pl.col(col).replace_strict(m["old"], m["new"], default=None, return_dtype=pl.Int64).alias(col)


def renumber(t: dict[str, pl.DataFrame], key: str) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
    """The frames with new keys and derived columns dropped; and each table's old → new ids."""
    maps = {table: _new_ids(f, table, key) for table, f in t.items()}
    out = {}
    for table, f in t.items():
        exprs = [_via("id", maps[table])]
        for c in table_of(ENTITY_MODELS[table]).columns:
            fk = next(iter(c.foreign_keys), None)
            if fk is not None:
                exprs.append(_via(c.name, maps[fk.column.table.name]))
        exprs += [pl.lit(None, dtype=f.schema[c]).alias(c) for c in derived_columns(table)]
        out[table] = f.with_columns(exprs)
    return out, maps


def renumber_id_map(ids: pl.DataFrame, maps: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The id map's target ids through the same permutation; its run ids (the source's runs,
    not copied) set to 0."""
    if ids.height == 0:
        return ids
    parts = []
    for entity, m in maps.items():
        part = ids.filter(pl.col("entity") == entity)
        parts.append(part.with_columns(_via("target_id", m)).filter(pl.col("target_id").is_not_null()))
    return pl.concat(parts).with_columns(pl.lit(0, dtype=pl.Int64).alias("run_id"))


def _ids(table: str, col: str = "id") -> pl.Expr:
    return pl.lit(f"{table}:") + pl.col(col).cast(pl.String)


def clusters(t: dict[str, pl.DataFrame]) -> dict[str, pl.Series]:
    """Per table, per row, the name of the cluster whose dates move together."""
    account = _ids("accounts", "account_id")
    con = t["contacts"].select(pl.col("id").alias("old"), pl.coalesce(account, _ids("contacts")).alias("new"))
    opp = t["opportunities"].select(pl.col("id").alias("old"), account.alias("new"))

    def via(col: str, m: pl.DataFrame) -> pl.Expr:
        return pl.col(col).replace_strict(m["old"], m["new"], default=None, return_dtype=pl.String)

    keys = {
        "accounts": _ids("accounts"),
        "contacts": pl.coalesce(account, _ids("contacts")),
        "opportunities": account,
        "cases": pl.coalesce(via("contact_id", con), account, _ids("cases")),
        "activities": pl.coalesce(via("contact_id", con), account, via("opportunity_id", opp), _ids("activities")),
    }
    return {table: f.select(keys.get(table, _ids(table)).alias("k"))["k"] for table, f in t.items()}
