"""One line each in UTF-8, GB18030 and cp1252."""

from pathlib import Path


def make(project: Path, outside: Path) -> None:
    (project / "source.csv").write_bytes(
        b"id,name,mail\n1,"
        + "张三".encode()
        + b",a@x.org\n2,"
        + "李四".encode("gb18030")
        + b",b@x.org\n3,"
        + "Renée".encode("cp1252")
        + b",c@x.org\n"
    )
