"""Read IDX files (the MNIST/Fashion-MNIST format), gzip'd or not."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from forkpoint.contract.errors import DataError

_UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """uint8 array from an IDX file: magic (0,0,type,ndim), ndim big-endian sizes, then data.

    Image files therefore start their pixels at offset 16, label files at offset 8.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE or not 1 <= raw[3] <= 4:
        raise DataError(f"{path} is not an unsigned-byte IDX file: reinstall the package that ships it")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{path} holds {len(raw) - header} bytes of data, expected {int(np.prod(shape))} for shape {shape}: reinstall it")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()
