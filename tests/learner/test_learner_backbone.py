"""Backbone cutting: every family splits into stem/units/tail that reproduce timm's own forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from forkpoint.learner.backbone import load_backbone, load_state_dict_by_order
from forkpoint.learner.data import to_input
from forkpoint.contract.errors import ConfigError, UnsupportedModelError


FAMILIES = ["mobilenetv3_small_050", "tf_efficientnet_lite0", "resnet10t", "vit_tiny_patch16_224", "deit_tiny_patch16_224", "convnext_atto"]
EXPECTED_UNITS = {
    "mobilenetv3_small_050": "blocks.5.0",
    "tf_efficientnet_lite0": "blocks.6.0",
    "resnet10t": "layer4.0",
    "vit_tiny_patch16_224": "blocks.11",
    "deit_tiny_patch16_224": "blocks.11",
    "convnext_atto": "stages.3.blocks.1",
}


@pytest.mark.parametrize("name", FAMILIES)
def test_units_reproduce_timm_forward(name, tiny_backbone):
    bb = tiny_backbone(name)
    assert bb.block_names[-1] == EXPECTED_UNITS[name]
    assert len(set(bb.block_names)) == bb.num_blocks >= 4
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = bb(x)
        theirs = bb.model.forward_head(bb.model.forward_features(x), pre_logits=True)
    assert ours.shape == (2, bb.num_features)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["resnet10t", "convnext_atto", "vit_tiny_patch16_224"])
def test_trunk_is_frozen_and_stays_in_eval(name, tiny_backbone):
    bb = tiny_backbone(name)
    assert not any(p.requires_grad for p in bb.parameters())
    bb.train()
    assert not bb.training and not any(m.training for m in bb.modules())


def test_flop_shares_sum_to_one_and_cost_grows_with_earlier_forks(tiny_backbone):
    bb = tiny_backbone("tf_efficientnet_lite0")
    shares = bb.flop_shares(32)
    assert set(shares) == {"stem", "tail", *bb.block_names}
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    costs = [bb.extra_cost_pct(i) for i in range(bb.num_blocks + 1)]
    assert all(a > b for a, b in zip(costs, costs[1:]))
    assert 0 < costs[-1] < costs[0] < 100


def test_fingerprint_is_stable_and_sees_one_changed_value(tiny_backbone):
    bb = tiny_backbone("resnet10t")
    fp = bb.fingerprint()
    assert fp == bb.fingerprint() and len(fp) == 64
    with torch.no_grad():
        next(bb.parameters()).view(-1)[0] += 1e-3
    assert bb.fingerprint() != fp


def test_unsupported_family_names_supported_ones():
    with pytest.raises(UnsupportedModelError, match="ResNet.*ViT.*ConvNeXt"):
        load_backbone("mixer_s16_224")


def test_unknown_arch_is_a_config_error():
    with pytest.raises(ConfigError, match="timm"):
        load_backbone("no_such_model_xyz")


def test_local_weights_file_roundtrip(tmp_path, tiny_backbone):
    from safetensors.torch import save_file

    src = tiny_backbone("resnet10t")
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.model.state_dict().items()}, str(path))
    loaded = load_backbone("resnet10t", weights=path, resolution=32)
    assert loaded.fingerprint() == src.fingerprint()
    assert loaded.weights_source == "file:w.safetensors"
    torch.save(src.model.state_dict(), tmp_path / "w.pt")
    assert load_backbone("resnet10t", weights=tmp_path / "w.pt").fingerprint() == src.fingerprint()


def test_weights_for_another_architecture_are_refused(tmp_path, tiny_backbone):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tiny_backbone("convnext_atto").model.state_dict().items()}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ConfigError, match="architecture"):
        load_backbone("resnet10t", weights=tmp_path / "x.safetensors")
    with pytest.raises(ConfigError, match="does not exist"):
        load_backbone("resnet10t", weights=tmp_path / "missing.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="safetensors"):
        load_backbone("resnet10t", weights=tmp_path / "junk.pt")


def test_order_matching_refuses_shape_mismatch(tiny_backbone):
    bb = tiny_backbone("resnet10t")
    sd = {f"renamed.{i}": v for i, v in enumerate(bb.model.state_dict().values())}
    first = next(iter(sd))
    sd[first] = torch.zeros(1)
    with pytest.raises(ConfigError, match="does not fit"):
        load_state_dict_by_order(bb.model, sd, "test")


@pytest.mark.parametrize("resolution", [224, 96])
def test_embedded_lite0_weights_are_real_imagenet(resolution):
    """Real ImageNet weights, loaded right: the chelsea photo is a cat, the coffee photo an espresso."""
    from skimage import data

    bb = load_backbone(resolution=resolution)
    assert bb.weights_source.startswith("embedded:") and bb.num_blocks == 16
    x = torch.cat([to_input(img[None], resolution, bb.mean, bb.std) for img in (data.chelsea(), data.coffee())])
    with torch.no_grad():
        top5 = bb.classify(x).topk(5).indices
    cats = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert cats & set(top5[0].tolist())
    if resolution == 224:
        assert 967 in top5[1].tolist()  # espresso
