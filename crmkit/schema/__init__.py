"""The target CRM schema, its Alembic versions and what the mapping engine needs to know of it."""
