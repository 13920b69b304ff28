"""image_hash on every CRM entity (and its before-image table): rollback sees later edits

A run seals each row it writes with a hash of the row's other columns; a rollback reads the
row back, and a row edited since (through the API or by hand) no longer matches: it is
named and the rollback refuses instead of discarding the edit (``--force`` overrides).
Rows written before this revision have no hash and are rolled back as before.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ENTITIES = (
    "departments",
    "users",
    "accounts",
    "contacts",
    "leads",
    "opportunities",
    "activities",
    "cases",
    "tags",
    "taggings",
)


def upgrade() -> None:
    for entity in ENTITIES:
        for table in (entity, f"crmkit_before_{entity}"):
            with op.batch_alter_table(table) as batch:
                batch.add_column(sa.Column("image_hash", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for entity in ENTITIES:
        for table in (entity, f"crmkit_before_{entity}"):
            with op.batch_alter_table(table) as batch:
                batch.drop_column("image_hash")
