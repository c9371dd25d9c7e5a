"""Errors the registry raises on purpose.

All derive from :class:`forkpoint.contract.errors.ForkpointError`, so the CLI prints them as one
line and exits non-zero. Each message names the problem and the fix.
"""

from __future__ import annotations

from forkpoint.contract.errors import BranchMismatchError, ConfigError, ForkpointError
from forkpoint.contract.names import InvalidNameError as _ContractNameError


class RegistryError(ForkpointError):
    """Base of every registry error."""


class InvalidNameError(RegistryError, _ContractNameError):
    """A task name does not match ``[a-z0-9][a-z0-9._-]{0,63}``."""


class InvalidInputError(RegistryError, ConfigError):
    """A value handed to the registry cannot be stored (not JSON, NaN weights, ...)."""


class UnknownTaskError(RegistryError):
    """No task of that name is registered."""


class UnknownVersionError(RegistryError):
    """The task exists but has no such version."""


class UnknownBackboneError(RegistryError):
    """No backbone with that fingerprint is registered."""


class BackboneMismatchError(RegistryError):
    """The task belongs to another backbone, or a fingerprint is reused for a different trunk."""


class BranchSpecError(RegistryError, BranchMismatchError):
    """The branch's block range, block names or head shape do not fit the backbone/classes."""


class ClassNamesMismatchError(RegistryError, ConfigError):
    """A new version's class names differ from the task's."""


class DatabaseUnavailableError(RegistryError):
    """The database URL is malformed or the server cannot be reached."""


class ArtifactMissingError(RegistryError):
    """A row points at a weights file that is not in the object store."""


class ArtifactCorruptError(RegistryError):
    """A weights file's sha256 no longer matches the hash recorded when it was written."""

    exit_code = 1


class StoreWriteError(RegistryError):
    """The object store cannot be written (disk full, permissions)."""


class ConcurrencyError(RegistryError):
    """A write kept colliding with concurrent writers and gave up."""


class TamperedError(RegistryError):
    """A row, the audit chain or a weights file's names contradict what the registry wrote: refused, not served."""

    exit_code = 1


class LivePointerError(RegistryError):
    """A task's live pointer names a version that does not exist (a registry fault, not bad input)."""

    exit_code = 1


class StoreUnavailableError(RegistryError):
    """The object store named by the registry's store URL cannot be reached, listed or read."""


class AuditKeyError(RegistryError, ConfigError):
    """A write to a keyed registry without its audit key (or with another key): it would be sealed unkeyed."""
