"""Depthwise convolutions as matmuls (learner.densedw): the same function and gradients, only while training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from forkpoint.learner.branch import Branch
from forkpoint.learner.densedw import MAX_POSITIONS, dense_depthwise, is_depthwise


def _convs():
    from timm.layers import create_conv2d

    yield nn.Conv2d(12, 12, 3, padding=1, groups=12, bias=False)
    yield nn.Conv2d(12, 12, 5, stride=2, padding=2, groups=12, bias=True)
    yield create_conv2d(12, 12, 5, stride=2, padding="same", depthwise=True)  # timm's TF "same": asymmetric pad
    yield create_conv2d(12, 12, 3, stride=1, padding="same", depthwise=True)


@pytest.mark.parametrize("size", [2, 3, 4, 7, 8])
def test_matmul_form_matches_the_convolution(size):
    torch.manual_seed(size)
    for conv in _convs():
        assert is_depthwise(conv)
        x = torch.randn(5, 12, size, size, requires_grad=True)
        ref = conv(x)
        g_ref = torch.autograd.grad(ref.square().sum(), [x, conv.weight])
        with dense_depthwise(conv) as patched:
            assert patched == 1
            out = conv(x)
            g = torch.autograd.grad(out.square().sum(), [x, conv.weight])
        assert out.shape == ref.shape, type(conv).__name__
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        for a, b in zip(g, g_ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_scores_and_large_maps_run_the_convolution_itself():
    conv = nn.Conv2d(6, 6, 3, padding=1, groups=6)
    small, large = torch.randn(2, 6, 4, 4), torch.randn(2, 6, 9, 9)
    assert 9 * 9 > MAX_POSITIONS
    ref_small, ref_large = conv(small), conv(large)
    with dense_depthwise(conv):
        with torch.no_grad():
            assert torch.equal(conv(small), ref_small)  # bit for bit: what is scored is what is served
        assert torch.equal(conv(large), ref_large)
    assert "forward" not in vars(conv)  # the class's method again


def test_a_branch_trains_to_the_same_gradients(lite0_32):
    """Lite0's late units at 32 px (1x1 maps) and their earlier 2x2 ones: same loss and gradients either way."""
    bb = lite0_32
    torch.manual_seed(0)
    x = torch.randn(6, 3, 32, 32)
    start = bb.num_blocks - 3
    with torch.no_grad():
        h = bb.prefix(x, start)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    grads = []
    for dense in (False, True):
        branch = Branch.new(bb, start, bb.num_blocks, 3)
        branch.adapt_batchnorm(True)
        with dense_depthwise(branch, dense) as patched:
            assert (patched > 0) == dense
            loss = F.cross_entropy(branch.logits(branch.features(bb, h)), y)
            grads.append(torch.autograd.grad(loss, [p for p in branch.parameters()]))
        assert all("forward" not in vars(m) for m in branch.modules())
    scale = max(float(g.abs().max()) for g in grads[0])
    for a, b in zip(*grads):  # float rounding only: within 1e-4 of the largest gradient
        assert float((a - b).abs().max()) <= 1e-4 * scale
