"""The Avalanche-side models: multi-head padding, frozen per-task copies, what a task costs; and the
baselines the harness shares with the benchmarks give the same numbers through Avalanche as called directly."""

from __future__ import annotations

import pytest
import torch

from forkpoint.imagedata import limit_per_class, load_dataset, subset_classes
from forkpoint.learner import baselines
from forkpoint.learner.data import to_input
from forkpoint.learner.train import accuracy
from forkpoint.learner.methods import train_full_finetune
from forkpoint.scenarios.baselines import train_val
from forkpoint.scenarios.benchmark import build_benchmark
from forkpoint.scenarios.models import PAD_LOGIT, SharedTrunkMultiHead
from forkpoint.scenarios.runner import RunConfig, run_stream
from forkpoint.scenarios.streams import Stream, StreamOptions, StreamTask


def _mixed_stream() -> Stream:
    """Two real digit tasks with different head widths (2 and 3 classes)."""
    digits = limit_per_class(load_dataset("digits"), 4, n_test=10)
    return Stream("custom", [StreamTask("custom.two", subset_classes(digits, [0, 1], "two")),
                             StreamTask("custom.three", subset_classes(digits, [7, 8, 9], "three"))],
                  StreamOptions(per_class=4, test_per_class=10))


def _adapt(model, benchmark):
    """What Avalanche does before training each experience (in train mode): grow the model for it."""
    model.train()
    for exp in benchmark.train_stream:
        model.pre_adapt(None, exp)
    model.eval()


def test_narrow_heads_are_padded_so_they_never_win(lite0_32):
    bm = build_benchmark(_mixed_stream(), lite0_32)
    model = SharedTrunkMultiHead(lite0_32)
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
    trunk = sum(p.numel() for p in lite0_32.parameters())
    assert model.task_cost(1).trainable_params == trunk + 1280 * 3 + 3  # the shared trunk trains too
    assert model.task_cost(1).stored_bytes == pytest.approx((1280 * 3 + 3) * 4, abs=64)  # only the head is the task's own


def test_a_mixed_replay_batch_runs_the_shared_trunk_once(lite0_32):
    bm = build_benchmark(_mixed_stream(), lite0_32)
    model = SharedTrunkMultiHead(lite0_32)
    _adapt(model, bm)
    calls = []
    model.trunk.model.conv_stem.register_forward_hook(lambda *a: calls.append(1))
    x = torch.cat([bm.train_stream[0].dataset[i][0][None] for i in range(3)] + [bm.train_stream[1].dataset[i][0][None] for i in range(3)])
    model.train()
    out = model(x, torch.tensor([0, 0, 0, 1, 1, 1]))
    assert len(calls) == 1  # one trunk pass over the whole mixed batch
    assert out.shape == (6, 3) and (out[:3, 2] == PAD_LOGIT).all()
    bn = [m for m in model.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    drop = [m for m in model.trunk.modules() if isinstance(m, torch.nn.Dropout)] + [model.trunk.model]  # timm's head dropout
    assert bn and all(m.training for m in bn) and not any(m.training for m in drop)  # batch statistics, no dropout


def test_linear_and_full_give_the_learners_numbers_through_avalanche(tmp_path, lite0_32):
    """The stream's linear and full baselines are learner.methods' (the benchmarks' code): same images,
    same config (full: its rate picked on validation, trained on the views), same test accuracy; full
    finetuning keeps a frozen copy per task and never touches the trunk."""
    stream = _mixed_stream()
    config = RunConfig(strategies=("linear", "full"), resolution=32, epochs=1, batch_size=8, device="cpu")
    outcome = run_stream(stream, config, tmp_path, backbone=lite0_32)
    by = {r.strategy: r for r in outcome.results}
    cfg, device = config.baseline(), torch.device("cpu")
    trunk = sum(p.numel() for p in lite0_32.parameters())
    for j, task in enumerate(stream.tasks):
        train, val = train_val(task, lite0_32, cfg)
        x_test = to_input(task.dataset.test.images, 32, lite0_32.mean, lite0_32.std)
        y_test = torch.as_tensor(task.dataset.test.labels)
        branch, _ = baselines.fit_linear_probe(lite0_32, len(task.class_names), train, val)
        with torch.no_grad():
            probe_acc = accuracy(branch.logits(lite0_32(x_test)).argmax(1), y_test)
        model, searched = train_full_finetune(lite0_32, len(task.class_names), train, val, cfg.recipe, device)
        fit = searched.fit
        recorded = by["full"].selection["lr_per_task"][j]
        assert recorded["lr"] == searched.choice.lr and len(recorded["trials"]) == 3
        assert [(t["lr"], t["val_acc"], t["val_loss"]) for t in recorded["trials"]] == [
            (t.lr, t.val_acc, t.val_loss) for t in searched.choice.trials]  # the same trials, the same choice
        full_acc = accuracy(baselines.predict(model, x_test, device), y_test)
        # float64 (Avalanche) vs float32 means of the same predictions; one image differs by >= 1/len(test)
        assert by["linear"].acc_matrix[j][j] == pytest.approx(probe_acc, abs=1e-6), task.name
        assert by["full"].acc_matrix[j][j] == pytest.approx(full_acc, abs=1e-6), task.name
        assert by["full"].trainable_params[j] == fit.trainable_params > trunk
        assert by["linear"].trainable_params[j] == 1280 * len(task.class_names) + len(task.class_names)
    # earlier copies and probes are frozen: the first task's accuracy does not move
    for name in ("linear", "full"):
        assert by[name].acc_matrix[1][0] == by[name].acc_matrix[0][0] and by[name].forgetting == 0.0
    assert all(not p.requires_grad for p in lite0_32.parameters())
