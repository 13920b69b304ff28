"""Matching rules: the YAML a consultant reads and writes (docs/dedupe-reference.md).

:func:`load_rules` is the only way in: safe YAML through :mod:`crmkit.config`, typed by the
models below, then checked for meaning (every name a compare, a blocking key or a decision
uses must be a declared field or compare).  Mistakes are ``file:line: where: what``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from crmkit.config import Document, Strict, load_model
from crmkit.errors import ConfigError
from crmkit.paths import confine


class DedupeError(ConfigError):
    """A rules file or a decisions file is invalid, or an input does not fit the rules."""


# --- fields: values prepared once, used by blocking and comparisons ----------------------


class NormStep(Strict):
    """One normaliser with its arguments (``lower``, ``{phone: {region: CN}}``)."""

    name: str
    args: Any = None


def _parse_norm(v: Any) -> list[NormStep]:
    from crmkit.dedupe import prepare

    items = v if isinstance(v, list) else [v]
    out = []
    for item in items:
        if isinstance(item, str):
            name, args = item, None
        elif isinstance(item, dict) and len(item) == 1:
            name, args = next(iter(item.items()))
        else:
            raise ValueError("a normaliser is a name (lower) or one key with its arguments ({phone: {region: CN}})")
        prepare.build(str(name), args)  # raises ValueError naming the problem
        out.append(NormStep(name=str(name), args=args))
    return out


class FieldSpec(Strict):
    """A prepared field: one input column (or several joined) and its normalisers."""

    column: str | None = None
    columns: list[str] | None = None
    sep: str = " "
    normalise: list[NormStep] = []

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"column": v} if isinstance(v, str) else v

    @field_validator("normalise", mode="before")
    @classmethod
    def _steps(cls, v: Any) -> list[NormStep]:
        return _parse_norm(v) if v is not None else []

    @model_validator(mode="after")
    def _one_input(self) -> FieldSpec:
        if (self.column is None) == (self.columns is None):
            raise ValueError("give exactly one of column or columns")
        return self

    @property
    def inputs(self) -> list[str]:
        return [self.column] if self.column else list(self.columns or [])


# --- blocking -----------------------------------------------------------------------------

BLOCK_FUNCS = ("prefix", "soundex", "metaphone", "sorted_tokens", "first_token", "last_token")


class KeyPart(Strict):
    """One part of a blocking key: a field, optionally through a function."""

    field: str
    func: Literal[
        "value", "prefix", "soundex", "metaphone", "sorted_tokens", "first_token", "last_token", "either_order"
    ] = "value"
    length: int | None = Field(None, ge=1)
    other: str | None = None  # either_order: the second field

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, v: Any) -> Any:
        # "email" | {soundex: last_name} | {prefix: [last_name, 3]} | {prefix: {field: x, length: 3}}
        if isinstance(v, str):
            return {"field": v}
        if isinstance(v, dict) and len(v) == 1 and next(iter(v)) == "either_order":
            arg = v["either_order"]
            if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
                raise ValueError("either_order takes two fields: {either_order: [first_name, last_name]}")
            return {"field": arg[0], "other": arg[1], "func": "either_order"}
        if isinstance(v, dict) and len(v) == 1 and next(iter(v)) in BLOCK_FUNCS:
            func, arg = next(iter(v.items()))
            if isinstance(arg, str):
                return {"field": arg, "func": func}
            if isinstance(arg, list) and len(arg) == 2:
                return {"field": arg[0], "func": func, "length": arg[1]}
            if isinstance(arg, dict):
                return {"func": func, **arg}
            raise ValueError(f"{func} takes a field name, or [field, length]")
        return v

    @model_validator(mode="after")
    def _length(self) -> KeyPart:
        if self.func == "prefix" and self.length is None:
            raise ValueError("prefix needs a length: {prefix: [field, 3]}")
        return self


class BlockPass(Strict):
    """One blocking pass: records agreeing on every key part become candidate pairs."""

    keys: list[KeyPart] | None = None
    sorted_neighbourhood: list[KeyPart] | None = None
    window: int = Field(5, ge=2)
    max_block_size: int | None = Field(None, ge=2)

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, v: Any) -> Any:
        if isinstance(v, (str, list)):
            return {"keys": v if isinstance(v, list) else [v]}
        if isinstance(v, dict):
            v = dict(v)
            for k in ("keys", "sorted_neighbourhood"):
                if isinstance(v.get(k), (str, dict)):
                    v[k] = [v[k]]
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> BlockPass:
        if (self.keys is None) == (self.sorted_neighbourhood is None):
            raise ValueError("a blocking pass has keys: [...] or sorted_neighbourhood: [...], not both")
        return self

    @property
    def parts(self) -> list[KeyPart]:
        return list(self.keys or self.sorted_neighbourhood or [])


# --- comparisons --------------------------------------------------------------------------


class Compare(Strict):
    """One comparison of a field between the two records of a pair."""

    name: str = ""
    field: str
    method: str  # a name in crmkit.dedupe.compare.METHODS
    #: similarity thresholds, highest first: level k is similarity >= levels[k]; below the last is "disagree"
    levels: list[float] = []
    #: the pair also counts as agreeing when this field of one side matches ``field`` of the other (swapped names)
    swap_with: str | None = None
    tolerance: float | None = Field(None, ge=0)  # number: absolute; date: days
    relative: bool = False  # number: tolerance as a share of the larger value
    pinyin: bool = False  # chinese_name: compare Chinese characters and Latin spellings through pinyin
    m: list[float] | None = None  # Fellegi-Sunter: P(level | match), one per level + disagree
    u: list[float] | None = None  # P(level | non-match)

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        from crmkit.dedupe.compare import METHODS

        METHODS.get(v)  # unknown similarity method 'v' (known: ...)
        return v

    @model_validator(mode="after")
    def _fill(self) -> Compare:
        from crmkit.dedupe.compare import METHODS

        name = self.name or self.field
        levels = self.levels or list(METHODS.get(self.method).levels)
        if any(a <= b for a, b in zip(levels, levels[1:])) or not all(0 < x <= 1 for x in levels):
            raise ValueError("levels are similarities in (0, 1], highest first, e.g. [1.0, 0.92, 0.85]")
        for what in ("m", "u"):
            probs = getattr(self, what)
            if probs is not None:
                if len(probs) != len(levels) + 1:
                    raise ValueError(
                        f"{what} needs {len(levels) + 1} probabilities: one per level and one for disagree"
                    )
                if not all(0 < p < 1 for p in probs):
                    raise ValueError(f"{what}: each probability must lie strictly between 0 and 1")
        if (self.m is None) != (self.u is None):
            raise ValueError("give both m and u, or neither (then they are estimated from the data)")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "levels", list(levels))
        return self

    @property
    def n_levels(self) -> int:
        """Agreement levels plus one for disagreement (level index 0 = strongest agreement)."""
        return len(self.levels) + 1


# --- decisions --------------------------------------------------------------------------------


class Condition(Strict):
    """``{email: 1.0}``: the named compare's similarity is at least the value."""

    compare: str
    at_least: float

    @model_validator(mode="before")
    @classmethod
    def _form(cls, v: Any) -> Any:
        if isinstance(v, dict) and len(v) == 1 and not {"compare", "at_least"} & set(v):
            name, value = next(iter(v.items()))
            return {"compare": name, "at_least": value}
        return v


class Logic(Strict):
    """any_of / all_of over conditions and nested logic."""

    any_of: list[Logic | Condition] | None = None
    all_of: list[Logic | Condition] | None = None

    @model_validator(mode="after")
    def _one(self) -> Logic:
        if (self.any_of is None) == (self.all_of is None):
            raise ValueError("write any_of: [...] or all_of: [...]")
        return self

    @property
    def items(self) -> list[Logic | Condition]:
        return list(self.any_of or self.all_of or [])


class Decision(Strict):
    """How a compared pair becomes a match, a pair to review, or a non-match."""

    method: Literal["score", "rules"] = "score"
    #: score: match probability thresholds (Fellegi-Sunter weights, m/u estimated by EM when not given)
    match: float | Logic = 0.95
    review: float | Logic | None = None  # score: 0.5 unless given
    prior: float | None = Field(None, gt=0, lt=1)  # share of candidate pairs that match; EM estimates it
    em_iterations: int = Field(50, ge=0)
    u_sample: int = Field(50_000, ge=100)  # random pairs used to estimate u

    @model_validator(mode="after")
    def _consistent(self) -> Decision:
        if self.method == "score" and "review" not in self.model_fields_set:
            object.__setattr__(self, "review", 0.5)
        if self.method == "score":
            if not isinstance(self.match, float) or not (self.review is None or isinstance(self.review, float)):
                raise ValueError("method: score takes probabilities: match: 0.95, review: 0.5")
            if not 0 < self.match <= 1 or (self.review is not None and not 0 < self.review < self.match):
                raise ValueError("probabilities must satisfy 0 < review < match <= 1")
        elif isinstance(self.match, float) or isinstance(self.review, float):
            raise ValueError("method: rules takes any_of / all_of conditions for match (and review)")
        return self


class Cluster(Strict):
    """Guards against chaining weak links into one big cluster."""

    max_size: int = Field(50, ge=2)
    #: a compared pair this unlikely to match may not end up in one cluster (through others)
    cannot_link_below: float = Field(0.01, ge=0, lt=1)


# --- survivorship ---------------------------------------------------------------------------


class Survive(Strict):
    """Which record's value a golden record keeps for a field."""

    rule: str
    by: str | None = None  # most_recent: the column with the record's date
    args: Any = None  # a custom rule's arguments

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"rule": v} if isinstance(v, str) else v

    @field_validator("rule")
    @classmethod
    def _known(cls, v: str) -> str:
        from crmkit.dedupe.survive import SURVIVORSHIP

        SURVIVORSHIP.get(v)  # unknown survivorship rule 'v' (known: ...)
        return v

    @model_validator(mode="after")
    def _by(self) -> Survive:
        if self.rule == "most_recent" and not self.by:
            raise ValueError("most_recent needs by: COLUMN (the record's last-changed date)")
        return self


class Survivorship(Strict):
    sources: list[str] = []  # source priority, best first
    default: Survive = Field(default_factory=lambda: Survive.model_validate("most_complete"))
    fields: dict[str, Survive] = {}
    #: which record anchors the golden record (keeps its legacy key and target row)
    survivor: Survive = Field(default_factory=lambda: Survive.model_validate("most_complete"))


class SourceSpec(Strict):
    """How one input maps onto the rules' columns, when its columns are named differently."""

    key: list[str] | None = None
    columns: dict[str, str] = {}  # rules column -> this source's column
    #: how to read the file (as in mappings)
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | int | None = None
    header_row: int | None = Field(None, ge=1)

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class Rules(Strict):
    """A whole rules file."""

    version: Literal[1]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    key: list[str] = []  # columns identifying a record within its source
    source_column: str | None = None  # a column naming each record's source (else: the input's name)
    sources: dict[str, SourceSpec] = {}
    fields: dict[str, FieldSpec]
    blocking: list[BlockPass] = Field(min_length=1)
    max_block_size: int = Field(1000, ge=2)
    compare: list[Compare] = Field(min_length=1)
    decision: Decision = Field(default_factory=lambda: Decision.model_validate({}))
    cluster: Cluster = Field(default_factory=lambda: Cluster.model_validate({}))
    survivorship: Survivorship = Field(default_factory=lambda: Survivorship.model_validate({}))
    decisions: list[Path] = []  # decided review files honoured by every run

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("decisions", mode="before")
    @classmethod
    def _paths(cls, v: Any, info: ValidationInfo) -> Any:
        base = (info.context or {}).get("base")
        items = [v] if isinstance(v, str) else (v or [])
        return [confine(p, base) for p in items]

    _path: Path | None = PrivateAttr(None)

    @property
    def path(self) -> Path | None:
        return self._path

    def compare_named(self, name: str) -> Compare:
        return next(c for c in self.compare if c.name == name)


def load_rules(path: str | Path) -> Rules:
    """Read and check a rules file; errors name ``file:line``."""
    try:
        rules, doc = load_model(Path(path), Rules)
    except ConfigError as exc:
        raise DedupeError(str(exc)) from None
    rules._path = Path(path)
    _check_meaning(rules, doc)
    return rules


def rules_from_dict(data: dict[str, Any], base: Path | None = None) -> Rules:
    """Rules from an already parsed document (a mapping's inline rules, tests)."""
    rules = Rules.model_validate(data, context={"base": base})
    _check_meaning(rules, None)
    return rules


def _fail(doc: Document | None, loc: tuple[Any, ...], msg: str) -> DedupeError:
    where = ".".join(str(p) for p in loc)
    if doc is None:
        return DedupeError(f"rules: {where}: {msg}")
    return DedupeError(f"{doc.path}:{doc.line_of(loc)}: {where}: {msg}")


def _check_meaning(r: Rules, doc: Document | None) -> None:
    fields = set(r.fields)
    known = ", ".join(r.fields)
    for i, bp in enumerate(r.blocking):
        for part in bp.parts:
            for f in (part.field, part.other):
                if f is not None and f not in fields:
                    raise _fail(doc, ("blocking", i), f"unknown field '{f}' (fields: {known})")
    names: set[str] = set()
    for i, c in enumerate(r.compare):
        for f in (c.field, c.swap_with):
            if f is not None and f not in fields:
                raise _fail(doc, ("compare", i), f"unknown field '{f}' (fields: {known})")
        if c.name in names:
            raise _fail(doc, ("compare", i), f"two compares are named '{c.name}': give one a name:")
        names.add(c.name)
    d = r.decision
    for what in ("match", "review"):
        logic = getattr(d, what)
        if isinstance(logic, Logic):
            for cond in _conditions(logic):
                if cond.compare not in names:
                    raise _fail(
                        doc,
                        ("decision", what),
                        f"unknown compare '{cond.compare}' (compares: {', '.join(sorted(names))})",
                    )


def _conditions(logic: Logic) -> list[Condition]:
    out: list[Condition] = []
    for item in logic.items:
        out += _conditions(item) if isinstance(item, Logic) else [item]
    return out
