"""Uploaded images -> the trunk's input, through the very decoder training and ``predict`` use.

The bytes of each upload are written to a private temporary file and read back by
``learner.data.load_inputs`` with the trunk's preprocessing spec (``imagedata.decode.
load_pixels``: bounded decoding and the resize rule, then normalisation), so a served
answer is computed from exactly the pixels ``forkpoint predict`` would see for the
same file. Nothing here resizes or normalises on its own.

Limits are checked before decoding: bytes per request (also enforced while the body
streams in, see ``serving.guard``), images per request, and pixels per image (from the
file's header; a smaller cap than the decoder's own decompression-bomb guard).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from forkpoint.contract.errors import DataError, ForkpointError
from forkpoint.contract.preprocessing import Preprocessing
from forkpoint.learner.data import load_inputs

SHM = Path("/dev/shm")


@dataclass(frozen=True)
class Limits:
    """What one request may carry. Defaults suit phone photos; raise them with care (memory)."""

    max_request_bytes: int = 32 * 1024 * 1024
    max_images: int = 16
    max_pixels: int = 40_000_000  # per image, as the file declares it (e.g. 8000 x 5000)
    max_top_k: int = 50

    def __post_init__(self) -> None:
        if min(self.max_request_bytes, self.max_images, self.max_pixels, self.max_top_k) < 1:
            raise ValueError("every serving limit must be at least 1")


class BadRequestError(ForkpointError):
    """The request itself is malformed (missing field, bad number): HTTP 400."""


class TooLargeError(ForkpointError):
    """The request exceeds a limit (bytes, images, pixels): HTTP 413."""


class BadImageError(DataError):
    """An upload is not an image the decoder can read: HTTP 415."""


@dataclass(frozen=True)
class Upload:
    name: str  # the client's file name (or "image N"), used in the answer and in errors
    data: bytes


def decode_uploads(uploads: list[Upload], spec: Preprocessing, limits: Limits) -> torch.Tensor:
    """The uploads as one (N,3,R,R) float tensor, or a one-line error naming the upload at fault."""
    if not uploads:
        raise BadRequestError("no images in the request: send one or more files in the multipart field 'images'")
    if len(uploads) > limits.max_images:
        raise TooLargeError(f"{len(uploads)} images in one request, over the limit of {limits.max_images}: split the request")
    root = SHM if SHM.is_dir() and os.access(SHM, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="forkpoint-upload-", dir=root) as folder:
        paths = []
        for i, up in enumerate(uploads):
            path = Path(folder) / f"upload-{i}"
            path.write_bytes(up.data)
            _check_pixels(path, up, limits.max_pixels)
            paths.append(path)
        try:
            return load_inputs(paths, spec)
        except DataError as e:
            message = str(e)
            for path, up in zip(paths, uploads):
                message = message.replace(str(path), repr(up.name))
            raise BadImageError(message) from None


def _check_pixels(path: Path, up: Upload, max_pixels: int) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` (unreadable headers are the decoder's to report)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
    except Image.DecompressionBombError:
        raise TooLargeError(f"image {up.name!r} declares more pixels than Pillow's decompression-bomb limit: "
                            "downscale it (e.g. to 2048 px on the longer side) and send it again") from None
    except Exception:  # noqa: BLE001 - not an image: load_pixels says so in its own words
        return
    if w * h > max_pixels:
        raise TooLargeError(f"image {up.name!r} is {w}x{h}, over the {max_pixels:,}-pixel limit per image: "
                            "downscale it (e.g. to 2048 px on the longer side) and send it again")
