"""Names every layer agrees on: the task-name rule and the embedded default backbone."""

from __future__ import annotations

import re

from forkpoint.contract.errors import ConfigError

DEFAULT_ARCH = "tf_efficientnet_lite0"  # the trunk whose ImageNet weights ship in a pip package
TASK_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class InvalidNameError(ConfigError):
    """A task name does not match ``[a-z0-9][a-z0-9._-]{0,63}`` (and is not all dots)."""


def check_task_name(name: object) -> str:
    """A safe task name: lower-case, no path separators, not '.'/'..'-like, at most 64 characters."""
    if not isinstance(name, str) or not TASK_NAME_RE.fullmatch(name) or set(name) <= {"."}:
        raise InvalidNameError(
            f"invalid task name {name!r}: use 1-64 characters from a-z 0-9 . _ - starting with a letter or digit"
        )
    return name
