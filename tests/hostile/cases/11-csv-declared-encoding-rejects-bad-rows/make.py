"""UTF-8, with one GB18030 line."""

from pathlib import Path


def make(project: Path, outside: Path) -> None:
    (project / "source.csv").write_bytes(
        b"id,name,mail\n1," + "张三".encode() + b",a@x.org\n2," + "李四".encode("gb18030") + b",b@x.org\n"
    )
