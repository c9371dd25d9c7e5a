"""Same-range branches as one computation: BatchNorm folded into the convolutions, weights stacked.

G tasks whose branches tune the same units ``[start, stop)`` run the same block types with
different weights on the same input. A Python loop pays G times the per-call overhead; here
each convolution of the G copies becomes one call: every 1x1 convolution one batched matmul (the first on
the trunk activation all G share), every depthwise one a few channels-last multiply-adds over all G
copies at once. Each
BatchNorm (eval mode: an affine map) is folded into the convolution before it, so a block is
3 calls whatever G is. Results equal the loop to float32 rounding (the tests check 1e-4 on logits).

Only block types whose forward is known exactly are stacked (timm's EfficientNet/MobileNet
``InvertedResidual`` and ``DepthwiseSeparableConv`` without squeeze-excite); anything else
answers ``None`` from :func:`stack_blocks` and the caller runs its loop.
(``torch.func.stack_module_state`` + ``vmap`` also works for any block, but measured only
1.1-1.6x over the loop on CPU: it still runs BatchNorm and one kernel per op per copy.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from forkpoint.learner.backbone import Backbone

# block type name -> (conv, norm) attribute pairs in forward order
RECIPES: dict[str, tuple[tuple[str, str], ...]] = {
    "InvertedResidual": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
    "DepthwiseSeparableConv": (("conv_dw", "bn1"), ("conv_pw", "bn2")),
}
MUST_BE_IDENTITY = ("aa", "se", "drop_path")
ELEMENTWISE = (nn.Identity, nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh,
               nn.LeakyReLU, nn.ELU, nn.Mish)


@dataclass
class _Conv:
    """One convolution of G branches with BatchNorm folded in, on channels-last activations ``(G, B, H, W, C)``.

    A 1x1 convolution is a batched matmul (``weight`` (G, C_in, C_out)); a depthwise one a sum of
    shifted, per-channel scaled slices (``weight`` (G, k, k, C)), skipping taps that only ever read
    padding. Both beat one grouped ``conv2d`` by far on CPU at the small sizes a late fork sees
    (oneDNN re-lays out a grouped kernel's weights on every call)."""

    kind: str  # "pointwise" or "depthwise"
    weight: torch.Tensor
    bias: torch.Tensor  # (G, 1, C_out) for pointwise, (G, 1, 1, 1, C) for depthwise
    stride: tuple[int, int]
    padding: tuple[int, int] | None  # None: timm's TF "same" padding, computed from the input size
    dilation: tuple[int, int]
    act: nn.Module | None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (G, B, H, W, C), or (1, B, H, W, C) for the trunk's activation shared by all G copies."""
        y = self._pointwise(x) if self.kind == "pointwise" else self._depthwise(x)
        return self.act(y) if self.act is not None else y

    def _pointwise(self, x: torch.Tensor) -> torch.Tensor:
        g, shape = self.weight.shape[0], x.shape
        flat = x.reshape(shape[0], -1, shape[-1])
        if shape[0] == 1:
            flat = flat.expand(g, -1, -1)
        return torch.baddbmm(self.bias, flat, self.weight).view(g, *shape[1:-1], self.weight.shape[-1])

    def _depthwise(self, x: torch.Tensor) -> torch.Tensor:
        g, c = self.weight.shape[0], self.weight.shape[-1]
        k_h, k_w = self.weight.shape[1], self.weight.shape[2]
        (s_h, s_w), (d_h, d_w), (h, w) = self.stride, self.dilation, x.shape[2:4]
        (top, bottom), (left, right) = [_pad(n, k, s, d, p) for n, k, s, d, p in zip(
            (h, w), (k_h, k_w), self.stride, self.dilation, self.padding or (None, None))]
        out_h = (h + top + bottom - d_h * (k_h - 1) - 1) // s_h + 1
        out_w = (w + left + right - d_w * (k_w - 1) - 1) // s_w + 1
        y = self.bias.expand(g, x.shape[1], out_h, out_w, c).clone()
        for i in range(k_h):
            rows = _window(i * d_h - top, s_h, h, out_h)
            for j in range(k_w):
                cols = _window(j * d_w - left, s_w, w, out_w)
                if rows is None or cols is None:  # this tap only ever reads padding
                    continue
                (o0, o1, i0, i1), (p0, p1, j0, j1) = rows, cols
                y[:, :, o0:o1, p0:p1] += x[:, :, i0:i1:s_h, j0:j1:s_w] * self.weight[:, i, j].reshape(-1, 1, 1, 1, c)
        return y


def _window(offset: int, stride: int, n_in: int, n_out: int) -> tuple[int, int, int, int] | None:
    """Outputs ``[o0, o1)`` whose input ``o * stride + offset`` lies inside ``[0, n_in)``, and that input's slice bounds."""
    o0 = max(0, (-offset + stride - 1) // stride)
    o1 = min(n_out, (n_in - 1 - offset) // stride + 1)
    if o1 <= o0:
        return None
    return o0, o1, o0 * stride + offset, (o1 - 1) * stride + offset + 1


def _pad(n: int, k: int, s: int, d: int, p: int | None) -> tuple[int, int]:
    """Zero padding before and after one spatial dimension (``p`` None: TF "same", as timm's Conv2dSame)."""
    if p is not None:
        return p, p
    total = max((-(n // -s) - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def _folded(conv: nn.Conv2d, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    bias = (bias - bn.running_mean) * scale
    if bn.bias is not None:
        bias = bias + bn.bias
    return conv.weight * scale.reshape(-1, 1, 1, 1), bias


def _act_of(bn: nn.Module) -> nn.Module | None | bool:
    """The activation a timm BatchNormAct2d applies after normalising (None: plain BatchNorm; False: unsupported)."""
    drop, act = getattr(bn, "drop", None), getattr(bn, "act", None)
    if drop is not None and not isinstance(drop, (nn.Identity, nn.Dropout)):
        return False
    if act is None:
        return None
    return act if isinstance(act, ELEMENTWISE) else False


def _stackable(block: nn.Module) -> bool:
    recipe = RECIPES.get(type(block).__name__)
    if recipe is None or getattr(block, "conv_s2d", None) is not None:
        return False
    if any(not isinstance(getattr(block, a, nn.Identity()), nn.Identity) for a in MUST_BE_IDENTITY):
        return False
    for conv_name, bn_name in recipe:
        conv, bn = getattr(block, conv_name, None), getattr(block, bn_name, None)
        if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.modules.batchnorm._BatchNorm):
            return False
        if conv.padding_mode != "zeros" or not bn.track_running_stats or bn.running_var is None or _act_of(bn) is False:
            return False
        if _kind(conv) is None or isinstance(conv.padding, str):
            return False
    return True


def _kind(conv: nn.Conv2d) -> str | None:
    if conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1:
        return "pointwise"
    if conv.groups == conv.in_channels == conv.out_channels:
        return "depthwise"
    return None


class StackedBlocks:
    """G branches' tuned copies of units ``[start, stop)``, run as one computation.

    ``run(h)`` takes the trunk's input of unit ``start`` (B rows, shared by all G tasks) and
    returns their outputs of unit ``stop - 1`` stacked task-major: rows ``[k*B, (k+1)*B)`` are
    task k's, exactly as ``torch.cat`` of the loop's outputs would lay them out."""

    def __init__(self, convs: list[list[_Conv]], skips: list[bool], g: int) -> None:
        self.convs = convs  # per unit, its convolutions in order
        self.skips = skips
        self.g = g
        self.nbytes = sum(t.numel() * t.element_size() for unit in convs for c in unit for t in (c.weight, c.bias))

    @torch.no_grad()
    def run(self, h: torch.Tensor) -> torch.Tensor:
        b = h.shape[0]
        x = h.permute(0, 2, 3, 1).unsqueeze(0)  # (1, B, H, W, C): channels last, shared by the G copies
        for unit, skip in zip(self.convs, self.skips):
            y = x
            for conv in unit:
                y = conv(y)
            x = y + x if skip else y  # the first unit's skip broadcasts the shared input
        g, c = x.shape[0], x.shape[-1]
        return x.permute(0, 1, 4, 2, 3).reshape(g * b, c, *x.shape[2:4])


def _stacked_conv(convs: list[nn.Conv2d], bns: list[nn.Module]) -> _Conv:
    ref, folded = convs[0], [_folded(c, bn) for c, bn in zip(convs, bns)]
    kind = _kind(ref)
    if kind == "pointwise":  # (C_out, C_in, 1, 1) -> (G, C_in, C_out)
        weight = torch.stack([w[:, :, 0, 0].t() for w, _ in folded])
        bias = torch.stack([b for _, b in folded]).unsqueeze(1)
    else:  # (C, 1, k, k) -> (G, k, k, C)
        weight = torch.stack([w[:, 0].permute(1, 2, 0) for w, _ in folded])
        bias = torch.stack([b for _, b in folded]).reshape(len(convs), 1, 1, 1, -1)
    padding = None if type(ref).__name__ == "Conv2dSame" else tuple(ref.padding)
    return _Conv(kind, weight.contiguous(), bias.contiguous(), tuple(ref.stride), padding, tuple(ref.dilation),
                 _act_of(bns[0]) or None)


def stack_blocks(backbone: Backbone, branches: list, start: int, stop: int) -> StackedBlocks | None:
    """The G branches' units ``[start, stop)`` stacked, or None when a unit's type cannot be stacked exactly."""
    if not branches or stop <= start:
        return None
    convs: list[list[_Conv]] = []
    skips: list[bool] = []
    for i in range(start, stop):
        if backbone.units[i].entry is not None:
            return None
        blocks = [br.blocks[i - start] for br in branches]
        if not all(type(b) is type(blocks[0]) and _stackable(b) for b in blocks):
            return None
        convs.append([_stacked_conv([getattr(b, c) for b in blocks], [getattr(b, n) for b in blocks])
                      for c, n in RECIPES[type(blocks[0]).__name__]])
        skips.append(bool(getattr(blocks[0], "has_skip", False)))
    return StackedBlocks(convs, skips, len(branches))
