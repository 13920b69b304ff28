"""reference CRM API: a token's scope; the token and client address of every audited write

``crmkit_api_tokens.scope`` is ``api`` (the CRM resources) or ``metrics`` (``/metrics`` only);
existing tokens keep their rights (``api``).  ``crmkit_api_audit`` gains ``token_id`` (the
token a write was made with, or the token minted or revoked) and ``client`` (the client's
address, or ``cli`` for the command line).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crmkit_api_tokens") as batch:
        batch.add_column(sa.Column("scope", sa.String(length=20), server_default="api", nullable=False))
    with op.batch_alter_table("crmkit_api_audit") as batch:
        batch.add_column(sa.Column("token_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("client", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("crmkit_api_audit") as batch:
        batch.drop_column("client")
        batch.drop_column("token_id")
    with op.batch_alter_table("crmkit_api_tokens") as batch:
        batch.drop_column("scope")
