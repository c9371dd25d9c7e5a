"""Who and with what: the actor string and library versions stamped on every write."""

from __future__ import annotations

import getpass
import socket
from importlib.metadata import PackageNotFoundError, version

LIBS = ("torch", "timm", "forkpoint", "safetensors")


def default_actor() -> str:
    """``user@host`` of the calling process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def lib_versions() -> dict[str, str]:
    """Installed versions (from package metadata, without importing the packages)."""
    out: dict[str, str] = {}
    for name in LIBS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
