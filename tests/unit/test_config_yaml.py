"""Hostile YAML: aliases that expand without bound, duplicate keys, deep nesting — one line each."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from crmkit.config import MAX_EXPANDED_NODES, read_yaml
from crmkit.errors import ConfigError

LAUGHS = """version: 1
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "text",
    [
        LAUGHS,
        LAUGHS.replace(
            'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]', "a: &a {k: lol, j: lol}"
        ),
    ],
    ids=["sequences", "mappings"],
)
def test_aliases_are_bounded(tmp_path: Path, text: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(
        ConfigError, match=f"x.yaml:1: invalid YAML: its aliases expand to more than {MAX_EXPANDED_NODES:,}"
    ):
        read_yaml(_file(tmp_path, text))
    assert time.perf_counter() - t0 < 5


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    doc = read_yaml(_file(tmp_path, "m: &m {a: 1, b: 2}\nuses: [" + ", ".join(["*m"] * 50) + "]\n"))
    assert doc.data["uses"][49] == {"a": 1, "b": 2}


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="x.yaml:.*(refers to itself|invalid YAML)"):
        read_yaml(_file(tmp_path, "a: &a [1, *a]\n"))


@pytest.mark.parametrize(
    ("text", "line", "first"),
    [
        ("version: 1\nname: a\nentities: {}\nname: b\n", 4, 2),
        ("version: 1\nsources:\n  crm: {kind: csv, path: a.csv}\n  x: {kind: csv, path: b.csv, path: c.csv}\n", 4, 4),
        ("a:\n  - {k: 1}\n  - k: 2\n    j: 3\n    k: 4\n", 5, 3),
    ],
    ids=["top-level", "flow-mapping", "in-a-list"],
)
def test_a_duplicate_key_is_an_error_naming_both_lines(tmp_path: Path, text: str, line: int, first: int) -> None:
    with pytest.raises(ConfigError) as err:
        read_yaml(_file(tmp_path, text))
    assert f"x.yaml:{line}: invalid YAML: duplicate key" in str(err.value)
    assert f"first on line {first}" in str(err.value)


def test_deep_nesting_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        read_yaml(_file(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n"))
