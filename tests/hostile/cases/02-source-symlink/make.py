"""Built at run time: a csv source that is a symlink out of the project folder (the issue's example)."""

from pathlib import Path


def make(project: Path, outside: Path) -> None:
    (project / "link.csv").symlink_to(outside / "secret.csv")
