"""crmkit.registry: one shape for every extension point."""

from __future__ import annotations

import pytest

from crmkit.registry import Registry, UnknownName


def test_register_get_and_rows() -> None:
    reg: Registry[int] = Registry("number")

    @reg.register("two", summary="the even prime", tags=("prime",))
    def two() -> int:
        return 2

    reg.add("one", 1, summary="the unit")
    assert reg.get("two") is two and "one" in reg and "three" not in reg
    assert reg.names() == ["one", "two"] and reg.names("prime") == ["two"] and list(reg) == ["one", "two"]
    assert reg.rows() == [("one", "the unit"), ("two", "the even prime")]


def test_an_unknown_name_lists_the_known_ones() -> None:
    reg: Registry[int] = Registry("number")
    reg.add("one", 1)
    with pytest.raises(UnknownName, match=r"^unknown number 'uno' \(known: one\)$"):
        reg.get("uno")


def test_a_name_registers_once_and_can_be_removed() -> None:
    reg: Registry[int] = Registry("number")
    reg.add("one", 1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("one", 1)
    reg.remove("one")
    assert len(reg) == 0
    with pytest.raises(UnknownName):
        reg.remove("one")


def test_the_summary_defaults_to_the_first_docstring_line() -> None:
    reg: Registry[object] = Registry("thing")

    def documented() -> None:
        """First line.

        More.
        """

    reg.add("d", documented)
    assert reg.rows() == [("d", "First line.")]
