"""Database URLs: what may be printed of them, and which databases crmkit writes and reads.

The one place that says which dialects (SQLAlchemy backend names) a CRM target may be and
which a legacy source may be.
"""

from __future__ import annotations

#: what crmkit writes into (migrate run's target, the API, sandboxes)
TARGET_DIALECTS = ("sqlite", "postgresql")
#: MariaDB and MySQL: SQLAlchemy names MariaDB's URLs either way
MYSQL_DIALECTS = ("mysql", "mariadb")
#: what crmkit reads legacy data from (a mapping's sql source, ``crmkit validate URL``)
SOURCE_DIALECTS = (*TARGET_DIALECTS, *MYSQL_DIALECTS)


def mask_url(url: str) -> str:
    """A URL safe to print: the password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def dialect_of(url: str) -> str | None:
    """The URL's dialect (``sqlite``, ``postgresql``, ``mysql``, ...), or None if it is not a database URL."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).get_backend_name()
    except Exception:
        return None


def unsupported_target(url: str) -> str:
    """The message for a target URL of a dialect crmkit does not write."""
    return f"target {mask_url(url)}: only {' and '.join(TARGET_DIALECTS)} targets are supported"
