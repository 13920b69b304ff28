"""The reference CRM HTTP API (FastAPI) over the target schema."""
