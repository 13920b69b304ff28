"""Tables of the staged rollout: where each wave of a plan stands, and the approvals given.

Schema revision ``0005`` creates them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.schema.models import Base


class RolloutWave(Base):
    """One wave of a rollout plan in this target."""

    __tablename__ = "crmkit_rollout_waves"
    plan: Mapped[str] = mapped_column(String(200), primary_key=True)
    wave: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # migrated | rolled_back
    run_ids: Mapped[str] = mapped_column(Text)  # JSON list of migration run ids
    migrated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    rolled_back_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class RolloutApproval(Base):
    """A named approval of a wave (go decision), with who and when."""

    __tablename__ = "crmkit_rollout_approvals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan: Mapped[str] = mapped_column(String(200))
    wave: Mapped[str] = mapped_column(String(100))
    approval: Mapped[str] = mapped_column(String(100))  # the approval's name in the plan
    by: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime] = mapped_column(DateTime)
