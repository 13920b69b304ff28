"""2,000 ASCII rows, then one Chinese row in GB18030."""

from pathlib import Path


def make(project: Path, outside: Path) -> None:
    (project / "source.csv").write_bytes(
        b"id,name,mail\n"
        + b"".join(b"%d,ascii %d,p%d@x.org\n" % (i, i, i) for i in range(1, 2001))
        + "9999,张三丰,z@x.org\n".encode("gb18030")
    )
