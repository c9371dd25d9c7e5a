"""forkpoint's registry: versioned tasks, branch points and safetensors weights.

Entry point: :class:`Registry` (``Registry.open(home, db_url=None)``). See docs/registry.md.
"""

from forkpoint.registry.core import GC_GRACE_S, Registry
from forkpoint.registry.errors import (
    ArtifactCorruptError,
    ArtifactMissingError,
    BackboneMismatchError,
    BranchSpecError,
    ClassNamesMismatchError,
    ConcurrencyError,
    DatabaseUnavailableError,
    InvalidInputError,
    InvalidNameError,
    LivePointerError,
    RegistryError,
    StoreWriteError,
    TamperedError,
    UnknownBackboneError,
    UnknownTaskError,
    UnknownVersionError,
)
from forkpoint.registry.records import (
    AuditRecord,
    BackboneRecord,
    TaskHistory,
    TaskRecord,
    VerifyReport,
    VersionDiff,
    VersionRecord,
)
from forkpoint.registry.store import LocalObjectStore, WeightStore

__all__ = [
    "GC_GRACE_S", "Registry",
    "ArtifactCorruptError", "ArtifactMissingError", "BackboneMismatchError", "BranchSpecError",
    "ClassNamesMismatchError", "ConcurrencyError", "DatabaseUnavailableError", "InvalidInputError",
    "InvalidNameError", "LivePointerError", "RegistryError", "StoreWriteError", "TamperedError", "UnknownBackboneError", "UnknownTaskError", "UnknownVersionError",
    "AuditRecord", "BackboneRecord", "TaskHistory", "TaskRecord", "VerifyReport", "VersionDiff", "VersionRecord",
    "LocalObjectStore", "WeightStore",
]
