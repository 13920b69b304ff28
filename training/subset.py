"""Subsets of a masked copy: one department and/or a sample of accounts, closed under references."""

from __future__ import annotations

import polars as pl

from crmkit.schema.models import ENTITY_MODELS, table_of
from crmkit.training import pseudonym as P
from crmkit.training.errors import MaskError
from crmkit.training.rules import Subset


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
