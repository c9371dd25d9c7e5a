"""One shared pass for all tasks equals running each task's own model alone."""

from __future__ import annotations

import pytest
import torch

from forkpoint.learner import Branch, MultiTaskModel
from forkpoint.contract.errors import BranchMismatchError, ConfigError


def _perturbed(branch: Branch, seed: int) -> Branch:
    """Make a branch's tuned copies differ from the trunk, as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in branch.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return branch


def _model_with_branches(bb, layout):
    model = MultiTaskModel(bb)
    for i, (start, stop, siamese) in enumerate(layout):
        br = _perturbed(Branch.new(bb, start, stop, 3 + i, siamese, seed=i), seed=i)
        model.add(f"t{i}", br, [f"c{j}" for j in range(3 + i)])
    return model


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "resnet10t", "vit_tiny_patch16_224", "convnext_atto", "mobilenetv3_small_050"])
def test_shared_pass_equals_each_task_alone(name, tiny_backbone):
    bb = tiny_backbone(name)
    n = bb.num_blocks
    layout = [(n - 1, n, False), (n - 3, n - 1, False), (1, 3, True), (n - 2, n, False), (n, n, False), (1, 2, False)]
    model = _model_with_branches(bb, layout)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    shared, alone = model(x), model.forward_each(x)
    assert set(shared) == {f"t{i}" for i in range(len(layout))}
    for t in shared:
        assert shared[t].shape == (4, model.branches[t].spec.num_classes)
        torch.testing.assert_close(shared[t], alone[t], rtol=0, atol=1e-5)
        assert torch.equal(shared[t].argmax(1), alone[t].argmax(1))
    # a subset of tasks gives the same logits as the full pass
    sub = model(x, tasks=["t1", "t4"])
    torch.testing.assert_close(sub["t1"], shared["t1"], rtol=0, atol=1e-5)


def test_frozen_units_run_once_on_the_stacked_batch(tiny_backbone):
    """After the forks, each frozen unit sees one batch holding every task's activations."""
    bb = tiny_backbone("resnet10t")
    n = bb.num_blocks
    model = _model_with_branches(bb, [(n - 3, n - 2, False), (n - 3, n - 2, False), (n - 2, n - 1, False)])
    seen: list[int] = []
    hook = bb.units[n - 1].block.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    try:
        model(torch.randn(2, 3, 32, 32))
    finally:
        hook.remove()
    assert seen == [2 * 3]  # one call, three tasks' rows stacked (the trunk rows were dropped after the last fork)


def test_stored_branch_roundtrip_and_mismatch(tiny_backbone):
    bb = tiny_backbone("resnet10t")
    br = _perturbed(Branch.new(bb, 2, 4, 5), seed=3)
    again = Branch.from_state(bb, br.spec, br.tensors())
    assert again.tensors().keys() == br.tensors().keys()
    assert all(torch.equal(a, b) for a, b in zip(again.tensors().values(), br.tensors().values()))
    assert not any(p.requires_grad for p in again.parameters())
    wrong_head = type(br.spec)(2, 4, 7, br.spec.feature_dim)
    with pytest.raises(BranchMismatchError, match="7-class head"):
        Branch.from_state(bb, wrong_head, br.tensors())
    with pytest.raises(BranchMismatchError, match="does not fit the trunk"):
        Branch.from_state(bb, type(br.spec)(2, 99, 5, br.spec.feature_dim), br.tensors())
    with pytest.raises(BranchMismatchError, match="features"):
        Branch.from_state(bb, type(br.spec)(2, 4, 5, 17), br.tensors())


def test_model_refuses_unknown_tasks_and_bad_names(tiny_backbone):
    bb = tiny_backbone("resnet10t")
    model = _model_with_branches(bb, [(3, 4, False)])
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        model(torch.randn(1, 3, 32, 32), tasks=["nope"])
    with pytest.raises(ConfigError, match="invalid task name"):
        model.add("Bad/Name", Branch.new(bb, 3, 4, 2), ["a", "b"])
    with pytest.raises(ConfigError, match="already exists"):
        model.add("t0", Branch.new(bb, 3, 4, 3), ["a", "b", "c"])


# family -> (module run once per row block by the stem, module run once per row block by the tail)
STEM_TAIL = {"tf_efficientnet_lite0": ("conv_stem", "conv_head"), "resnet10t": ("conv1", "global_pool")}


def _counted_cost_pct(model: MultiTaskModel, x: torch.Tensor, tasks, stem: str, tail: str) -> float:
    """Run the shared pass with forward hooks on the stem, every unit (trunk and tuned copies) and the
    tail; weight the rows each one really processed by its FLOP share: % of one trunk pass."""
    bb, batch = model.backbone, x.shape[0]
    shares = bb.flop_shares()
    rows = {k: 0 for k in shares}
    watched = [(getattr(bb.model, stem), "stem"), (getattr(bb.model, tail), "tail")]
    watched += [(u.block, u.name) for u in bb.units]
    for br in model.branches.values():
        watched += [(blk, bb.block_names[br.spec.start + j]) for j, blk in enumerate(br.blocks)]

    def counter(key):
        def hook(module, inputs, output):
            rows[key] += inputs[0].shape[0]
        return hook

    handles = [m.register_forward_hook(counter(k)) for m, k in watched]
    try:
        model(x, tasks=tasks, batched=False)  # the per-task form: the stacked one runs the same products in folded kernels the hooks cannot see
    finally:
        for h in handles:
            h.remove()
    return 100.0 * sum(shares[k] * rows[k] / batch for k in shares)


@pytest.mark.parametrize("name", sorted(STEM_TAIL))
def test_cost_model_counts_what_the_shared_pass_runs(name, tiny_backbone):
    """total_cost_pct equals the FLOP-weighted unit executions of a real forward, for every mix of forks."""
    bb = tiny_backbone(name)
    n = bb.num_blocks
    # t0 deep, t1 shallower, t2 shares t0's fork, t3 head only, t4 Siamese, t5 a long shallow run
    model = _model_with_branches(bb, [(n - 1, n, False), (n - 3, n - 2, False), (n - 1, n, False), (n, n, False),
                                      (n - 2, n - 1, True), (1, 4, False)])
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    stem, tail = STEM_TAIL[name]
    subsets = [[], ["t0"], ["t1"], ["t3"], ["t4"], ["t0", "t1"], ["t0", "t2"], ["t1", "t5"], ["t0", "t3"], ["t1", "t4"], None]
    for tasks in subsets:
        counted = _counted_cost_pct(model, x, tasks, stem, tail)
        assert model.total_cost_pct(tasks) == pytest.approx(counted, abs=1e-9), tasks

    suffix = bb.extra_cost_pct
    for t in ("t0", "t1", "t3", "t5"):
        assert model.total_cost_pct([t]) == pytest.approx(100.0)  # one task alone: one pass, nothing extra
    assert model.total_cost_pct(["t4"]) == pytest.approx(100.0 + suffix(n - 2))  # Siamese: its rows and the trunk's to the end
    # forking tasks: the sum of their suffixes minus the deepest fork's, on top of one pass
    assert model.total_cost_pct(["t0", "t1", "t5"]) == pytest.approx(100.0 + suffix(n - 3) + suffix(1))
    assert model.extra_cost_pct(["t0", "t1", "t5"]) == pytest.approx(suffix(n - 3) + suffix(1))
    assert model.total_cost_pct(["t0", "t2"]) == pytest.approx(100.0 + suffix(n - 1))  # same fork: its suffix once more
    # marginal = with minus without, each side a counted pass
    for t, others in (("t0", ["t1"]), ("t1", ["t0", "t5"]), ("t3", ["t1"]), ("t4", ["t0"])):
        with_t = _counted_cost_pct(model, x, others + [t], stem, tail)
        without = _counted_cost_pct(model, x, others, stem, tail)
        assert model.marginal_cost_pct(t, others) == pytest.approx(with_t - without, abs=1e-9), t
    assert model.marginal_cost_pct("t3", ["t0", "t1"]) == pytest.approx(suffix(n - 1))  # a probe keeps the trunk's rows to the end
    assert model.marginal_cost_pct("t0") == pytest.approx(model.total_cost_pct() - model.total_cost_pct(["t1", "t2", "t3", "t4", "t5"]))
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        model.marginal_cost_pct("nope")
