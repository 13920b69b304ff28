"""The mapping language, v1: typed, checked when loaded, errors as ``file:line: what``.

See docs/mapping-reference.md for every key.  :func:`load_mapping` is the only way in.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from crmkit.config import Document, Strict, load_model
from crmkit.errors import ConfigError, CrmkitError, MappingError
from crmkit.migrate import transforms as T
from crmkit.migrate.sources import AnySource, SourceModel
from crmkit.paths import confine
from crmkit.schema.target import TargetEntity, TargetField, entities
from crmkit.validate.rules import ValidationRules, check_meaning

#: a source: the model of its ``kind`` among those registered in crmkit.migrate.sources
_ANY_SOURCE = AnySource()


def _confined(v: Path, info: ValidationInfo) -> Path:
    return confine(v, (info.context or {}).get("base"))


#: a path relative to the mapping, inside its project (crmkit.paths)
ProjectPath = Annotated[Path, AfterValidator(_confined)]
Source = Annotated[SourceModel, _ANY_SOURCE]


class StepSpec(Strict):
    """One transform: its name and YAML arguments, already turned into a Step."""

    name: str
    args: Any = None


def _parse_steps(v: Any) -> list[StepSpec]:
    items = v if isinstance(v, list) else [v]
    out = []
    for item in items:
        if isinstance(item, str):
            name, args = item, None
            if name in T.TRANSFORMS and not T.is_bare(name):
                raise ValueError(f"transform '{name}' needs arguments, e.g. {{{name}: ...}}")
        elif isinstance(item, dict) and len(item) == 1:
            name, args = next(iter(item.items()))
        else:
            raise ValueError("a transform is a name (strip) or one key with its arguments ({date: ['%Y-%m-%d']})")
        T.build(str(name), args)  # raises ValueError naming the problem
        out.append(StepSpec(name=str(name), args=args))
    return out


class FieldSpec(Strict):
    """How one target field is filled."""

    column: str | None = Field(None, alias="column")
    columns: list[str] | None = None
    sep: str = " "
    const: Any = None
    transform: list[StepSpec] = []
    map: dict[Any, Any] | None = None
    default: Any = None
    ref: str | None = None
    source: str | None = None
    on_error: Literal["reject", "warn"] = "reject"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"column": v}
        if isinstance(v, dict) and "key" in v and "ref" in v:
            v = {("column" if k == "key" else k): x for k, x in v.items()}
        return v

    @field_validator("transform", mode="before")
    @classmethod
    def _steps(cls, v: Any) -> list[StepSpec]:
        return _parse_steps(v) if v is not None else []

    @field_validator("const", "default")
    @classmethod
    def _one_value(cls, v: Any) -> Any:
        if isinstance(v, list | dict | set):
            kind = "a list" if isinstance(v, list | set) else "a mapping"
            raise ValueError(f"give one value (text, a number, true/false or a date), not {kind}")
        return v

    @field_validator("map")
    @classmethod
    def _plain_map(cls, v: dict[Any, Any] | None) -> dict[Any, Any] | None:
        for key, value in (v or {}).items():
            if isinstance(key, bool) or key is None:
                raise ValueError(f"the key {key!r} is a YAML {'boolean' if key is not None else 'null'}: {YAML_WORDS}")
            if isinstance(value, list | dict | set):
                raise ValueError(f"{key!r} maps to a list or mapping: give one value")
        return v

    @model_validator(mode="after")
    def _one_input(self) -> FieldSpec:
        given = [k for k in ("column", "columns", "const") if getattr(self, k) is not None]
        if self.ref and not self.column:
            raise ValueError("a ref needs the column holding the legacy key (column: or key:)")
        if len(given) > 1:
            raise ValueError(f"give one of column, columns or const, not {' and '.join(given)}")
        if not given and self.default is None:
            raise ValueError("give a column, columns or const")
        return self

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set

    @property
    def inputs(self) -> list[str]:
        cols = [self.column] if self.column else list(self.columns or [])
        for s in self.transform:
            cols += [c for c in T.build(s.name, s.args).needs if c]
        return cols


class Feed(Strict):
    """One source feeding one entity."""

    from_: str = Field(alias="from")
    key: list[str]
    fields: dict[str, FieldSpec]
    filter: str | None = None
    #: legacy rows that disappeared since an earlier run: counted and kept, their target rows set
    #: inactive, or deleted (see migrate/pipeline/vanish.py)
    on_vanished: Literal["keep", "deactivate", "delete"] = "keep"
    #: ``file:line: entities.X.filter`` of the filter, for messages when it is applied
    _filter_at: str = PrivateAttr("")

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("filter")
    @classmethod
    def _filter_parses(cls, v: str | None) -> str | None:
        if v is not None:
            from crmkit.migrate.condition import ConditionError, parse_condition

            try:
                parse_condition(v)
            except ConditionError as exc:
                raise ValueError(f"filter is not a SQL condition crmkit allows: {exc}") from None
        return v

    @property
    def source(self) -> str:
        return self.from_

    @property
    def filter_at(self) -> str:
        return self._filter_at


class Mapping(Strict):
    """A whole mapping file."""

    version: Literal[1]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    sources: dict[str, Source]
    entities: dict[str, list[Feed]]
    max_rejects: str | int | None = None
    #: validation rules (inline, or the path of a rules file) run before anything loads; see
    #: docs/validation-reference.md.  Named validate_ since ``validate`` is a pydantic method.
    validate_: ValidationRules | None = Field(None, alias="validate")
    #: entity -> dedupe rules file (relative to the mapping): duplicates merge before they load
    dedupe: dict[str, ProjectPath] = {}

    @field_validator("max_rejects")
    @classmethod
    def _threshold(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            text = str(v).strip()
            try:
                value = float(text[:-1]) if text.endswith("%") else int(text)
            except ValueError:
                raise ValueError(f"'{text}' is neither a count (10) nor a percentage (0.5%)") from None
            if value < 0:
                raise ValueError(f"'{text}' is negative")
        return v

    @field_validator("entities", mode="before")
    @classmethod
    def _feed_lists(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (f if isinstance(f, list) else [f]) for k, f in v.items()}
        return v

    _path: Path | None = PrivateAttr(None)
    _hash: str = PrivateAttr("")

    @property
    def path(self) -> Path:
        assert self._path is not None
        return self._path

    @property
    def content_hash(self) -> str:
        """sha256 of the mapping file's bytes: a changed mapping is a different mapping."""
        return self._hash


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file: schema, then meaning (entities, fields, refs)."""
    path = Path(path)
    _ANY_SOURCE.refresh(Mapping)  # a source kind registered since the import is a kind mappings may use
    try:
        mapping, doc = load_model(path, Mapping)
    except ConfigError as exc:
        raise MappingError(str(exc)) from None
    mapping._path = path
    mapping._hash = hashlib.sha256(path.read_bytes()).hexdigest()
    _check_meaning(mapping, doc)
    return mapping


def _fail(doc: Document, loc: tuple[Any, ...], msg: str) -> MappingError:
    where = ".".join(str(p) for p in loc)
    return MappingError(f"{doc.path}:{doc.line_of(loc)}: {where}: {msg}")


def _check_meaning(m: Mapping, doc: Document) -> None:
    targets = entities()
    for ename, feeds in m.entities.items():
        if ename not in targets:
            raise _fail(doc, ("entities", ename), f"unknown entity (known: {', '.join(targets)})")
        target = targets[ename]
        for i, feed in enumerate(feeds):
            loc = ("entities", ename) + ((i,) if len(feeds) > 1 else ())
            _check_feed(m, doc, target, feed, loc)
    entity_order(m)  # raises on a cycle
    for entity, rules_path in m.dedupe.items():
        if entity not in m.entities:
            raise _fail(doc, ("dedupe", entity), f"the mapping loads no {entity} to deduplicate")
        from crmkit.dedupe.rules import load_rules as load_dedupe_rules

        try:
            load_dedupe_rules(rules_path)
        except CrmkitError as exc:
            raise MappingError(f"{doc.path}:{doc.line_of(('dedupe', entity))}: dedupe.{entity}: {exc}") from None
    if m.validate_ is not None:
        try:
            check_meaning(m.validate_, doc, ("validate",))
        except ConfigError as exc:
            raise MappingError(str(exc)) from None


def _check_feed(m: Mapping, doc: Document, target: TargetEntity, feed: Feed, loc: tuple[Any, ...]) -> None:
    feed._filter_at = f"{doc.path}:{doc.line_of(loc + ('filter',))}: {'.'.join(map(str, loc + ('filter',)))}"
    if feed.source not in m.sources:
        raise _fail(doc, loc + ("from",), f"unknown source '{feed.source}' (sources: {', '.join(m.sources)})")
    seen: set[str] = set()
    for fname, spec in feed.fields.items():
        floc = loc + ("fields", fname)
        tf = target.field(fname)
        if tf is None:
            raise _fail(doc, floc, f"'{fname}' is not a field of {target.name} (fields: {', '.join(target.fields)})")
        if tf.name in seen:
            raise _fail(doc, floc, f"{tf.name} is mapped twice")
        seen.add(tf.name)
        if spec.ref:
            if tf.references is None:
                raise _fail(doc, floc, f"{tf.name} is not a reference; drop ref:")
            if spec.ref != tf.references:
                raise _fail(doc, floc, f"{tf.name} refers to {tf.references}, not {spec.ref}")
            src = spec.source
            if src is not None and src not in m.sources:
                raise _fail(doc, floc + ("source",), f"unknown source '{src}'")
        elif tf.references is not None and spec.const is None:
            raise _fail(doc, floc, f"{tf.name} refers to {tf.references}: write {{ref: {tf.references}, column: ...}}")
        if spec.on_error == "warn" and tf.required:
            raise _fail(
                doc,
                floc + ("on_error",),
                f"{tf.name} is required, so a row cannot load with it empty: drop on_error: warn (the row is rejected)",
            )
        _check_yaml_booleans(doc, floc, tf, spec)
    if feed.on_vanished == "deactivate" and "active" not in target.fields:
        raise _fail(doc, loc + ("on_vanished",), f"{target.name} has no active flag to clear; use keep")
    missing = [f.name for f in target.fields.values() if f.required and f.name not in seen]
    if missing:
        raise _fail(doc, loc + ("fields",), f"required field(s) of {target.name} not mapped: {', '.join(missing)}")


#: why a bare NO, yes, on or off in a mapping is not text
YAML_WORDS = "YAML reads no/yes/on/off/true/false (any case) and ~ as booleans and null: quote it, e.g. 'NO'"


def _check_yaml_booleans(doc: Document, floc: tuple[Any, ...], tf: TargetField, spec: FieldSpec) -> None:
    """A true/false where a text (or number, date) field expects a value is a YAML word unquoted."""
    if tf.kind == "boolean":
        return
    if isinstance(spec.const, bool):
        raise _fail(doc, floc + ("const",), f"{tf.name} is {tf.kind}, but const is {spec.const!r}: {YAML_WORDS}")
    if isinstance(spec.default, bool):
        raise _fail(doc, floc + ("default",), f"{tf.name} is {tf.kind}, but default is {spec.default!r}: {YAML_WORDS}")
    for key, value in (spec.map or {}).items():
        if isinstance(value, bool):
            raise _fail(
                doc, floc + ("map", key), f"{tf.name} is {tf.kind}, but {key!r} maps to {value!r}: {YAML_WORDS}"
            )


def ref_parents(m: Mapping, entity: str) -> set[str]:
    return {
        s.ref
        for f in m.entities[entity]
        for s in f.fields.values()
        if s.ref and s.ref in m.entities and s.ref != entity
    }


def entity_order(m: Mapping) -> list[str]:
    """Entities parents first (the target schema's order breaks ties)."""
    known = list(entities())
    order: list[str] = []
    pending = sorted(m.entities, key=known.index)
    while pending:
        ready = [e for e in pending if ref_parents(m, e) <= set(order)]
        if not ready:
            raise MappingError(f"{m.path}: references form a cycle among {', '.join(pending)}")
        order.append(ready[0])
        pending.remove(ready[0])
    return order
