"""Where an export may be written: checked before any model is loaded (torch-free, so a typo costs nothing)."""

from __future__ import annotations

import os
from pathlib import Path

from forkpoint.contract.errors import ConfigError


def check_target(out: str | Path) -> Path:
    """``out`` as a path we can replace atomically; refuses a directory or a missing or unwritable folder.

    The folder is never created: a missing one is more often a typo than a wish.
    """
    out = Path(out).expanduser()
    parent = out.parent
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory: give a file path, e.g. {out / 'model.onnx'}")
    if not parent.is_dir():
        raise ConfigError(f"--out folder {parent} does not exist: create it (mkdir -p {parent}) or pick another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out folder {parent} is not writable: pick another --out")
    return out
