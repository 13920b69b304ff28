"""Loading YAML configuration: safe_load with line numbers, ``${VAR}`` secrets, typed models.

Every crmkit YAML file (mappings, rules, profiles, plans) goes through :func:`load_model`:
the file is parsed with a SafeLoader that remembers the line of every key, environment
variables are substituted where a value says ``${NAME}``, and the result is validated by a
pydantic model.  A mistake becomes ``file:line: where: what is wrong`` (a ConfigError).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from crmkit.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Strict(BaseModel):
    """Base of every configuration model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records the line of every mapping key and sequence item."""


#: values a document may hold once its aliases are expanded (a "billion laughs" file holds 10**9)
MAX_EXPANDED_NODES = 100_000


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    lines: dict[Any, int] = {}
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in lines:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {lines[key]}): keep one", key_node.start_mark
            )
        lines[key] = key_node.start_mark.line + 1
    mapping = loader.construct_mapping(node, deep=True)
    loader.line_index[id(mapping)] = (node.start_mark.line + 1, lines)
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> list[Any]:
    seq = loader.construct_sequence(node, deep=True)
    loader.line_index[id(seq)] = (node.start_mark.line + 1, [n.start_mark.line + 1 for n in node.value])
    return seq


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class Document:
    """A parsed YAML document that can tell the line of any path in it."""

    def __init__(self, path: Path, data: Any, index: dict[int, Any]):
        self.path, self.data, self._index = path, data, index

    def line_of(self, loc: tuple[Any, ...]) -> int:
        node, line = self.data, 1
        for part in loc:
            entry = self._index.get(id(node))
            if entry is None:
                break
            start, lines = entry
            line = start
            if isinstance(node, dict) and isinstance(part, int) and part not in node:
                continue  # a single item the model wrapped into a list
            if isinstance(node, dict) and part in node:
                line, node = lines[part], node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                line, node = lines[part], node[part]
            else:
                break
        return line


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def read_yaml(path: Path) -> Document:
    """Parse ``path`` safely; a syntax error is a ConfigError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        loader = _LineLoader(text)  # refuses non-printable characters (a NUL byte) at once
    except yaml.reader.ReaderError as exc:
        line = _line_of(text, exc.position)
        raise ConfigError(
            f"{path}:{line}: invalid YAML: control character U+{exc.character:04X} is not allowed"
        ) from None
    loader.line_index = {}  # type: ignore[attr-defined]
    try:
        node = loader.get_single_node()
        _check_expansion(path, node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{line}: invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping of keys at the top level")
    return Document(path, data, loader.line_index)  # type: ignore[attr-defined]


def _check_expansion(path: Path, root: yaml.Node | None) -> None:
    """Refuse a document whose aliases expand past MAX_EXPANDED_NODES values, or refer to themselves."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in busy:
            raise ConfigError(f"{path}:{node.start_mark.line + 1}: invalid YAML: an alias refers to itself")
        busy.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1 + sum(size(child) for child in children)
        busy.discard(key)
        sizes[key] = min(total, MAX_EXPANDED_NODES + 1)
        return sizes[key]

    if root is not None and size(root) > MAX_EXPANDED_NODES:
        raise ConfigError(
            f"{path}:1: invalid YAML: its aliases expand to more than {MAX_EXPANDED_NODES:,} values; "
            "write the values out or use fewer nested aliases"
        )


def _lookup(name: str, what: str) -> str:
    if name not in os.environ:
        raise ConfigError(f"{what}: environment variable {name} is not set (export {name}=...)")
    return os.environ[name]


def expand_env(value: str, what: str) -> str:
    """Substitute ``${VAR}`` from the environment; a missing variable is a ConfigError."""
    return _ENV.sub(lambda m: _lookup(m.group(1), what), value)


def expand_url(url: str, what: str) -> str:
    """``expand_env`` for a database URL: a value placed in the user or password is percent-encoded.

    A password such as ``p@ss:w/rd#1%`` would otherwise end the user part early and put part of
    it in the host name, which messages print.  Values elsewhere (host, database) go in as they are.
    """
    from urllib.parse import quote

    start = url.find("://") + 3 if "://" in url else 0
    slash = url.find("/", start)
    at = url.rfind("@", start, slash if slash != -1 else len(url))
    if at == -1:
        return expand_env(url, what)
    userinfo = _ENV.sub(lambda m: quote(_lookup(m.group(1), what), safe=""), url[start:at])
    return expand_env(url[:start], what) + userinfo + expand_env(url[at:], what)


def secret_from_env(value: str, what: str) -> SecretStr:
    """A secret value: only ever read through ``${VAR}``, kept as a SecretStr."""
    if not _ENV.search(value):
        raise ConfigError(f"{what}: put secrets in the environment and write ${{VAR}} here, not the value itself")
    return SecretStr(expand_env(value, what))


def _describe(err: ErrorDetails) -> str:
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "extra_forbidden":
        return "unknown key"
    if err.get("type") == "missing":
        return "required key is missing"
    return msg.removeprefix("Value error, ")


def _present(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The parts of a pydantic error location that exist in the YAML (no union tags or list wrappers)."""
    out: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif i == len(loc) - 1 and isinstance(node, dict) and part != "[key]":
            out.append(part)  # a missing or unknown key: name it
    return tuple(out)


def load_model(path: str | Path, model: type[M], context: dict[str, Any] | None = None) -> tuple[M, Document]:
    """Read ``path`` and validate it as ``model``; errors name ``file:line``."""
    doc = read_yaml(Path(path))
    try:
        obj = model.model_validate(doc.data, context={"base": Path(path).parent, **(context or {})})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _present(doc.data, tuple(err["loc"]))
        where = ".".join(str(p) for p in loc) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{path}:{doc.line_of(loc)}: {where}: {_describe(err)}{more}") from None
    return obj, doc
