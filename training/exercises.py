"""Exercises: tasks whose answers are computed from the generated world, and their grading.

Three kinds (docs/training-scenarios.md#exercises):

* ``largest_open_pipeline``: which account has the largest open pipeline?  The trainee
  answers by tagging the account with the tag ``answer:<id>`` (the generator creates it).
* ``merge_duplicate_contact``: the generator plants a second record of one contact (same
  name, account and phone) and moves some of the contact's activities to it; the trainee
  merges them: one record stays, the other is deleted or made inactive, and nothing points
  at it any more.
* ``close_case``: the oldest open case (of a priority) must be closed, with a description
  that holds a line starting ``Resolution:``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from crmkit.schema.vocabulary import OPEN_STAGES
from crmkit.training.errors import ScenarioError
from crmkit.training.scenario import Exercise


def _dept_id(world: Any, code: str | None) -> int | None:
    if code is None:
        return None
    d = world.tables["departments"]
    return int(d.filter(pl.col("code") == code)["id"][0])


def _in_dept(frame: pl.DataFrame, dept: int | None) -> pl.DataFrame:
    return frame if dept is None else frame.filter(pl.col("department_id") == dept)


def _where(e: Exercise) -> str:
    return f" in {e.department}" if e.department else ""


def largest_open_pipeline(world: Any, e: Exercise) -> dict[str, Any]:
    o = _in_dept(world.tables["opportunities"], _dept_id(world, e.department))
    open_ = o.filter(pl.col("stage").is_in(OPEN_STAGES))
    if open_.height == 0:
        raise ScenarioError(f"exercise {e.id}: there are no open opportunities{_where(e)} to ask about")
    top = (
        open_.group_by("account_id")
        .agg(pl.col("amount").sum().round(2).alias("amount"))
        .sort(["amount", "account_id"], descending=[True, False])
        .row(0, named=True)
    )
    acc = world.tables["accounts"].filter(pl.col("id") == top["account_id"]).row(0, named=True)
    tag = f"answer:{e.id}"
    return {
        "prompt": f"Which account{_where(e)} has the largest open pipeline? Tag it with '{tag}'.",
        "answer": {
            "tag": tag,
            "account_id": acc["id"],
            "account_key": acc["legacy_key"],
            "account": acc["name"],
            "open_amount": top["amount"],
        },
    }


def merge_duplicate_contact(world: Any, e: Exercise) -> dict[str, Any]:
    from crmkit.training.columns import rng_for

    c = world.tables["contacts"]
    pool = _in_dept(c, _dept_id(world, e.department)).filter(pl.col("account_id").is_not_null() & pl.col("active"))
    if pool.height == 0:
        raise ScenarioError(f"exercise {e.id}: there is no contact{_where(e)} to duplicate")
    r = rng_for(world.seed, f"exercise:{e.id}")
    busy = world.tables["activities"]["contact_id"].value_counts().filter(pl.col("count") >= 2)["contact_id"]
    if pool.filter(pl.col("id").is_in(busy.implode())).height:  # one with activities to move, if any
        pool = pool.filter(pl.col("id").is_in(busy.implode()))
    x = pool.row(int(r.integers(0, pool.height)), named=True)
    width = len(c["legacy_key"][0]) - 1
    dup_id = int(c["id"].max()) + 1  # type: ignore[arg-type]
    email = None if "contacts.email" in world.scenario.unique else x["email"]
    dup = {
        **x,
        "id": dup_id,
        "legacy_key": "C" + str(dup_id).zfill(width),
        "email": email,
        "created_at": world.scenario.dates.end,
        "notes": None,
    }
    world.tables["contacts"] = pl.concat([c, pl.DataFrame([dup], schema=c.schema)])
    a = world.tables["activities"]
    theirs = a["contact_id"] == x["id"]
    first = pl.Series(np.arange(a.height) == (int(theirs.arg_true()[0]) if theirs.any() else -1))
    move = theirs & (pl.Series(r.random(a.height) < 0.5) | first)
    world.tables["activities"] = a.with_columns(
        pl.when(move).then(pl.lit(dup_id)).otherwise(pl.col("contact_id")).cast(pl.Int64).alias("contact_id")
    )
    account = world.tables["accounts"].filter(pl.col("id") == x["account_id"])["name"][0]
    return {
        "prompt": f"{x['full_name']} of {account} was entered twice: merge the two contact records into one "
        f"(keep one; move activities and cases to it; delete or deactivate the other).",
        "answer": {
            "contact_ids": [x["id"], dup_id],
            "contact_keys": [x["legacy_key"], dup["legacy_key"]],
            "full_name": x["full_name"],
            "account": account,
        },
    }


def close_case(world: Any, e: Exercise) -> dict[str, Any]:
    cases = _in_dept(world.tables["cases"], _dept_id(world, e.department))
    if e.priority:
        cases = cases.filter(pl.col("priority") == e.priority)
    if cases.height == 0:
        raise ScenarioError(f"exercise {e.id}: there is no {e.priority or ''} case{_where(e)} to close")
    k = cases.filter(pl.col("status") != "closed")
    if k.height == 0:  # every such case is closed: reopen the latest one for the exercise
        latest = cases.sort(["opened_at", "id"], descending=True)["id"][0]
        reopen = pl.col("id") == latest
        world.tables["cases"] = world.tables["cases"].with_columns(
            pl.when(reopen).then(pl.lit("open")).otherwise(pl.col("status")).alias("status"),
            pl.when(reopen).then(None).otherwise(pl.col("closed_at")).alias("closed_at"),
        )
        k = world.tables["cases"].filter(pl.col("id") == latest)
    case = k.sort(["opened_at", "id"]).row(0, named=True)
    account = world.tables["accounts"].filter(pl.col("id") == case["account_id"])["name"][0]
    return {
        "prompt": f"Close case '{case['subject']}' of {account} (opened {case['opened_at']:%Y-%m-%d %H:%M}) "
        f"and write the resolution into its description, on a line starting 'Resolution:'.",
        "answer": {
            "case_id": case["id"],
            "case_key": case["legacy_key"],
            "subject": case["subject"],
            "account": account,
        },
    }


PLANTERS: dict[str, Callable[[Any, Exercise], dict[str, Any]]] = {
    "largest_open_pipeline": largest_open_pipeline,
    "merge_duplicate_contact": merge_duplicate_contact,
    "close_case": close_case,
}


def plant(world: Any) -> None:
    """Compute every exercise's answer from the world (planting what it needs first)."""
    world.exercises = []
    for e in world.scenario.exercises:
        done = PLANTERS[e.kind](world, e)
        world.exercises.append({"id": e.id, "kind": e.kind, "points": e.points, **done})


# --- grading ------------------------------------------------------------------------------


@dataclass
class Grade:
    id: str
    kind: str
    points: int
    score: float
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _truthy(v: Any) -> bool:
    return v is None or bool(v)  # NULL active counts as active


def grade_largest(loader: Any, ex: dict[str, Any]) -> tuple[float, str]:
    tagged = loader.query(
        "SELECT tg.account_id AS account_id FROM taggings tg JOIN tags t ON t.id = tg.tag_id "
        "WHERE t.name = ? AND tg.account_id IS NOT NULL",
        (ex["answer"]["tag"],),
    )
    ids = sorted({int(v) for v in tagged["account_id"].to_list()}) if tagged.height else []
    if not ids:
        return 0, f"no account is tagged '{ex['answer']['tag']}' yet"
    if ids == [ex["answer"]["account_id"]]:
        return 1, "correct account tagged"
    if ex["answer"]["account_id"] in ids:
        return 0.5, f"the right account is tagged, but so are {len(ids) - 1} other(s)"
    return 0, "the tagged account is not the one with the largest open pipeline"


def grade_merge(loader: Any, ex: dict[str, Any]) -> tuple[float, str]:
    ids = ex["answer"]["contact_ids"]
    rows = loader.query("SELECT id, active FROM contacts WHERE id IN (?, ?)", tuple(ids))
    alive = [int(r["id"]) for r in rows.iter_rows(named=True) if _truthy(r["active"])]
    if len(alive) == 2:
        return 0, "both records are still active"
    if not alive:
        return 0, "both records were removed: one must stay"
    gone = next(i for i in ids if i not in alive)
    left = 0
    for table in ("activities", "cases", "taggings"):
        left += int(loader.scalar(f'SELECT count(*) FROM "{table}" WHERE contact_id = ?', (gone,)) or 0)
    if left:
        return 0.5, f"merged, but {left} activities/cases/taggings still point at the removed record"
    return 1, "merged into one record"


def grade_close(loader: Any, ex: dict[str, Any]) -> tuple[float, str]:
    rows = loader.query("SELECT status, closed_at, description FROM cases WHERE id = ?", (ex["answer"]["case_id"],))
    if rows.height == 0:
        return 0, "the case was deleted instead of closed"
    row = rows.row(0, named=True)
    if row["status"] != "closed" or row["closed_at"] is None:
        return 0, f"the case is still {row['status']}" + ("" if row["closed_at"] is None else "")
    if "resolution:" not in str(row["description"] or "").lower():
        return 0.5, "closed, but the description has no 'Resolution:' line"
    return 1, "closed with a resolution"


GRADERS: dict[str, Callable[[Any, dict[str, Any]], tuple[float, str]]] = {
    "largest_open_pipeline": grade_largest,
    "merge_duplicate_contact": grade_merge,
    "close_case": grade_close,
}


def grade(url: str, exercises: list[dict[str, Any]]) -> list[Grade]:
    """Grade the database at ``url`` against the exercises' answers."""
    from crmkit.db.loader import open_loader

    loader = open_loader(url)
    try:
        out = []
        for ex in exercises:
            share, detail = GRADERS[ex["kind"]](loader, ex)
            out.append(Grade(ex["id"], ex["kind"], ex["points"], round(share * ex["points"], 2), detail))
        return out
    finally:
        loader.close()
