"""uint8 arrays -> torch tensors in the layout torchvision/timm preprocessing expects."""

from __future__ import annotations

import numpy as np
import torch

from forkpoint.imagedata.types import Split


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N,H,W) or (N,H,W,C) uint8 -> (N,C,H,W) float32 in [0,1]."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.float().div_(255.0)


def split_tensors(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    return images_to_tensor(split.images), torch.from_numpy(np.asarray(split.labels, dtype=np.int64))
