"""Environment variables are read once, at the edge: through crmkit.settings, never in library code.

``os.environ`` may appear in the library packages only where it is read by design
(``crmkit/settings.py``; ``crmkit/config.py`` for ``${VAR}`` in files) and where the
environment of a child process is built from this one's (:data:`CHILD_ENVIRONMENTS`).
KNOWN lists other readers (none left; keep it so).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("crmkit", "migrate", "validate", "dedupe", "loadtest", "api", "training", "rollout")
BY_DESIGN = {"crmkit/settings.py", "crmkit/config.py"}
#: files that build a child process's environment from this one's (and read nothing else from it)
CHILD_ENVIRONMENTS = {"api/server.py", "loadtest/runner.py"}
KNOWN: set[str] = set()


def readers() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            code = "\n".join(line.split("#")[0] for line in path.read_text(encoding="utf-8").splitlines())
            if "os.environ" in code.replace("``os.environ``", ""):
                found.add(path.relative_to(ROOT).as_posix())
    return found


def test_only_the_settings_edge_reads_the_environment() -> None:
    new = readers() - BY_DESIGN - CHILD_ENVIRONMENTS - KNOWN
    assert not new, (
        f"read these through crmkit.settings.Settings, passed down from the CLI or app factory: {sorted(new)}"
    )


def test_every_known_reader_is_still_real() -> None:
    fixed = KNOWN - readers()
    assert not fixed, f"remove from KNOWN in tests/unit/test_settings_edge.py, fixed already: {sorted(fixed)}"


def test_child_environments_only_copy_the_environment() -> None:
    for rel in CHILD_ENVIRONMENTS:
        for line in (ROOT / rel).read_text(encoding="utf-8").splitlines():
            if "os.environ" in line and "``os.environ``" not in line:
                assert "**os.environ" in line or "os.environ.items()" in line, f"{rel}: {line.strip()}"
