"""Docs tables generated from the registries: one Markdown table (name | summary) per registry.

A page marks where a registry's table goes::

    <!-- registry:transforms -->
    | name | summary |
    ...
    <!-- /registry -->

This module is kernel: it knows :class:`~crmkit.registry.Registry` and Markdown, not which
features register what.  The catalogue of pages and registries is ``crmkit.cli.docgen``
(``python -m crmkit.cli.docgen --write`` rewrites the pages); ``tests/unit/test_docs_registries.py``
fails when a page differs from its registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from crmkit.registry import Registry

END = "<!-- /registry -->"


def table(registry: Registry[Any], heading: str = "name", keep: Callable[[str], bool] | None = None) -> str:
    """The Markdown table of a registry's ``rows()``, sorted by name (only the names ``keep`` accepts)."""
    lines = [f"| {heading} | summary |", "|---|---|"]
    for name, summary in registry.rows():
        if keep is not None and not keep(name):
            continue
        lines.append(f"| `{name}` | {summary.replace('|', chr(92) + '|')} |")
    return "\n".join(lines)


def render(text: str, tables: Mapping[str, str]) -> str:
    """``text`` with the block between each ``<!-- registry:NAME -->`` and :data:`END` replaced by ``tables[NAME]``.

    ValueError when a page lacks the marker of a table it should carry, or is not closed.
    """
    for name, body in tables.items():
        start = f"<!-- registry:{name} -->"
        pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(END), re.S)
        found = pattern.search(text)
        if found is None:
            raise ValueError(f"no {start} ... {END} block: add the two markers where the table goes")
        text = f"{text[: found.start()]}{start}\n{body}\n{END}{text[found.end() :]}"
    return text


def stale(pages: Mapping[Path, Mapping[str, str]]) -> list[Path]:
    """The pages whose tables differ from what :func:`render` makes of them."""
    return [path for path, tables in pages.items() if render(_read(path), tables) != _read(path)]


def write(pages: Mapping[Path, Mapping[str, str]]) -> list[Path]:
    """Rewrite the stale pages; returns them."""
    changed = stale(pages)
    for path in changed:
        path.write_text(render(_read(path), pages[path]), encoding="utf-8")
    return changed


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
