"""What a rollout plan and its gates share: ages, paths relative to the plan, the gate spec base."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo, field_validator

from crmkit.config import Strict
from crmkit.paths import confine

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhm])\s*$")


def parse_age(text: str) -> dt.timedelta:
    m = _AGE.match(str(text))
    if not m:
        raise ValueError(f"'{text}' is not an age like 7d, 12h or 30m")
    n, unit = float(m.group(1)), m.group(2)
    return dt.timedelta(days=n) if unit == "d" else dt.timedelta(hours=n) if unit == "h" else dt.timedelta(minutes=n)


def _rel(v: Path, info: ValidationInfo) -> Path:
    return confine(v, (info.context or {}).get("base"))


#: a path relative to the plan file
RelPath = Annotated[Path, AfterValidator(_rel)]


class GateSpec(Strict):
    """The keys every gate takes."""

    max_age: str | None = None  # evidence older than this is inconclusive (default: the plan's)

    @field_validator("max_age")
    @classmethod
    def _age(cls, v: str | None) -> str | None:
        if v is not None:
            parse_age(v)
        return v
