"""Write a dataset folder all-or-nothing, with byte-stable files.

A prepared folder is built in a hidden sibling (``.<name>.partial-*``) and renamed into
place, so ``data/`` never holds a half-written dataset. Those hidden names are listed in
``.dvcignore`` so a crash mid-build cannot change the tracked directory's DVC hash. The
fsync steps are the ones every single-file write uses (:mod:`forkpoint.contract.atomic`).
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from forkpoint.contract.atomic import fsync_dir, fsync_file

PARTIAL = ".partial-"
STALE = ".stale-"


def dumps_json(obj: Any) -> str:
    """JSON with sorted keys and fixed separators: the same bytes on every machine."""
    return json.dumps(obj, sort_keys=True, indent=2, separators=(",", ": "), ensure_ascii=True) + "\n"


def save_array(path: Path, array: np.ndarray) -> None:
    """Raw little-endian .npy v1.0 (no compression, no pickle): bytes depend only on dtype, shape, data.

    The header is written here, in exactly the layout ``np.save`` uses, so a NumPy release
    that changed its writer could not change our files (``np.load`` reads them as usual).
    """
    a = np.ascontiguousarray(array)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"save_array stores plain numeric arrays, not {a.dtype}")
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    shape = repr(tuple(int(d) for d in a.shape))  # "(5,)", "(10, 28, 28)": as np.save writes it
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (a.dtype.str, shape)
    header += " " * ((-(10 + len(header) + 1)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(a.tobytes())


@contextlib.contextmanager
def building(target: Path) -> Iterator[Path]:
    """Yield an empty scratch folder beside ``target``; on success it replaces ``target``.

    On error the scratch folder is removed and ``target`` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}{PARTIAL}", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(scratch, 0o777 & ~umask)  # mkdtemp makes it 0700; the final folder should look normal
    try:
        yield scratch
        if _same_files(scratch, target):
            return  # e.g. another process just built the same bytes: leave readers undisturbed
        for p in scratch.iterdir():
            fsync_file(p)
        fsync_dir(scratch)
        _swap_into_place(scratch, target)
        fsync_dir(target.parent)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def _swap_into_place(scratch: Path, target: Path) -> None:
    if not target.exists():
        try:
            os.rename(scratch, target)
            return
        except OSError:
            if not target.exists():
                raise
            # another process finished the same build first; fall through and replace it
    stale = Path(tempfile.mkdtemp(prefix=f".{target.name}{STALE}", dir=target.parent))
    os.rename(target, stale / target.name)
    os.rename(scratch, target)
    shutil.rmtree(stale, ignore_errors=True)


def _same_files(a: Path, b: Path) -> bool:
    """True when folder ``b`` holds exactly ``a``'s files with identical bytes."""
    if not b.is_dir() or sorted(p.name for p in a.iterdir()) != sorted(p.name for p in b.iterdir()):
        return False
    return all(filecmp.cmp(p, b / p.name, shallow=False) for p in a.iterdir())
