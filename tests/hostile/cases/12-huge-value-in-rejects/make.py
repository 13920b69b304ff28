from pathlib import Path


def make(project: Path, outside: Path) -> None:
    """A rejected row with a 1.5-million-character cell."""
    big = "=" + "x" * 1_500_000
    (project / "source.csv").write_text(f"id,name,tier\n1,Acme,A\n2,{big},Z\n", encoding="utf-8")
