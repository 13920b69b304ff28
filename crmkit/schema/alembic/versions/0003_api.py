"""reference CRM API: bearer-token hashes and the audit log of writes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crmkit_api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_crmkit_api_tokens_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crmkit_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_crmkit_api_tokens_token_hash")),
    )
    with op.batch_alter_table("crmkit_api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crmkit_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "crmkit_api_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("user_email", sa.String(length=320), nullable=True),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("before_json", sa.Text(), nullable=True),
        sa.Column("after_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crmkit_api_audit")),
    )
    with op.batch_alter_table("crmkit_api_audit", schema=None) as batch_op:
        batch_op.create_index("ix_crmkit_api_audit_entity", ["entity", "entity_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("crmkit_api_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_crmkit_api_audit_entity")
    op.drop_table("crmkit_api_audit")
    with op.batch_alter_table("crmkit_api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crmkit_api_tokens_user_id"))
    op.drop_table("crmkit_api_tokens")
