"""The rules YAML (``configs/validation.yaml``, or a ``validate:`` section of a mapping).

Typed with pydantic like every crmkit YAML file; see docs/validation-reference.md.
:func:`load_rules` reads a file; :func:`check_meaning` checks what pydantic cannot know
(entity and field names, value types per field) and names the file and line.
"""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from crmkit.config import Document, Strict, load_model
from crmkit.errors import ConfigError
from crmkit.paths import confine, module_allowed
from crmkit.schema.target import TargetEntity, TargetField, entities

Severity = Literal["error", "warning"]
KINDS = ("regex", "range", "allowed", "unique", "not_null", "length", "format", "custom")
FORMATS = ("email", "e164", "iso3166", "iso4217")
METRICS = ("rejected_rows", "warned_rows", "completeness", "rule_failures")
_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"


class Bounds(Strict):
    """``{min: ..., max: ...}``, both inclusive; either may be left out."""

    min: Any = None
    max: Any = None

    @model_validator(mode="after")
    def _one_bound(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


class CheckSpec(Strict):
    """One project check on one field: exactly one kind, with a severity."""

    field: str
    name: str | None = Field(None, pattern=_NAME)
    severity: Severity = "error"
    message: str | None = None
    regex: str | None = None
    range: Bounds | None = None
    allowed: list[Any] | None = None
    unique: Literal[True] | None = None
    not_null: Literal[True] | None = None
    length: Bounds | None = None
    format: Literal["email", "e164", "iso3166", "iso4217"] | None = None
    custom: str | None = None
    args: Any = None

    @model_validator(mode="after")
    def _one_kind(self) -> CheckSpec:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            what = f"not {' and '.join(given)}" if given else "none given"
            raise ValueError(f"give exactly one check kind of {', '.join(KINDS)} ({what})")
        if self.args is not None and self.custom is None:
            raise ValueError("args: only a custom check takes args")
        return self

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, v: str | None) -> str | None:
        if v is not None:
            import polars as pl

            try:
                pl.select(pl.lit("").str.contains(v))
            except Exception as exc:
                raise ValueError(f"invalid regular expression {v!r}: {str(exc).splitlines()[0]}") from None
        return v

    @field_validator("custom")
    @classmethod
    def _custom_known(cls, v: str | None) -> str | None:
        from crmkit.validate.checks import CHECKS

        if v is not None and v not in CHECKS:
            known = ", ".join(CHECKS.names()) or "none"
            raise ValueError(
                f"unknown custom check '{v}' (registered: {known}); register it with "
                f"@validate.register_check('{v}') in a module listed under imports:"
            )
        return v

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def rule_name(self) -> str:
        return self.name or f"{self.field}_{self.custom or self.kind}"


class EntityRules(Strict):
    """Rules of one entity: personal-data columns, built-in severities, project checks."""

    personal_data: list[str] | None = None
    severity: dict[str, Literal["error", "warning", "off"]] = {}
    checks: list[CheckSpec] = []

    @field_validator("severity", mode="before")
    @classmethod
    def _bare_off(cls, v: Any) -> Any:
        """YAML reads a bare ``off`` as false: take it as meant."""
        return {k: ("off" if x is False else x) for k, x in v.items()} if isinstance(v, dict) else v


def _threshold(v: Any) -> str:
    text = str(v).strip()
    try:
        value = float(text[:-1]) if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"'{text}' is neither a count (10) nor a percentage (0.5%)") from None
    if value < 0 or (text.endswith("%") and value > 100):
        raise ValueError(f"'{text}' is out of range")
    return text


class GateSpec(Strict):
    """A threshold the results must meet: ``{metric: rejected_rows, max: 0.5%}``."""

    name: str | None = None
    metric: Literal["rejected_rows", "warned_rows", "completeness", "rule_failures"]
    entity: str | None = None
    field: str | None = None
    rule: str | None = None
    min: str | None = None
    max: str | None = None
    when_inconclusive: Literal["fail", "pass"] = "fail"

    @field_validator("min", "max", mode="before")
    @classmethod
    def _parse(cls, v: Any) -> str | None:
        return None if v is None else _threshold(v)

    @model_validator(mode="after")
    def _consistent(self) -> GateSpec:
        if (self.min is None) == (self.max is None):
            raise ValueError("give exactly one of min or max")
        if self.metric == "completeness":
            if self.field is None or self.min is None or not self.min.endswith("%"):
                raise ValueError("completeness needs a field and a min percentage, e.g. {field: email, min: 90%}")
        elif self.field is not None:
            raise ValueError("field: only the completeness metric takes a field")
        if (self.metric == "rule_failures") != (self.rule is not None):
            raise ValueError("rule: give it with metric rule_failures, and only there")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        what = {"completeness": f"completeness of {self.field}", "rule_failures": f"failures of {self.rule}"}
        scope = f"{self.entity} " if self.entity else ""
        bound = f">= {self.min}" if self.min is not None else f"<= {self.max}"
        return f"{scope}{what.get(self.metric, self.metric.replace('_', ' '))} {bound}"


class ValidationRules(Strict):
    """A rules file, or the ``validate:`` section of a mapping (inline, or a path to a rules file)."""

    version: Literal[1] = 1
    imports: list[str] = []
    entities: dict[str, EntityRules] = {}
    gates: list[GateSpec] = []

    @model_validator(mode="before")
    @classmethod
    def _file_or_imports(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, str):  # validate: path/to/rules.yaml, relative to the file that names it
            path = confine(v, (info.context or {}).get("base"))  # before a byte of it is read
            return load_rules(path).model_dump(by_alias=True, exclude_unset=True)
        if isinstance(v, dict):
            for module in v.get("imports") or []:
                module_allowed(str(module), (info.context or {}).get("base"))
                _import(str(module))
        return v


def _import(module: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as exc:
        raise ValueError(f"imports: cannot import {module} ({type(exc).__name__}: {exc})") from None


def load_rules(path: str | Path) -> ValidationRules:
    """Read a rules file; every mistake is a ConfigError naming ``file:line``."""
    rules, doc = load_model(Path(path), ValidationRules)
    check_meaning(rules, doc)
    return rules


# --- meaning: names and values that depend on the target schema -----------------------


def _fail(doc: Document, loc: tuple[Any, ...], msg: str) -> ConfigError:
    where = ".".join(str(p) for p in loc)
    return ConfigError(f"{doc.path}:{doc.line_of(loc)}: {where}: {msg}")


def check_meaning(rules: ValidationRules, doc: Document, prefix: tuple[Any, ...] = ()) -> None:
    """Entities, fields, rule names and values must exist and fit (``prefix``: where the section sits)."""
    from crmkit.validate.schema import builtin_rule_names

    targets = entities()
    for ename, er in rules.entities.items():
        loc = prefix + ("entities", ename)
        if ename not in targets:
            raise _fail(doc, loc, f"unknown entity (known: {', '.join(targets)})")
        target = targets[ename]
        for i, fname in enumerate(er.personal_data or []):
            if fname not in target.fields:
                raise _fail(doc, loc + ("personal_data", i), _not_a_field(fname, target))
        known = builtin_rule_names(ename)
        for rname in er.severity:
            if rname not in known:
                raise _fail(
                    doc,
                    loc + ("severity", rname),
                    f"no built-in rule '{rname}' for {ename} (built-in: {', '.join(known)})",
                )
        seen: set[str] = set()
        for i, check in enumerate(er.checks):
            _check_check(doc, loc + ("checks", i), target, check, seen)
    for i, gate in enumerate(rules.gates):
        _check_gate(doc, prefix + ("gates", i), gate, rules, targets)


def _not_a_field(name: str, target: TargetEntity) -> str:
    return f"'{name}' is not a field of {target.name} (fields: {', '.join(target.fields)})"


def _check_check(doc: Document, loc: tuple[Any, ...], target: TargetEntity, c: CheckSpec, seen: set[str]) -> None:
    tf = target.fields.get(c.field)
    if tf is None:
        raise _fail(doc, loc + ("field",), _not_a_field(c.field, target))
    if c.rule_name in seen:
        raise _fail(doc, loc, f"two checks of {target.name} are named {c.rule_name}: give one a name:")
    seen.add(c.rule_name)
    kind = c.kind
    if kind in ("regex", "length", "format") and tf.kind != "string":
        raise _fail(doc, loc + (kind,), f"{kind} applies to text, and {c.field} is a {tf.kind}")
    try:
        if kind == "range":
            assert c.range is not None
            for bound in ("min", "max"):
                value = getattr(c.range, bound)
                if value is not None:
                    coerce_value(tf, value, allow_today=True)
        elif kind == "length":
            assert c.length is not None
            for value in (c.length.min, c.length.max):
                if value is not None and (not isinstance(value, int) or value < 0):
                    raise ValueError(f"a length is a whole number of characters, not {value!r}")
        elif kind == "allowed":
            for value in c.allowed or []:
                coerce_value(tf, value)
    except ValueError as exc:
        raise _fail(doc, loc + (kind,), str(exc)) from None


def _check_gate(
    doc: Document, loc: tuple[Any, ...], g: GateSpec, rules: ValidationRules, targets: dict[str, TargetEntity]
) -> None:
    if g.entity is not None and g.entity not in targets:
        raise _fail(doc, loc + ("entity",), f"unknown entity (known: {', '.join(targets)})")
    if g.field is not None:
        scope = [targets[g.entity]] if g.entity else list(targets.values())
        if not any(g.field in t.fields for t in scope):
            where = g.entity or "any entity"
            raise _fail(doc, loc + ("field",), f"'{g.field}' is not a field of {where}")
    if g.rule is not None:
        from crmkit.validate.schema import builtin_rule_names

        scope_names = [g.entity] if g.entity else list(targets)
        names = {n for e in scope_names for n in builtin_rule_names(e)}
        names |= {c.rule_name for e, er in rules.entities.items() if e in scope_names for c in er.checks}
        if g.rule not in names:
            raise _fail(doc, loc + ("rule",), f"no rule named '{g.rule}' (e.g. {', '.join(sorted(names)[:8])})")
    if g.max is not None and not g.max.endswith("%") and not float(g.max).is_integer():
        raise _fail(doc, loc + ("max",), f"a count is a whole number; write {g.max}% for a share")


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def coerce_value(tf: TargetField, value: Any, allow_today: bool = False) -> Any:
    """A YAML value as the field's Python type; ValueError saying what was expected."""
    kind = tf.kind
    if allow_today and kind in ("date", "datetime") and value == "today":
        return "today"
    try:
        if kind == "string":
            return str(value)
        if kind == "integer" and not isinstance(value, bool):
            if float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if kind == "decimal" and not isinstance(value, bool):
            return float(value)
        if kind == "date":
            return (
                value
                if isinstance(value, dt.date) and not isinstance(value, dt.datetime)
                else dt.date.fromisoformat(str(value)[:10])
            )
        if kind == "datetime":
            return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        if kind == "boolean":
            return value if isinstance(value, bool) else _BOOLS[str(value).lower()]
    except (ValueError, TypeError, KeyError):
        pass
    hint = {
        "date": "a date like 2024-01-31" + (" or today" if allow_today else ""),
        "datetime": "a date-time like 2024-01-31 12:00:00" + (" or today" if allow_today else ""),
        "integer": "a whole number",
        "decimal": "a number",
        "boolean": "true or false",
    }
    raise ValueError(f"{value!r} is not {hint.get(kind, kind)}, as {tf.name} needs")
