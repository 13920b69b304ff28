"""crmkit_runs.status holds every run status: 'rejects_over_threshold' is 22 characters

PostgreSQL refused it in a varchar(20), so a run over its reject threshold crashed after its
batches had committed.  SQLite does not enforce the length; the column is widened on both.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crmkit_runs") as batch:
        batch.alter_column("status", existing_type=sa.String(20), type_=sa.String(30), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("crmkit_runs") as batch:
        batch.alter_column("status", existing_type=sa.String(30), type_=sa.String(20), existing_nullable=False)
