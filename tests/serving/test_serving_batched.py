"""Same-range branches run stacked (BatchNorm folded, batched matmuls) give the loop's logits; the stack
grows by one concatenation per unit, never one per task."""

from __future__ import annotations

import pytest
import torch

from forkpoint.learner import Branch, MultiTaskModel
from forkpoint.learner.backbone import load_backbone
from forkpoint.learner.stacked import stack_blocks

RANGES = [(15, 16), (13, 16), (16, 16), (14, 16), (12, 14), (0, 1), (1, 4), (3, 5)]  # strided, skip and no-skip units


def _perturbed(bb, start: int, stop: int, classes: int, seed: int, siamese: bool = False) -> Branch:
    """A branch as training leaves it: its own weights and BatchNorm statistics, not the trunk's."""
    br = Branch.new(bb, start, stop, classes, siamese=siamese, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in br.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
        for m in br.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.add_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.mul_(1.0 + torch.rand(m.running_var.shape, generator=gen))
    return br


@pytest.fixture(scope="module")
def model() -> MultiTaskModel:
    bb = load_backbone(resolution=32)
    m = MultiTaskModel(bb)
    for k in range(24):
        start, stop = RANGES[k % len(RANGES)]
        classes = 3 + k % 4
        m.add(f"t{k}", _perturbed(bb, start, stop, classes, k, siamese=k == 9), [str(i) for i in range(classes)])
    return m.eval()


def test_stacked_groups_match_the_loop_and_each_task_alone(model):
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    alone = model.forward_each(x)
    loop = model(x, batched=False)
    stacked = model(x)
    assert stacked.keys() == loop.keys() == alone.keys()
    for t in alone:
        torch.testing.assert_close(loop[t], alone[t], atol=1e-5, rtol=0)
        torch.testing.assert_close(stacked[t], alone[t], atol=1e-4, rtol=0)
    # every same-range group of this model was really stacked (a None here would silently mean "the loop")
    groups = {}
    for t, br in model.branches.items():
        if not br.spec.is_probe:
            groups.setdefault((br.spec.start, br.spec.stop), []).append(t)
    for (start, stop), names in groups.items():
        assert stack_blocks(model.backbone, [model.branches[t] for t in names], start, stop) is not None, (start, stop)


def test_a_subset_and_a_batch_of_one_match_too(model):
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    names = ["t1", "t9", "t17", "t3"]  # 13:16 three times (one Siamese), a 14:16
    alone = model.forward_each(x, tasks=names)
    got = model(x, tasks=names)
    for t in names:
        torch.testing.assert_close(got[t], alone[t], atol=1e-4, rtol=0)


def test_the_stack_is_concatenated_once_per_unit_not_once_per_task(model, monkeypatch):
    calls = []
    real = torch.cat

    def counting(tensors, *a, **kw):
        calls.append(len(tensors))
        return real(tensors, *a, **kw)

    x = torch.randn(2, 3, 32, 32)
    monkeypatch.setattr(torch, "cat", counting)
    model(x)
    n_units = model.backbone.num_blocks
    assert len(calls) <= 2 * (n_units + 1), calls  # the stack: once per unit; a Siamese head: one more


def test_tasks_on_their_own_images_only(model):
    """A micro-batch of requests for different tasks: each task runs on its requests' images, answers unchanged."""
    from forkpoint.learner.forkpass import shared_pass

    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    rows = {"t1": (0, 1), "t17": (0, 1), "t9": (2,), "t2": (3,), "t3": None}  # t17 shares t1's range and rows
    names = list(rows)
    got = shared_pass(model.backbone, {t: model.branches[t] for t in names}, x, model.stacked, rows)
    alone = model.forward_each(x, tasks=names)
    for t, sel in rows.items():
        want = alone[t] if sel is None else alone[t][list(sel)]
        torch.testing.assert_close(got[t], want, atol=1e-4, rtol=0)
