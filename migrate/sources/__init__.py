"""Source kinds: one registry of what a mapping's ``sources:`` can read.

Every kind registers once in :data:`SOURCES` (:func:`register_kind`: the model of its
mapping keys, its reader, the file suffixes that mean it), in its own module: ``csv`` and
``tsv`` (:mod:`.csv`), ``xlsx`` (:mod:`.xlsx`), ``sql`` (:mod:`.sql`).  Mappings validate a
source as the model its ``kind`` names (:class:`AnySource`), :func:`extract` reads it with
its kind's reader, and ``crmkit validate`` / ``crmkit dedupe`` tell a file's kind by
:func:`kind_for`.  Every column comes out as text (legacy data is text until a transform
says otherwise); ``__row`` (:data:`ROW`) is the row number a person would look for: the
line or spreadsheet row for files, the ordinal for a query.

This package sits just above the kernel: it imports nothing else of crmkit.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any

from pydantic import BaseModel, Field, GetCoreSchemaHandler
from pydantic_core import CoreSchema

from crmkit.migrate.sources.base import (
    ROW,
    SOURCES,
    Extracted,
    FileSource,
    Reader,
    SourceKind,
    SourceModel,
    kind_for,
    register_kind,
)
from crmkit.migrate.sources.csv import ENCODINGS_HINT, CsvSource
from crmkit.migrate.sources.sql import SqlSource
from crmkit.migrate.sources.xlsx import XlsxSource

__all__ = [
    "ENCODINGS_HINT",
    "ROW",
    "SOURCES",
    "AnySource",
    "CsvSource",
    "Extracted",
    "FileSource",
    "Reader",
    "SourceKind",
    "SourceModel",
    "SqlSource",
    "XlsxSource",
    "extract",
    "file_suffixes",
    "kind_for",
    "make_source",
    "register_kind",
    "source_model_union",
]


def extract(name: str, source: SourceModel) -> Extracted:
    """Read ``source`` (named ``name`` in messages) with its kind's reader."""
    return SOURCES.get(source.kind).read(name, source)


def make_source(kind: str, **keys: Any) -> SourceModel:
    """A source of ``kind`` from keys given on a command line: None values and keys the kind has not are left out.

    Raises pydantic's ValidationError, as a mapping would, for the caller to word.
    """
    model = SOURCES.get(kind).model
    given = {k: v for k, v in keys.items() if v is not None and k in model.model_fields}
    return model.model_validate({"kind": kind, **given})


def file_suffixes(key: str | None = None, also: tuple[str, ...] = ()) -> str:
    """The first suffix of every file kind (by kind name; only kinds with the key ``key`` if given),
    then ``also``, for a message: ``.csv, .tsv or .xlsx``."""
    words = [
        kind.suffixes[0]
        for kind in map(SOURCES.get, SOURCES.names())
        if kind.suffixes and (key is None or key in kind.model.model_fields)
    ]
    words += also
    return " or ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


def _models() -> list[type[SourceModel]]:
    """Every registered model once: file kinds first, then the others (each by kind name).

    A fixed order, not the order of imports: it is the order of the expected tags in the
    unknown-kind message (``'csv', 'tsv', 'xlsx', 'sql'``).
    """
    names = sorted(SOURCES.names(), key=lambda n: not SOURCES.get(n).suffixes)
    return list(dict.fromkeys(SOURCES.get(n).model for n in names))


def source_model_union() -> Any:
    """The pydantic type of a mapping's source: the registered models, told apart by ``kind``."""
    models = _models()
    if len(models) == 1:
        return models[0]
    return Annotated[functools.reduce(operator.or_, models), Field(discriminator="kind")]


class AnySource:
    """``Annotated[SourceModel, AnySource()]``: validated as the registered model its ``kind`` names.

    The union is built with the schema of the model holding it; :meth:`refresh` rebuilds that
    schema when kinds were registered or removed since.
    """

    def __init__(self) -> None:
        self._built_for: tuple[tuple[str, SourceKind], ...] | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        self._built_for = _registered()
        return handler.generate_schema(source_model_union())

    def refresh(self, model: type[BaseModel]) -> None:
        """Rebuild ``model`` (which holds this field) if the registered kinds changed since it was built."""
        if self._built_for != _registered():
            model.model_rebuild(force=True)


def _registered() -> tuple[tuple[str, SourceKind], ...]:
    return tuple((n, SOURCES.get(n)) for n in SOURCES.names())
