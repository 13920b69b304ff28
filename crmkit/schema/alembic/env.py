"""Alembic environment: runs on the connection crmkit hands it (see crmkit.schema.versions)."""

from alembic import context

from crmkit.schema.models import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
