"""The domain contract every layer shares, torch-free: errors, names, branch ranges, version drafts.

Dependencies point one way: ``contract`` <- ``learner`` / ``registry`` / ``imagedata`` <-
``workflows`` <- ``cli`` / ``scenarios`` / ``benchmarks``. Importing this package must never
import torch (a test checks it), so read-only commands stay fast.
"""

from forkpoint.contract.branch import BranchSpec, UnitRange, parse_range
from forkpoint.contract.draft import VersionDraft
from forkpoint.contract.errors import (
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    BranchMismatchError,
    ConfigError,
    DataError,
    ForgettingError,
    ForkpointError,
    UnsupportedModelError,
    WorkerError,
)
from forkpoint.contract.names import DEFAULT_ARCH, TASK_NAME_RE, InvalidNameError, check_task_name

__all__ = [
    "BranchSpec", "UnitRange", "parse_range", "VersionDraft",
    "EXIT_CHECK_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE",
    "BranchMismatchError", "ConfigError", "DataError", "ForgettingError", "ForkpointError", "UnsupportedModelError", "WorkerError",
    "DEFAULT_ARCH", "TASK_NAME_RE", "InvalidNameError", "check_task_name",
]
