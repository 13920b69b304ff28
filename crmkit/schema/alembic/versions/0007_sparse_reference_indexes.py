"""optional references indexed only where set (partial indexes WHERE col IS NOT NULL)

A bulk load of rows without an owner, a department or an account then builds nothing for
those columns, and the indexes hold only rows that have a reference; lookups by a parent
id (``col = ?``) use them as before.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: (table, column): frozen here, as revisions must not import the models
SPARSE = [
    ("users", "department_id"),
    ("accounts", "owner_id"),
    ("accounts", "department_id"),
    ("contacts", "account_id"),
    ("contacts", "owner_id"),
    ("contacts", "department_id"),
    ("leads", "owner_id"),
    ("leads", "department_id"),
    ("opportunities", "owner_id"),
    ("opportunities", "department_id"),
    ("activities", "account_id"),
    ("activities", "contact_id"),
    ("activities", "opportunity_id"),
    ("activities", "owner_id"),
    ("cases", "account_id"),
    ("cases", "contact_id"),
    ("cases", "owner_id"),
    ("cases", "department_id"),
    ("taggings", "account_id"),
    ("taggings", "contact_id"),
]


def upgrade() -> None:
    for table, column in SPARSE:
        op.drop_index(f"ix_{table}_{column}", table_name=table)
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_{table}_{column}", table, [column], postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for table, column in SPARSE:
        op.drop_index(f"ix_{table}_{column}", table_name=table)
        op.create_index(f"ix_{table}_{column}", table, [column])
