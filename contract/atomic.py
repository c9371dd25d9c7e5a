"""Whole-or-nothing file writes: a reader (or a crash) sees the old file or the new one, never half.

The one recipe every layer uses: write a temp file in the target's directory (same file
system, so the rename is atomic), fsync it, ``os.replace`` it over the target, then fsync
the directory so the rename itself survives a power cut. Torch-free and numpy-free.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"  # temp files start with this: readers and gc can tell them from real files


def fsync_dir(folder: Path) -> None:
    """Make a rename (or a new entry) in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush one file's bytes to disk (before it is renamed into place)."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_bytes(path: Path, data: bytes, *, mode: int | None = None, prefix: str = TMP_PREFIX) -> Path:
    """Replace ``path`` with ``data`` atomically; ``mode`` sets its permissions (e.g. 0o444 for immutable objects).

    On any failure the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            else:  # mkstemp makes 0600; a result file should look like any other the user writes
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(f.fileno(), 0o666 & ~umask)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_text(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    return write_bytes(path, text.encode(encoding))


def write_json(path: Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = False, allow_nan: bool = True) -> Path:
    """``obj`` as JSON plus a final newline, written atomically."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan) + "\n")
