"""The registry tables of the docs: which page shows which registry (``crmkit.docgen`` renders them).

``python -m crmkit.cli.docgen`` lists the pages that differ from their registries (exit 1 if
any); ``--write`` rewrites them.  It lives in the CLI layer because it imports every feature.
"""

from __future__ import annotations

import sys
from pathlib import Path

from crmkit import docgen

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def pages(docs: Path = DOCS) -> dict[Path, dict[str, str]]:
    """Page → {marker name: its table}, from the registries as they are."""
    from crmkit.dedupe.compare import METHODS
    from crmkit.dedupe.prepare import NORMALISERS
    from crmkit.dedupe.survive import SURVIVORSHIP
    from crmkit.loadtest.personas import PERSONAS
    from crmkit.migrate.sources import SOURCES
    from crmkit.migrate.transforms import TRANSFORMS
    from crmkit.rollout.gate_kinds import GATES
    from crmkit.validate.checks import CHECKS

    return {
        docs / "mapping-reference.md": {
            "sources": docgen.table(SOURCES, "kind"),
            "transforms": docgen.table(TRANSFORMS, "transform"),
        },
        docs / "dedupe-reference.md": {
            "normalisers": docgen.table(NORMALISERS, "normaliser"),
            "methods": docgen.table(METHODS, "method"),
            "survivorship": docgen.table(SURVIVORSHIP, "rule"),
        },
        # a project's own checks (modules under a rules file's imports:) register here too
        docs / "validation-reference.md": {
            "checks": docgen.table(
                CHECKS, "custom check", keep=lambda n: CHECKS.get(n).fn.__module__.startswith("crmkit.")
            )
        },
        docs / "rollout-reference.md": {"gates": docgen.table(GATES, "gate")},
        docs / "loadtest-reference.md": {"personas": docgen.table(PERSONAS, "persona")},
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--write"]):
        print("usage: python -m crmkit.cli.docgen [--write]", file=sys.stderr)
        return 2
    if args == ["--write"]:
        for path in docgen.write(pages()):
            print(f"rewrote {path.relative_to(ROOT)}")
        return 0
    stale = docgen.stale(pages())
    for path in stale:
        print(f"{path.relative_to(ROOT)} differs from its registries: run python -m crmkit.cli.docgen --write")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
