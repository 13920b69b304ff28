"""Bookkeeping of deduplication in the target: merge lineage, field lineage, review decisions.

* ``crmkit_merges``: one row per record a merge folded into a golden row (role ``merged``)
  and one for the golden row's own record (role ``survivor``), each with its values as
  they were, so that ``crmkit dedupe unmerge`` can restore them exactly.
* ``crmkit_merge_relinks``: child rows (an opportunity's ``account_id``...) a merge in the
  target re-pointed from a merged row to the golden row, so an unmerge can point them back.
* ``crmkit_field_lineage``: for each golden row and field, the source and legacy key its
  value came from.
* ``crmkit_dedupe_decisions``: a person's ``match`` / ``not_a_match`` on a pair of records,
  honoured by every later merge and migration run.

Schema revision ``0004`` (a branch beside ``0003``; upgrade goes to all heads).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.schema.models import Base


class Merge(Base):
    """A record folded into a golden row (or the golden row's own record, role ``survivor``)."""

    __tablename__ = "crmkit_merges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(50))
    role: Mapped[str] = mapped_column(String(10))  # merged | survivor
    source_name: Mapped[str] = mapped_column(String(100))
    legacy_key: Mapped[str] = mapped_column(String(200))
    survivor_id: Mapped[int] = mapped_column(Integer)  # the golden row
    original_id: Mapped[int | None] = mapped_column(Integer)  # its own row before a merge in the target
    probability: Mapped[float | None] = mapped_column(Float)
    values_json: Mapped[str] = mapped_column(Text)  # its field values as they were (text)
    rules_name: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[int | None] = mapped_column(Integer)  # the migration run, NULL for `crmkit dedupe merge`
    operator: Mapped[str] = mapped_column(String(100))
    merged_at: Mapped[dt.datetime] = mapped_column(DateTime)
    undone_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


Index("ix_crmkit_merges_survivor", Merge.entity, Merge.survivor_id)
Index("ix_crmkit_merges_key", Merge.entity, Merge.source_name, Merge.legacy_key)


class MergeRelink(Base):
    """A child row a merge re-pointed to the golden row."""

    __tablename__ = "crmkit_merge_relinks"
    merge_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    table_name: Mapped[str] = mapped_column(String(50), primary_key=True)
    column_name: Mapped[str] = mapped_column(String(50), primary_key=True)
    row_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class FieldLineage(Base):
    """Where each value of a golden row came from."""

    __tablename__ = "crmkit_field_lineage"
    entity: Mapped[str] = mapped_column(String(50), primary_key=True)
    target_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    field: Mapped[str] = mapped_column(String(50), primary_key=True)
    source_name: Mapped[str] = mapped_column(String(100))
    legacy_key: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[int | None] = mapped_column(Integer)


class DedupeDecision(Base):
    """A person's decision on a pair of records (left sorts before right)."""

    __tablename__ = "crmkit_dedupe_decisions"
    entity: Mapped[str] = mapped_column(String(50), primary_key=True)
    left_source: Mapped[str] = mapped_column(String(100), primary_key=True)
    left_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    right_source: Mapped[str] = mapped_column(String(100), primary_key=True)
    right_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    decision: Mapped[str] = mapped_column(String(20))  # match | not_a_match
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime)
    origin: Mapped[str | None] = mapped_column(String(500))  # file it came from, or "unmerge"
