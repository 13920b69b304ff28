"""Built at run time: a csv source inside a project folder that is a symlink to a folder outside."""

from pathlib import Path


def make(project: Path, outside: Path) -> None:
    (project / "data").symlink_to(outside, target_is_directory=True)
