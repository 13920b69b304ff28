"""Who and when, the same for every record crmkit keeps (runs, audit, decisions, gates)."""

from __future__ import annotations

import datetime as dt
import getpass


def operator_name(given: str | None) -> str:
    """The operator's name as given, else the login name, else ``unknown``."""
    if given:
        return given
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def now() -> dt.datetime:
    """The time now in UTC, naive (as every crmkit table stores it)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
