"""One error hierarchy. The CLI prints ``str(err)`` as one line and exits with ``err.exit_code``.

Set ``SYMDISC_DEBUG=1`` to get the traceback instead.
"""


class SymdiscError(Exception):
    """Base of every error the CLI reports as a one-line message."""

    exit_code = 1


class UsageError(SymdiscError):
    """Bad command-line input: a missing file, an unknown name, a bad option value."""

    exit_code = 2


class ConfigError(SymdiscError):
    """A configuration that cannot work (bad budget, unknown memory class, ...)."""


class StoreError(SymdiscError):
    """The run database is missing, locked, corrupt or from a newer symdisc."""


class ModelError(SymdiscError):
    """A model cannot be found, pulled, verified or loaded."""


class BackendError(SymdiscError):
    """A text-generation backend failed (server down, bad reply, context overflow)."""


class SandboxError(SymdiscError):
    """The sandbox worker could not be started or talked to (not a candidate's fault)."""


class DataError(SymdiscError):
    """A data set is missing or unreadable."""
