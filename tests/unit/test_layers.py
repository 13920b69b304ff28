"""The import contract: layers point down only.

Each module of the library belongs to the layer of the longest prefix below that names it.
A module may import its own package and anything in a lower layer; an import of a higher
layer, or of a sibling of its own layer (``validate`` and ``dedupe`` know nothing of each
other), breaks the contract.  Imports inside functions count: a lazy import is still an
arrow.  ``make check`` runs this file; ``test_the_contract_catches_an_upward_import`` proves
that it can fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: top to bottom.  Names in a set are siblings that must not import each other; names in a
#: tuple are one layer whose parts may.
LAYERS: tuple[tuple[str, ...] | frozenset[str], ...] = (
    ("crmkit.cli", "crmkit.__main__"),
    ("crmkit.rollout",),
    frozenset({"crmkit.loadtest", "crmkit.training"}),
    ("crmkit.api",),
    ("crmkit.migrate",),
    frozenset({"crmkit.validate", "crmkit.dedupe"}),
    frozenset({"crmkit.migrate.sources", "crmkit.migrate.transforms"}),
    # the kernel
    (
        "crmkit.errors",
        "crmkit.config",
        "crmkit.settings",
        "crmkit.registry",
        "crmkit.db",
        "crmkit.schema",
        "crmkit.report",
        "crmkit.hooks",
        "crmkit.csvout",
        "crmkit.docgen",
        "crmkit",
    ),
)

#: repository folder of each installed package (pyproject's package-dir)
FOLDERS = {
    "crmkit": "crmkit",
    "crmkit.api": "api",
    "crmkit.dedupe": "dedupe",
    "crmkit.loadtest": "loadtest",
    "crmkit.migrate": "migrate",
    "crmkit.rollout": "rollout",
    "crmkit.training": "training",
    "crmkit.validate": "validate",
}


def modules(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    for package, folder in FOLDERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "crmkit" and parts and f"crmkit.{parts[0]}" in FOLDERS:
                continue
            yield name, path


def imports(path: Path, module: str) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[: len(up) - node.level + 1]
                base = ".".join([*up, base]) if base else ".".join(up)
            yield node.lineno, base
            for alias in node.names:  # `from crmkit import migrate` imports crmkit.migrate
                yield node.lineno, f"{base}.{alias.name}"


def layer_of(module: str) -> tuple[int, str] | None:
    """(layer index, the prefix that placed it), by the longest matching prefix."""
    best: tuple[int, str] | None = None
    for i, names in enumerate(LAYERS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (i, prefix)
    return best


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for module, path in modules(root):
        here = layer_of(module)
        assert here is not None, f"{module} is in no layer: add it to LAYERS"
        for line, target in imports(path, module):
            top = target.split(".")[0]
            if top in {f.split(".")[-1] for f in FOLDERS} - {"crmkit"}:
                found.append(f"{path.relative_to(root)}:{line}: imports {target!r}: import it as crmkit.{target}")
                continue
            if not target.startswith("crmkit."):
                continue
            there = layer_of(target)
            if there is None or there[1] == here[1] or there[1] == "crmkit":
                continue
            siblings = there[0] == here[0] and isinstance(LAYERS[here[0]], frozenset)
            if there[0] < here[0] or siblings:
                found.append(
                    f"{path.relative_to(root)}:{line}: {here[1]} imports {target} ({there[1]} is not below it)"
                )
    return found


#: arrows that point up and are being taken out (empty: keep it so; the list may only shrink)
KNOWN: set[str] = set()


def test_layers_point_down_only() -> None:
    found = violations()
    new = [v for v in found if _key(v) not in KNOWN]
    assert not new, "the import contract is broken:\n" + "\n".join(new)


def test_every_known_exception_is_still_real() -> None:
    keys = {_key(v) for v in violations()}
    assert KNOWN <= keys, f"remove from KNOWN, fixed already: {sorted(KNOWN - keys)}"


def _key(violation: str) -> str:
    path, _, rest = violation.partition(":")
    return f"{path} {rest.partition(': ')[2]}"


def test_the_contract_catches_an_upward_import(tmp_path: Path) -> None:
    """A kernel module that imports a feature breaks the contract (the test can fail)."""
    for folder in FOLDERS.values():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "crmkit" / "errors.py").write_text("def f():\n    from crmkit.migrate import run\n")
    (tmp_path / "validate" / "x.py").write_text("from crmkit.dedupe import rules\n")
    (tmp_path / "dedupe" / "y.py").write_text("import migrate.run\n")
    found = violations(tmp_path)
    assert any("crmkit/errors.py:2: crmkit.errors imports crmkit.migrate" in v for v in found), found
    assert any("validate/x.py:1: crmkit.validate imports crmkit.dedupe" in v for v in found), found
    assert any("dedupe/y.py:1: imports 'migrate.run'" in v for v in found), found


@pytest.mark.parametrize("module", ["crmkit.migrate.sources.csv", "crmkit.db.sqlite", "crmkit.validate.rules"])
def test_every_module_has_a_layer(module: str) -> None:
    assert layer_of(module) is not None
