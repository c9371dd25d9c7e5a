"""The Avalanche-side models: multi-head padding, frozen per-task copies, what a task costs."""

from __future__ import annotations

import torch

from forkpoint.imagedata import limit_per_class, load_dataset, subset_classes
from forkpoint.scenarios.benchmark import build_benchmark
from forkpoint.scenarios.models import PAD_LOGIT, PerTaskFullModels, SharedTrunkMultiHead, module_bytes
from forkpoint.scenarios.streams import Stream, StreamOptions, StreamTask


def _mixed_stream() -> Stream:
    """Two real digit tasks with different head widths (2 and 3 classes)."""
    digits = limit_per_class(load_dataset("digits"), 4, n_test=2)
    return Stream("custom", [StreamTask("custom.two", subset_classes(digits, [0, 1], "two")),
                             StreamTask("custom.three", subset_classes(digits, [7, 8, 9], "three"))],
                  StreamOptions(per_class=4, test_per_class=2))


def _adapt(model, benchmark):
    """What Avalanche does before training each experience (in train mode): grow the model for it."""
    model.train()
    for exp in benchmark.train_stream:
        model.pre_adapt(None, exp)
    trained_modes = {name: m.training for name, m in getattr(model, "models", {}).items()}
    model.eval()
    return trained_modes


def test_narrow_heads_are_padded_so_they_never_win(lite0_32):
    bm = build_benchmark(_mixed_stream(), lite0_32)
    model = SharedTrunkMultiHead(lite0_32, trainable=False)
    _adapt(model, bm)
    x = torch.cat([bm.test_stream[0].dataset[i][0][None] for i in range(2)] + [bm.test_stream[1].dataset[i][0][None] for i in range(2)])
    labels = torch.tensor([0, 0, 1, 1])
    with torch.no_grad():
        out = model(x, labels)
        alone = {t: model.forward_single_task(x[labels == t], t) for t in (0, 1)}
    assert out.shape == (4, 3)
    assert torch.equal(out[:2, :2], alone[0]) and torch.equal(out[2:], alone[1])
    assert (out[:2, 2] == PAD_LOGIT).all()
    assert set(out[:2].argmax(1).tolist()) <= {0, 1}
    both = model.infer_all(x)
    assert sorted(both) == [0, 1] and both[0].shape == (4, 2) and both[1].shape == (4, 3)
    assert model.task_cost(1).trainable_params == 1280 * 3 + 3  # the probe trains a head only


def test_a_mixed_replay_batch_runs_the_shared_trunk_once(lite0_32):
    bm = build_benchmark(_mixed_stream(), lite0_32)
    model = SharedTrunkMultiHead(lite0_32, trainable=True)
    _adapt(model, bm)
    calls = []
    model.trunk.conv_stem.register_forward_hook(lambda *a: calls.append(1))
    x = torch.cat([bm.train_stream[0].dataset[i][0][None] for i in range(3)] + [bm.train_stream[1].dataset[i][0][None] for i in range(3)])
    model.train()
    out = model(x, torch.tensor([0, 0, 0, 1, 1, 1]))
    assert len(calls) == 1  # BatchNorm normalises the whole mixed batch, as in plain finetuning
    assert out.shape == (6, 3) and (out[:3, 2] == PAD_LOGIT).all()


def test_full_finetuning_keeps_one_frozen_copy_per_task(lite0_32):
    bm = build_benchmark(_mixed_stream(), lite0_32)
    model = PerTaskFullModels(lite0_32)
    modes = _adapt(model, bm)
    assert modes == {"0": True, "1": True}  # a new copy trains in train mode (BatchNorm, dropout) like the first    assert sorted(model.models) == ["0", "1"]
    assert not any(p.requires_grad for p in model.models["0"].parameters())  # task 0 is done
    assert all(p.requires_grad for p in model.models["1"].parameters())
    assert model.models["0"].head.out_features == 2 and model.models["1"].head.out_features == 3
    cost = model.task_cost(1)
    assert cost.trainable_params == sum(p.numel() for p in lite0_32.parameters()) + 1280 * 3 + 3
    assert cost.stored_bytes == module_bytes(model.models["1"])
    # The pristine trunk is not part of the model, and copying it never touched it.
    assert not any(m is lite0_32 for m in model.modules())
    assert all(not p.requires_grad for p in lite0_32.parameters())
