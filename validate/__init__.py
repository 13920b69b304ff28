"""Validation of CRM entities with pandera: business rules, quality profiles, gates, reports.

The interface other code calls:

* :func:`load_rules` reads a rules file into :class:`ValidationRules` (also the type of a
  mapping's ``validate:`` section);
* :func:`check_frame` adds ``__v_errors`` / ``__v_warnings`` (lists of reasons) to a typed frame;
* :func:`evaluate_gates` measures the rules' gates over checked frames (:class:`Checked`);
* :func:`register_check` adds a custom check usable from YAML as ``custom: NAME``;
* :mod:`validate.migration`: ``validate_feeds`` / ``merge_into_pipeline`` for ``migrate run``.

``crmkit validate`` (crmkit/cli/validate.py) is a thin layer over :func:`validate.run.run`.
"""

from crmkit.validate.checks import register_check
from crmkit.validate.engine import ERRORS, WARNINGS, check_frame
from crmkit.validate.gates import Checked, GateResult, evaluate_gates
from crmkit.validate.rules import ValidationRules, check_meaning, load_rules

__all__ = [
    "ERRORS",
    "WARNINGS",
    "Checked",
    "GateResult",
    "ValidationRules",
    "check_frame",
    "check_meaning",
    "evaluate_gates",
    "load_rules",
    "register_check",
]
