"""Every transform, given arguments of any shape, either builds a step that runs over text or
refuses with a ValueError (which the mapping reports as file:line): never another exception,
whichever transform a later engineer registers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.conftest import apply_transform, transform_names

SHAPES: list[Any] = [None, 5, -1, 0, 1.5, True, "x", "", "%Y", [], [1], ["a", 2], [[]], {}, {"a": 1}, {"pattern": "("}]
VALUES = ["a", " 1,234 ", "2024-02-30", "是", None, "=1+1", "13800138000"]


@pytest.mark.parametrize("name", transform_names())
def test_any_argument_shape_builds_a_working_step_or_is_refused_in_words(name: str) -> None:
    for args in SHAPES:
        try:
            out, failed = apply_transform(name, args, VALUES)
        except ValueError as exc:
            assert str(exc) and "\n" not in str(exc), (name, args, exc)
            continue
        assert len(out) == len(VALUES) == len(failed), (name, args)
