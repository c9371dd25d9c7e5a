"""Depthwise convolutions on small maps as batched matmuls, for training on the CPU.

A branch tunes the trunk's late units, whose maps are tiny (2x2 to 8x8 at 64 px). There
PyTorch's CPU depthwise convolution spends 20-30x its forward time in the backward pass
(``convolution_backward`` was 60% of a branch's training step). On a map of ``P``
positions a depthwise convolution is, per channel, a fixed linear map ``P_in -> P_out``
whose entries are kernel weights; as a ``(C, P_out, P_in)`` matrix built from the weight by
a constant index map it runs as one ``bmm`` forward and backward.

The index map is read off the module's own forward on one-hot inputs, so every padding
rule (PyTorch's, timm's TF "same") is the one the module uses; the result equals the
convolution up to float rounding (tested). Only a training step's forward uses it; every
score and every served prediction runs the convolution itself. Parameters, state-dict
keys and the module tree are unchanged: :func:`dense_depthwise` patches instance
``forward`` methods and restores them on exit.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import torch
from torch import nn

MAX_POSITIONS = 64  # 8x8: above it the (C, P, P) matrix outgrows the convolution's own work


def is_depthwise(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels
            and m.kernel_size != (1, 1) and m.padding_mode == "zeros")


@torch.no_grad()
def position_map(conv: nn.Conv2d, height: int, width: int) -> tuple[torch.Tensor, int, int]:
    """``(A, Ho, Wo)``: ``A[r, p, q]`` is 1 where kernel tap ``r`` links input position ``q`` to output ``p``.

    Measured by running the module's own forward (its padding rule included) on one-hot
    images with one-hot kernels, one channel per tap.
    """
    kh, kw = conv.kernel_size
    taps = kh * kw
    probe = copy.deepcopy(conv).cpu().float()
    probe.in_channels = probe.out_channels = probe.groups = taps
    probe.weight = nn.Parameter(torch.eye(taps).view(taps, 1, kh, kw), requires_grad=False)
    probe.bias = None
    positions = height * width
    basis = torch.eye(positions).view(positions, 1, height, width).expand(positions, taps, height, width).contiguous()
    out = type(conv).forward(probe, basis)  # (P_in, taps, Ho, Wo)
    return out.flatten(2).permute(1, 2, 0).contiguous(), out.shape[-2], out.shape[-1]


def _dense_forward(conv: nn.Conv2d, original, maps: dict):
    def forward(x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if h * w > MAX_POSITIONS or x.device.type != "cpu" or not torch.is_grad_enabled():
            return original(x)  # scores and predictions always run the convolution itself
        if (h, w, x.dtype) not in maps:
            a, ho, wo = position_map(conv, h, w)
            maps[h, w, x.dtype] = a.to(x.dtype), ho, wo
        a, ho, wo = maps[h, w, x.dtype]
        taps, p_out, _ = a.shape
        mat = (conv.weight.view(c, taps) @ a.view(taps, -1)).view(c, p_out, h * w)  # (C, P_out, P_in)
        y = torch.bmm(x.reshape(n, c, h * w).transpose(0, 1), mat.transpose(1, 2))  # (C, N, P_out)
        y = y.transpose(0, 1).reshape(n, c, ho, wo)
        return y if conv.bias is None else y + conv.bias.view(1, c, 1, 1)

    return forward


@contextlib.contextmanager
def dense_depthwise(module: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Run ``module``'s depthwise convolutions as batched matmuls on small CPU maps; yields how many were patched."""
    convs = [m for m in module.modules() if is_depthwise(m)] if enabled else []
    patched = []
    try:
        for conv in convs:
            original = conv.forward
            conv.forward = _dense_forward(conv, original, {})
            patched.append(conv)
        yield len(patched)
    finally:
        for conv in patched:
            del conv.forward  # back to the class's method
