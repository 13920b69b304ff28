"""A gate is one block in crmkit/rollout/gate_kinds.py: the plan's gates: keys come from the registry."""

from __future__ import annotations

from crmkit.rollout.gate_kinds import GATES
from crmkit.rollout.plan import PREVIOUS_WAVE_GATES, Gates


def test_every_registered_gate_is_a_key_of_a_waves_gates_in_registration_order() -> None:
    assert list(Gates.model_fields) == [e.name for e in GATES.entries()]
    for entry in GATES.entries():
        field = Gates.model_fields[entry.name]
        assert field.default is None and entry.item.spec in getattr(field.annotation, "__args__", ())


def test_the_previous_wave_gates_come_from_their_registration() -> None:
    assert PREVIOUS_WAVE_GATES == ("reconciliation", "validation", "dedupe_review", "feedback", "adoption")
    assert {e.name for e in GATES.entries() if not e.item.previous_wave} == {"loadtest", "sandboxes"}
