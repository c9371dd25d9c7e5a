"""Augmented views of the training images, made once and cached through the frozen prefix.

A branch trains on the prefix's activations, not on images, so the usual per-step image
augmentation would mean re-running the frozen prefix every step (what the cache exists
to avoid). Instead a few augmented copies of each training image are drawn up front:
random resized crops (and horizontal flips only when the user allows them: a mirrored
"2" is not a "2"), each pushed through the prefix once and then reused every epoch.
The cost is one extra prefix pass per view; the training steps stay the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from forkpoint.contract.errors import ConfigError


@dataclass(frozen=True)
class AugmentConfig:
    """How training images are augmented for the final branch training (``views=0``: off)."""

    views: int = 0  # augmented copies per training image
    min_scale: float = 0.6  # smallest crop, as a fraction of the image's area
    flip: bool = False  # horizontal flips; only for tasks whose classes are mirror-symmetric

    def __post_init__(self) -> None:
        if not (0 <= self.views <= 16):
            raise ConfigError(f"augmented views {self.views} must be in 0..16: use 0 to turn augmentation off")
        if not (0.05 <= self.min_scale <= 1.0):
            raise ConfigError(f"augmentation min scale {self.min_scale} must be in [0.05, 1]")


def _crop_box(size: int, scale: float, ratio: float) -> tuple[int, int]:
    area = size * size * scale
    w = int(round(math.sqrt(area * ratio)))
    h = int(round(math.sqrt(area / ratio)))
    return max(1, min(size, h)), max(1, min(size, w))


@torch.no_grad()
def augmented_views(x: torch.Tensor, cfg: AugmentConfig, seed: int) -> torch.Tensor:
    """``cfg.views`` augmented copies of every image in ``x`` (N,3,R,R), stacked view after view.

    Crops keep aspect ratios within [3/4, 4/3] and are resized back to R (bilinear,
    antialiased); the images are already normalised, which crops and flips commute with.
    """
    if cfg.views == 0 or len(x) == 0:
        return x[:0]
    gen = torch.Generator().manual_seed(seed)
    n, _, size, _ = x.shape
    out = torch.empty(cfg.views * n, *x.shape[1:], dtype=x.dtype)
    log_lo, log_hi = math.log(3 / 4), math.log(4 / 3)
    for v in range(cfg.views):
        scales = torch.empty(n).uniform_(cfg.min_scale, 1.0, generator=gen)
        ratios = torch.exp(torch.empty(n).uniform_(log_lo, log_hi, generator=gen))
        offs = torch.rand(n, 2, generator=gen)
        flips = torch.rand(n, generator=gen) < 0.5
        for i in range(n):
            h, w = _crop_box(size, float(scales[i]), float(ratios[i]))
            top = int(offs[i, 0] * (size - h + 1))
            left = int(offs[i, 1] * (size - w + 1))
            crop = x[i:i + 1, :, top:top + h, left:left + w]
            if (h, w) != (size, size):
                crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            if cfg.flip and flips[i]:
                crop = crop.flip(-1)
            out[v * n + i] = crop[0]
    return out


def with_views(x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The originals followed by their augmented views, and the labels to match (``(x, y)`` when off)."""
    if cfg.views == 0:
        return x, y
    return torch.cat([x, augmented_views(x, cfg, seed)]), y.repeat(cfg.views + 1)
