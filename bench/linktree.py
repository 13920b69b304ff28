#!/usr/bin/env python3
"""A folder in which ``crmkit`` is laid out as it installs: ``crmkit/migrate -> ../migrate``, ...

setuptools maps the top-level feature folders to ``crmkit.*`` (pyproject's package-dir), which
the import system of an editable install follows but tools that find modules by their folders
do not: mypy (``make check``) and a second checkout on ``PYTHONPATH`` (``bench/ab_migrate.py``).
Both use this tree of links instead: ``python bench/linktree.py CHECKOUT OUT`` makes
``OUT/crmkit`` for CHECKOUT and prints OUT.  A checkout of the old layout (no
``migrate/__init__.py``) is its own tree.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path


def link_tree(checkout: Path, out: Path) -> Path:
    checkout = checkout.resolve()
    pyproject = tomllib.loads((checkout / "pyproject.toml").read_text())
    mapped = pyproject.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    if not mapped:
        return checkout
    if out.exists():
        shutil.rmtree(out)
    pkg = out / "crmkit"
    pkg.mkdir(parents=True)
    for entry in (checkout / "crmkit").iterdir():
        (pkg / entry.name).symlink_to(entry)
    for name, folder in mapped.items():
        if name.count(".") == 1:  # crmkit.migrate -> migrate/
            (pkg / name.split(".")[1]).symlink_to(checkout / folder)
    return out


if __name__ == "__main__":
    print(link_tree(Path(sys.argv[1]), Path(sys.argv[2])))
