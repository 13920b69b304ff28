"""Domain exceptions.  The CLI turns each into one line, ``Error: ...``, and exit code 2.

Messages are for the person at the terminal: name the file, line or thing, say what is
wrong and, where there is one, how to fix it.  Never put a secret in a message.
"""


class CrmkitError(Exception):
    """Base of every error crmkit reports to its user (exit code 2)."""

    exit_code = 2


class ConfigError(CrmkitError):
    """A YAML file (mapping, rules, profile, plan) is malformed or invalid."""


class MappingError(ConfigError):
    """A mapping file is invalid: unknown key, transform, source, entity or field."""


class SourceError(CrmkitError):
    """A source cannot be read: missing or corrupt file, wrong encoding, database unreachable."""


class TargetError(CrmkitError):
    """The target database cannot be reached, or is not in a state crmkit can work with."""


class ReconcileError(CrmkitError):
    """The outcomes of a run do not add up to the rows extracted: a bug, never ignored."""
