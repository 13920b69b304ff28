"""Endpoint groups and threshold metrics (the personas: personas.py): the vocabulary profiles are checked against.

Every request the personas send is named ``"<group> <what>"``; the group is the first word.
``all`` is every request together.
"""

from __future__ import annotations

#: endpoint groups a threshold may name
GROUPS = ("search", "read", "write", "report", "all")


#: threshold metrics: name -> (unit, kind) where kind "max" is a ceiling and "min" a floor
METRICS: dict[str, tuple[str, str]] = {
    "p50": ("ms", "max"),
    "p95": ("ms", "max"),
    "p99": ("ms", "max"),
    "error_rate": ("%", "max"),
    "min_rps": ("req/s", "min"),
}


def group_of(request_name: str) -> str:
    """The endpoint group of a request name such as ``"search /accounts?q"``."""
    return request_name.split(" ", 1)[0]
