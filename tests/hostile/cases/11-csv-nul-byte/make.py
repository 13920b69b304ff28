"""Row 2 has a NUL in a mapped column, row 3 in a column nobody reads."""

from pathlib import Path


def make(project: Path, outside: Path) -> None:
    (project / "source.csv").write_bytes(b"id,name,mail,note\n1,Ann,a@x.org,\n2,B\x00b,b@x.org,\n3,Cy,c@x.org,x\x00y\n")
