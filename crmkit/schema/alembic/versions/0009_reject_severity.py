"""crmkit_rejects.severity: warnings are listed beside the rejects, told apart by severity

A row loaded with an ``on_error: warn`` value left empty (or failing a validation warning
rule) was only counted; it is now stored with severity ``warning``.  Existing rows are
rejects: ``error``.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crmkit_rejects") as batch:
        batch.add_column(sa.Column("severity", sa.String(10), server_default="error", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("crmkit_rejects") as batch:
        batch.drop_column("severity")
