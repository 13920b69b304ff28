"""Size limits that keep the library readable: no module over 500 lines, no function over 80.

Alembic revision scripts are generated DDL, not library code, and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_layers import ROOT, modules

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _library() -> list[Path]:
    return [p for _, p in modules() if "alembic" not in p.parts]


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n for p in _library() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these modules (lines): {long}"


def test_no_function_is_over_80_lines() -> None:
    long = {}
    for path in _library():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = n
    assert not long, f"split these functions (lines): {long}"
