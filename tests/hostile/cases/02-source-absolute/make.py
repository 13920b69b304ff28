"""Built at run time: a csv source named by its absolute path outside the project."""

from pathlib import Path


def make(project: Path, outside: Path) -> None:
    m = project / "mapping.yaml"
    m.write_text(m.read_text(encoding="utf-8").replace("OUTSIDE", str(outside)), encoding="utf-8")
