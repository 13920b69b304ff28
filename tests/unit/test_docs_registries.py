"""The docs' registry tables are generated: a page that differs from its registry fails here.

Fix a failure with ``python -m crmkit.cli.docgen --write`` (after adding or renaming an entry,
or changing its summary).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crmkit import docgen
from crmkit.cli.docgen import ROOT, pages
from crmkit.registry import Registry


@pytest.mark.parametrize("page", sorted(pages()), ids=lambda p: p.name)
def test_every_registry_table_is_current(page: Path) -> None:
    current = page.read_text(encoding="utf-8")
    assert docgen.render(current, pages()[page]) == current, (
        f"{page.relative_to(ROOT)} differs from its registries: run python -m crmkit.cli.docgen --write"
    )


def test_a_page_that_drifts_is_found_and_rewritten(tmp_path: Path) -> None:
    reg: Registry[object] = Registry("widget")
    reg.add("b", object(), summary="the second | with a pipe")
    reg.add("a", object(), summary="the first")
    page = tmp_path / "page.md"
    page.write_text("# Widgets\n\n<!-- registry:widgets -->\n| old |\n<!-- /registry -->\n\nafter\n", encoding="utf-8")
    catalogue = {page: {"widgets": docgen.table(reg, "widget")}}
    assert docgen.stale(catalogue) == [page]
    assert docgen.write(catalogue) == [page]
    assert page.read_text(encoding="utf-8") == (
        "# Widgets\n\n<!-- registry:widgets -->\n| widget | summary |\n|---|---|\n"
        "| `a` | the first |\n| `b` | the second \\| with a pipe |\n<!-- /registry -->\n\nafter\n"
    )
    assert docgen.stale(catalogue) == []


def test_a_page_without_its_markers_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"no <!-- registry:widgets --> \.\.\. <!-- /registry --> block"):
        docgen.render("# Widgets\n", {"widgets": "| x |"})


def test_a_projects_own_check_stays_out_of_the_docs() -> None:
    from crmkit.validate.checks import CHECKS, register_check

    @register_check("acme_only", "is not acme")
    def acme(field: str, args: object) -> object:
        """Acme's own."""

    acme.__module__ = "acme_checks"
    try:
        assert "acme_only" not in pages()[ROOT / "docs" / "validation-reference.md"]["checks"]
    finally:
        CHECKS.remove("acme_only")
