"""Excel's CSV on a Chinese Windows: GB18030."""

from pathlib import Path

#: the review file crmkit wrote (keys neutralised with ', Chinese side by side), decided by a person
TEXT = "rules,left_source,left_key,right_source,right_key,probability,decision,sim.name,left.full_name,right.full_name\r\nchinese,people,'=1+1,people,''=C4,0.5,match,1.0,王芳,王方\r\n"


def make(project: Path, outside: Path) -> None:
    (project / "review.csv").write_bytes(TEXT.encode("gb18030"))
