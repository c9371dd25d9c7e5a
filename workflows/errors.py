"""Errors the workflows raise on purpose (all ForkpointError: one line at the CLI boundary)."""

from __future__ import annotations

from forkpoint.contract.errors import DataError, ForgettingError, ForkpointError


class HomeNotInitializedError(ForkpointError):
    """The home has no registry or no trunk yet: ``forkpoint init`` comes first."""


class TrunkChangedError(ForgettingError):
    """The trunk rebuilt from its recorded source is not the registered one (a failed check: exit 1)."""


class PredictionChangedError(ForgettingError):
    """An older task's predictions moved after a new task was added (a failed check: exit 1)."""


class ImageInputError(DataError):
    """An image path given to predict is missing, unreadable or not an image."""


class DataVersionMismatchError(DataError):
    """The data found for a version is not the data version (DVC md5) it was trained on."""


class RoutingUnavailableError(ForkpointError):
    """``predict --route`` over tasks none of which has a routing record."""
