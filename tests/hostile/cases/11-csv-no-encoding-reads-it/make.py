"""0x81 0x8d 0x90: undefined in cp1252, not GB18030 before an ASCII space."""

from pathlib import Path


def make(project: Path, outside: Path) -> None:
    (project / "source.csv").write_bytes(b"id,name,mail\n1,Ann,a@x.org\n2,\x81\x8d\x90 x,b@x.org\n")
