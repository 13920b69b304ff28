"""Run hooks: the FaultPoint literal names exactly the points the migration code passes, and a
fault spec parses into hooks (or says what is wrong with it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from crmkit.errors import ConfigError
from crmkit.migrate.safety.hooks import POINTS, FaultHooks, RunHooks, parse_faults

ROOT = Path(__file__).resolve().parents[2]


def passed_points() -> dict[str, str]:
    """Every point name the migrate package passes: ``x.point("NAME", ...)``, ``x.commit("NAME")``
    (a Writer's commit passes its point) and ``partial(x.point, "NAME", ...)`` -> where."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "migrate").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func, args = node.func, node.args
            if isinstance(func, ast.Name) and func.id == "partial" and len(args) > 1:
                func, args = args[0], args[1:]
            if isinstance(func, ast.Attribute) and func.attr in ("point", "commit"):
                first = args[0] if args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found[first.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return found


def test_the_fault_point_literal_lists_every_point_the_code_passes() -> None:
    passed = passed_points()
    assert "insert.after_commit" in passed and "run.close" in passed  # the scan sees both kinds of call
    missing = {name: where for name, where in passed.items() if name not in POINTS}
    assert not missing, f"add these to FaultPoint in migrate/safety/hooks.py: {missing}"
    unused = set(POINTS) - set(passed)
    assert not unused, f"no code passes these points: remove them from FaultPoint: {sorted(unused)}"


def test_a_spec_parses_into_fault_hooks_and_an_empty_one_into_the_no_op() -> None:
    assert type(parse_faults("")) is RunHooks
    hooks = parse_faults("sleep=0@insert.after_rows#2, kill@run.opened")
    assert isinstance(hooks, FaultHooks)
    assert [(f.action, f.point, f.n) for f in hooks.faults] == [
        ("sleep=0", "insert.after_rows", 2),
        ("kill", "run.opened", 1),
    ]
    hooks.point("insert.after_rows")
    hooks.point("insert.after_rows")  # the second pass sleeps 0 s; the kill's point is never passed
    assert hooks.seen["insert.after_rows"] == 2


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("kill@nowhere", "unknown point 'nowhere'"),
        ("explode@run.opened", "unknown action 'explode'"),
        ("kill@run.opened#x", "must be a whole number"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_faults(spec)
