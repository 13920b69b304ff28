"""Errors of the training capability (each one line; the CLI exits 2)."""

from __future__ import annotations

from crmkit.errors import ConfigError, CrmkitError


class ScenarioError(ConfigError):
    """A scenario asks for something that cannot be generated (e.g. too few distinct values)."""


class SandboxError(CrmkitError):
    """A sandbox is unknown, exists already, or its database cannot be made or reached."""


class MaskError(CrmkitError):
    """Masking cannot go ahead: missing salt, uncovered personal column, non-empty target."""
