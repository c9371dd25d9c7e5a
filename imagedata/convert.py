"""Turn any Pillow image into uint8 pixels, counting every conversion so none is silent."""

from __future__ import annotations

from collections import Counter

import numpy as np
from PIL import Image, ImageOps

from forkpoint.contract.preprocessing import REDUCING_GAP

MIN_SIDE = 8  # smaller images carry too little signal to classify; rejected, not upscaled
DEFAULT_SIZE = 64
_GRAY16 = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_ALPHA = {"RGBA", "RGBa", "LA", "La", "PA"}


def _on_white(img: Image.Image) -> Image.Image:
    """Composite an image with alpha onto white (transparent pixels become background, not black)."""
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def to_pixels(img: Image.Image, counts: Counter) -> np.ndarray:
    """(H,W) uint8 for grayscale sources, (H,W,3) uint8 for colour ones; EXIF rotation applied to ``img`` in place."""
    ImageOps.exif_transpose(img, in_place=True)  # in place: no full-size copy of an upright image
    mode = img.mode
    if mode == "L":
        return np.asarray(img, dtype=np.uint8)
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in _GRAY16:
        counts["16bit_to_8bit"] += 1
        v = np.asarray(img).astype(np.int64).clip(0, 65535)
        return ((v * 255 + 32767) // 65535).astype(np.uint8)
    if mode == "F":
        counts["float_to_8bit"] += 1
        v = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
        v = v * 255.0 if v.size and v.max() <= 1.0 else v
        return np.rint(v.clip(0, 255)).astype(np.uint8)
    if mode == "1":
        counts["bilevel_to_gray"] += 1
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if mode == "P" and "transparency" in img.info:
        mode = "PA"
        img = img.convert("RGBA")
    if mode in _ALPHA:
        counts["alpha_on_white"] += 1
        rgb = np.asarray(_on_white(img), dtype=np.uint8)
        return rgb[..., 0].copy() if mode in ("LA", "La") else rgb
    counts[f"{mode.lower()}_to_rgb"] += 1  # P, CMYK, YCbCr, LAB, HSV, ...
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def gray_to_rgb(pixels: np.ndarray) -> np.ndarray:
    return np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels


def fit_image(img: Image.Image, size: int) -> Image.Image:
    """An 8-bit L/RGB image -> size x size by the backbone's rule (contract.preprocessing).

    Shorter side to ``size`` with Pillow's bicubic, centre crop of the longer one (torchvision's
    eval recipe); images over twice the target are box-reduced first (Pillow's reducing gap),
    which bounds the work and matches what decoding a large file does.
    """
    w, h = img.size
    if (w, h) == (size, size):
        return img
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)
    top, left = (nh - size) // 2, (nw - size) // 2
    return img.crop((left, top, left + size, top + size))


def fit_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """(H,W[,3]) uint8 -> (size,size[,3]) uint8 by :func:`fit_image`."""
    if pixels.shape[:2] == (size, size):
        return pixels
    return np.asarray(fit_image(Image.fromarray(pixels), size), dtype=np.uint8)


def resize_all(images: np.ndarray, size: int) -> np.ndarray:
    """Stack of images (N,H,W[,3]) resized to (N,size,size[,3])."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, *images.shape[3:]), dtype=np.uint8)
    for i in range(len(images)):
        out[i] = fit_square(images[i], size)
    return out
