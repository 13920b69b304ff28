"""A persona is one registration in loadtest/personas.py: profiles may name it with no other edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crmkit.errors import ConfigError
from crmkit.loadtest.personas import PERSONAS, persona
from crmkit.loadtest.profile import load_profile

PROFILE = """description: one auditor
users: 2
spawn_rate: 1
duration: 10s
personas:
  {name}: {{weight: 1, think_time: [1s, 2s]}}
thresholds:
  read: {{p95: 1s}}
"""


def _audit(user: Any) -> None:  # a task: a plain function of the Locust user
    user.get("read /accounts/{id}", "/accounts/1")


def test_a_registered_persona_is_one_a_profile_may_name(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE.format(name="auditor"), encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown persona 'auditor'"):
        load_profile(str(path))
    persona("auditor", "manager", ("read",), {_audit: 1}, summary="reads accounts", doc="An auditor.")
    try:
        assert load_profile(str(path))[0].personas["auditor"].weight == 1
        assert PERSONAS.get("auditor").tasks == {_audit: 1}
    finally:
        PERSONAS.remove("auditor")


def test_every_persona_has_weighted_tasks() -> None:
    for name in PERSONAS.names():
        kind = PERSONAS.get(name)
        assert kind.tasks and all(w > 0 for w in kind.tasks.values()), name
