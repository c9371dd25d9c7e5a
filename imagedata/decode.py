"""Image files -> uint8 pixels at the model's size, within a memory bound: the one decoder.

Why one: training on user files (``userdata``) and ``predict`` must see the same pixels,
so both call :func:`load_pixels`. Why bounded: a 10000x10000 PNG is 400 MB once Pillow
decodes it, and a tiny file can declare billions of pixels (a decompression bomb). So
the declared size is checked before anything is decoded, JPEGs are decoded at a reduced
scale (``Image.draft``), and everything else is box-reduced right after decoding, before
any copy is made; the resize rule (``convert.fit_square``) then works on a small image.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from forkpoint.contract.errors import DataError
from forkpoint.contract.preprocessing import REDUCING_GAP
from forkpoint.imagedata.convert import fit_square, to_pixels

# Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS), kept even where a caller lifts Pillow's.
MAX_PIXELS = 2 * 89_478_485
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)
_REDUCIBLE = {"L", "LA", "La", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I", "F"}  # Image.reduce refuses P, 1, I;16
_FORMATS = "PNG/JPEG/BMP/TIFF/WebP"


class UnreadableImageError(DataError):
    """The file is not an image Pillow can decode (or it is truncated)."""


class ImageTooLargeError(DataError):
    """The file declares more than MAX_PIXELS pixels: refused before decoding."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail  # "15000x15000" or "225,000,000 px": for messages naming several files


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # (H,W) uint8 for gray sources, (H,W,3) for colour ones
    source_size: tuple[int, int]  # (width, height) the file declares


def _too_large(path: Path, detail: str) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"image {path} is {detail}, over the {MAX_PIXELS:,}-pixel limit (a decompression-bomb guard): "
        f"downscale it (e.g. to 4096 px on the longer side) and pass the smaller copy", detail)


def _bomb_detail(exc: Exception) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(found.group(1)):,} px" if found else f"over {MAX_PIXELS:,} px"


def _reduce(img: Image.Image, size: int) -> Image.Image:
    """Box-reduce by an integer factor while the shorter side stays >= REDUCING_GAP x size."""
    factor = int(min(img.size) / size / REDUCING_GAP)
    return img.reduce(factor) if factor >= 2 and img.mode in _REDUCIBLE else img


def load_pixels(path: str | Path, size: int | None = None, counts: Counter | None = None) -> Decoded:
    """Decode ``path`` to 8-bit gray/RGB, then (``size`` given) to size x size by the resize rule.

    Conversions (16-bit, alpha, palette, resizing) are counted in ``counts``. Raises
    :class:`UnreadableImageError` or :class:`ImageTooLargeError` (both DataError: exit 2).
    """
    path = Path(path)
    counts = Counter() if counts is None else counts
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS is the guard
            with Image.open(path) as img:
                source = img.size
                if source[0] * source[1] > MAX_PIXELS:
                    raise _too_large(path, f"{source[0]}x{source[1]}")
                if size is not None:
                    gap = int(REDUCING_GAP * size)
                    img.draft(img.mode, (gap, gap))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
                img.load()
                if size is not None:
                    ImageOps.exif_transpose(img, in_place=True)  # before reducing: TIFF keeps its orientation in tags
                    img = _reduce(img, size)
                pixels = to_pixels(img, counts)
    except Image.DecompressionBombError as exc:
        raise _too_large(path, _bomb_detail(exc)) from None
    except UNREADABLE as exc:
        raise UnreadableImageError(f"cannot read {path} as an image ({type(exc).__name__}): pass {_FORMATS} files") from None
    if size is not None and source != (size, size):
        counts["resized"] += 1
        pixels = fit_square(pixels, size)
    return Decoded(pixels, source)
