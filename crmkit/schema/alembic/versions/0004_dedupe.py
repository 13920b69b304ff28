"""dedupe: merge lineage, merge relinks, field lineage, review decisions

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-23 19:30:00

Written by hand (a branch beside 0003; crmkit upgrades to every head).  The tables are
the models of crmkit/schema/dedupe_models.py.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crmkit_merges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("source_name", sa.String(length=100), nullable=False),
        sa.Column("legacy_key", sa.String(length=200), nullable=False),
        sa.Column("survivor_id", sa.Integer(), nullable=False),
        sa.Column("original_id", sa.Integer(), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("values_json", sa.Text(), nullable=False),
        sa.Column("rules_name", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("operator", sa.String(length=100), nullable=False),
        sa.Column("merged_at", sa.DateTime(), nullable=False),
        sa.Column("undone_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crmkit_merges")),
    )
    op.create_index("ix_crmkit_merges_survivor", "crmkit_merges", ["entity", "survivor_id"], unique=False)
    op.create_index("ix_crmkit_merges_key", "crmkit_merges", ["entity", "source_name", "legacy_key"], unique=False)
    op.create_table(
        "crmkit_merge_relinks",
        sa.Column("merge_id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(length=50), nullable=False),
        sa.Column("column_name", sa.String(length=50), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "merge_id", "table_name", "column_name", "row_id", name=op.f("pk_crmkit_merge_relinks")
        ),
    )
    op.create_table(
        "crmkit_field_lineage",
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=50), nullable=False),
        sa.Column("source_name", sa.String(length=100), nullable=False),
        sa.Column("legacy_key", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("entity", "target_id", "field", name=op.f("pk_crmkit_field_lineage")),
    )
    op.create_table(
        "crmkit_dedupe_decisions",
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("left_source", sa.String(length=100), nullable=False),
        sa.Column("left_key", sa.String(length=200), nullable=False),
        sa.Column("right_source", sa.String(length=100), nullable=False),
        sa.Column("right_key", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("origin", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint(
            "entity", "left_source", "left_key", "right_source", "right_key", name=op.f("pk_crmkit_dedupe_decisions")
        ),
    )


def downgrade() -> None:
    op.drop_table("crmkit_dedupe_decisions")
    op.drop_table("crmkit_field_lineage")
    op.drop_table("crmkit_merge_relinks")
    op.drop_index("ix_crmkit_merges_key", table_name="crmkit_merges")
    op.drop_index("ix_crmkit_merges_survivor", table_name="crmkit_merges")
    op.drop_table("crmkit_merges")
