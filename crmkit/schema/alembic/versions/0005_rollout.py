"""staged rollout: waves and approvals

Revision ID: 0005
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crmkit_rollout_waves",
        sa.Column("plan", sa.String(length=200), nullable=False),
        sa.Column("wave", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("run_ids", sa.Text(), nullable=False),
        sa.Column("migrated_at", sa.DateTime(), nullable=True),
        sa.Column("rolled_back_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("plan", "wave", name=op.f("pk_crmkit_rollout_waves")),
    )
    op.create_table(
        "crmkit_rollout_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan", sa.String(length=200), nullable=False),
        sa.Column("wave", sa.String(length=100), nullable=False),
        sa.Column("approval", sa.String(length=100), nullable=False),
        sa.Column("by", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crmkit_rollout_approvals")),
    )


def downgrade() -> None:
    op.drop_table("crmkit_rollout_approvals")
    op.drop_table("crmkit_rollout_waves")
