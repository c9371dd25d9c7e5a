"""Tensors <-> safetensors bytes. No pickle: safetensors holds only raw tensor data.

We serialise to bytes first so the sha256 we record is the hash of exactly the bytes
written to disk, and the same tensors always produce the same bytes (one metadata
key only: safetensors writes a multi-key metadata map in hash order).

torch, numpy and safetensors are imported inside the functions that handle tensors:
the read-only commands import this module (through the store) and must stay torch-free.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Mapping

from forkpoint.registry.errors import InvalidInputError

if TYPE_CHECKING:
    import torch


def encode(tensors: Mapping[str, torch.Tensor], *, check_finite: bool = True,
           metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialise a state dict; refuses non-tensors and (optionally) NaN/inf weights.

    ``metadata`` replaces the default ``{"format": "pt"}``: give it one key, or the bytes
    will not be reproducible."""
    import torch
    from safetensors.torch import save as st_save

    if not isinstance(tensors, Mapping) or not tensors:
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
    return st_save(plain, metadata=dict(metadata) if metadata is not None else {"format": "pt"})


def _all_finite(t: torch.Tensor) -> bool:
    import numpy as np
    import torch

    # numpy: a single pass with no thread-pool wake-ups (torch.isfinite is ~100x slower on a busy box)
    if t.dtype == torch.bfloat16:
        return bool(torch.isfinite(t).all())
    return bool(np.isfinite(t.numpy()).all())


def decode(data: bytes) -> dict[str, torch.Tensor]:
    """Bytes back to CPU tensors."""
    from safetensors.torch import load as st_load

    return st_load(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
