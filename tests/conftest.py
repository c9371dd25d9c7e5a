"""Fixtures every test package may need: hostile image files made byte by byte (none committed)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Callable

import pytest


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


@pytest.fixture(scope="session")
def png_bomb(tmp_path_factory) -> Callable[[int, int], Path]:
    """``png_bomb(width, height)``: a valid 8-bit gray PNG of zeros, a few hundred KB on disk.

    15000 x 15000 decodes to 225 MB (more in float): a real decompression bomb, streamed
    through zlib row by row so making it costs no memory.
    """
    folder = tmp_path_factory.mktemp("bombs")

    def make(width: int, height: int) -> Path:
        path = folder / f"bomb_{width}x{height}.png"
        if not path.is_file():
            z = zlib.compressobj(9)
            row = bytes(width + 1)  # filter byte 0 + a row of black
            idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
            ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
        return path

    return make
