"""forkpoint's own exception types: the root of every error, with its exit code.

Torch-free, like the rest of :mod:`forkpoint.contract`, so every layer (registry,
imagedata, the CLI's read commands) can import it without pulling in the learner.

Every error a user can cause derives from :class:`ForkpointError`; the CLI catches
that one type at its boundary and prints the message as a single line. Messages name
the problem and the fix.
"""


EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a verification found a problem (forgetting, corrupt artifact, audit)
EXIT_USAGE = 2  # bad input: the message names the problem and the fix
EXIT_INTERRUPTED = 130


class ForkpointError(Exception):
    """Base of every error forkpoint raises on purpose (bad input, failed check)."""

    exit_code = EXIT_USAGE


class ConfigError(ForkpointError):
    """An option or argument is invalid (bad branch range, unknown device, ...)."""


class DataError(ForkpointError):
    """A dataset cannot be used as given (too few classes, NaN pixels, ...)."""


class UnsupportedModelError(ForkpointError):
    """The timm model is not of a family forkpoint knows how to split into blocks."""


class BranchMismatchError(ForkpointError):
    """Stored branch weights do not fit the trunk or the declared head shape."""


class ForgettingError(ForkpointError):
    """A frozen tensor (trunk or an earlier task's branch) changed: the no-forgetting invariant broke."""

    exit_code = EXIT_CHECK_FAILED


class WorkerError(ForkpointError):
    """A Ray worker died (retries exhausted) or Ray itself failed; nothing was registered."""

    exit_code = EXIT_CHECK_FAILED

