"""The target CRM schema, its Alembic versions and what the mapping engine needs to know of it.

The models of each capability live beside the core ones and share their metadata:
``models`` (CRM entities and migration bookkeeping), ``api_models`` (API tokens and audit),
``dedupe_models`` (merge lineage, decisions), ``rollout_models`` (waves, approvals).
"""

from crmkit.schema import api_models, dedupe_models, models, rollout_models  # noqa: F401
