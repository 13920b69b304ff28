"""Transforms: source columns → target fields, column-wise, with a reason for every failure.

Every transform registers in :data:`TRANSFORMS` by its YAML name, in the module of its kind
(``text``, ``lookups``, ``dates``, ``numbers``, ``phones_emails``); the ``bare`` tag marks the
ones that may be written without arguments.  A project adds its own with one decorator::

    @TRANSFORMS.register("cn_province", summary="Province names to their codes.")
    def cn_province(args): ...

This package imports only the kernel (``tests/unit/test_layers.py``).
"""

from __future__ import annotations

from crmkit.migrate.transforms import dates, lookups, numbers, phones_emails, text
from crmkit.migrate.transforms.base import TRANSFORMS, Apply, Factory, Step, build, is_bare, nfkc, nfkc_series
from crmkit.migrate.transforms.cast import blank_to_null, cast_step, typed_cast
from crmkit.migrate.transforms.lookups import map_step

__all__ = [
    "TRANSFORMS",
    "Apply",
    "Factory",
    "Step",
    "blank_to_null",
    "build",
    "cast_step",
    "dates",
    "is_bare",
    "lookups",
    "map_step",
    "nfkc",
    "nfkc_series",
    "numbers",
    "phones_emails",
    "text",
    "typed_cast",
]
