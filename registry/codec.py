"""Tensors <-> safetensors bytes. No pickle: safetensors holds only raw tensor data.

We serialise to bytes first so the sha256 we record is the hash of exactly the bytes
written to disk, and the same tensors always produce the same bytes (one metadata
key only: safetensors writes a multi-key metadata map in hash order).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from forkpoint.registry.errors import InvalidInputError


def encode(tensors: dict[str, torch.Tensor], *, check_finite: bool = True) -> bytes:
    """Serialise a state dict; refuses non-tensors and (optionally) NaN/inf weights."""
    if not isinstance(tensors, dict) or not tensors:
        raise InvalidInputError("tensors must be a non-empty dict[str, torch.Tensor]: pass the branch's state dict")
    plain: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            raise InvalidInputError(f"tensor entry {name!r} is not str -> torch.Tensor: pass a plain state dict")
        t = t.detach().to("cpu")
        if check_finite and t.is_floating_point() and not _all_finite(t):
            raise InvalidInputError(f"tensor {name!r} contains NaN or inf: refusing to store diverged weights")
        # clone: safetensors refuses tensors that share storage (tied weights, views)
        plain[name] = t.clone().contiguous()
    return st_save(plain, metadata={"format": "pt"})


def _all_finite(t: torch.Tensor) -> bool:
    # numpy: a single pass with no thread-pool wake-ups (torch.isfinite is ~100x slower on a busy box)
    if t.dtype == torch.bfloat16:
        return bool(torch.isfinite(t).all())
    return bool(np.isfinite(t.numpy()).all())


def decode(data: bytes) -> dict[str, torch.Tensor]:
    """Bytes back to CPU tensors."""
    return st_load(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
