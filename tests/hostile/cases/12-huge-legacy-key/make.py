from pathlib import Path


def make(project: Path, outside: Path) -> None:
    """A legacy key of 5,000 characters (the key columns hold 200) on a row that is rejected and one that loads."""
    key = "K" * 5_000
    (project / "source.csv").write_text(f"id,name,tier\n1,Acme,A\n{key},Beta,Z\n{key}2,Gamma,A\n", encoding="utf-8")
