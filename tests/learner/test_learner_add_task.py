"""Adding tasks on real data: profile, greedy selection, training, and the no-forgetting invariant."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from forkpoint.contract.branch import UnitRange
from forkpoint.learner import AddTaskConfig, Branch, LabeledImages, MultiTaskModel, SelectionConfig, TaskData, TrainConfig, add_task
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.data import to_input
from forkpoint.contract.errors import ConfigError, DataError, ForgettingError
from forkpoint.learner.invariants import FrozenGuard
from forkpoint.learner.train import fit

FAST = AddTaskConfig(
    profile=TrainConfig(epochs=1, patience=0),
    train=TrainConfig(epochs=3, patience=2),
    selection=SelectionConfig(max_blocks=2, max_extra_cost=40.0),
    candidates=UnitRange(12, 16),
    device="cpu",
    cv_skip_z=float("inf"),  # these tests exercise the cross-validation itself: never skipped
)


def _inputs(bb, data):
    return to_input(data.test.images, bb.resolution, bb.mean, bb.std)


def test_add_two_tasks_forgets_nothing(lite0_32, digits_012, digits_789, tmp_path):
    model = MultiTaskModel(lite0_32)
    r1 = add_task(model, "low-digits", digits_012, FAST, plot_dir=tmp_path)
    x1 = _inputs(lite0_32, digits_012)
    before = model(x1)["low-digits"].clone()
    fps = model.fingerprints()

    r2 = add_task(model, "high-digits", digits_789, FAST)
    after = model(x1)
    assert torch.equal(after["low-digits"], before)  # bit-identical old-task logits
    assert {k: v for k, v in model.fingerprints().items() if k in fps} == fps
    assert model.tasks == ["low-digits", "high-digits"]

    # the probe and every candidate were scored, greedy stayed within budgets, selection used validation only
    assert [c.stage for c in r1.profile][0] == "probe" and r1.profile[0].start == r1.profile[0].stop == 16
    assert [c.start for c in r1.profile if c.stage == "profile"] == [12, 13, 14, 15]
    stages = [c.stage for c in r1.greedy]
    assert set(stages) <= {"greedy", "lr x3", "final", "cv", "cv-probe"} and "final" in stages
    # the chosen branch was also tried at 3x its rates on the profile's schedule, just before its final training
    tried = [c for c in r1.greedy if c.stage == "lr x3"]
    assert len(tried) == 1 and stages.index("lr x3") == stages.index("final") - 1
    final = next(c for c in r1.greedy if c.stage == "final")
    assert (tried[0].start, tried[0].stop) == (final.start, final.stop)
    assert r1.spec.stop - r1.spec.start <= 2 and r1.extra_cost_pct <= 40.0
    # tiny validation split (14 images): branch vs probe was cross-validated over train + val
    assert stages[-2:] == ["cv", "cv-probe"] and r1.greedy[-1].val_correct.numel() == 90
    mine, probe = r1.greedy[-2], r1.greedy[-1]
    if r1.spec.start < r1.spec.stop:  # a branch was served: it beat the probe
        assert mine.val_acc > probe.val_acc
    else:
        assert any("probe" in n for n in r1.notes)
    assert r1.split_sizes["val"] > 0 and r1.split_sizes["test"] == len(digits_012.test.labels)
    assert (tmp_path / "low-digits-profile.png").stat().st_size > 1000
    # real weights + real digits: far better than chance (1/3)
    assert r1.test_acc > 0.7 and r2.test_acc > 0.7
    preds = after["high-digits"].argmax(1)
    assert preds.shape == (len(digits_012.test.labels),)


def test_fixed_branch_siamese_and_determinism(lite0_32, digits_012):
    cfg = AddTaskConfig(train=TrainConfig(epochs=2, patience=0), branch=UnitRange(14, 16), siamese=True, device="cpu")
    a, b = MultiTaskModel(lite0_32), MultiTaskModel(lite0_32)
    ra = add_task(a, "t", digits_012, cfg)
    rb = add_task(b, "t", digits_012, cfg)
    assert (ra.spec.start, ra.spec.stop, ra.spec.siamese) == (14, 16, True)
    assert ra.profile == [] and ra.greedy == []
    assert a.fingerprints()["task:t"] == b.fingerprints()["task:t"]  # seeded and deterministic on CPU
    assert a.branches["t"].head.in_features == 2 * lite0_32.num_features


def test_streaming_matches_cached_activations(lite0_32, digits_012):
    cfg = AddTaskConfig(train=TrainConfig(epochs=2, patience=0), branch=UnitRange(13, 14), device="cpu")
    cached, streamed = MultiTaskModel(lite0_32), MultiTaskModel(lite0_32)
    add_task(cached, "t", digits_012, cfg)
    add_task(streamed, "t", digits_012, AddTaskConfig(**{**cfg.__dict__, "cache_budget_mb": 0.001}))
    x = _inputs(lite0_32, digits_012)
    torch.testing.assert_close(cached(x)["t"], streamed(x)["t"], rtol=1e-4, atol=1e-4)


def test_default_profile_covers_exactly_the_affordable_units(lite0_32):
    from forkpoint.learner.task import profile_candidates

    units = profile_candidates(lite0_32, AddTaskConfig(selection=SelectionConfig(max_extra_cost=30.0)))
    assert units == [i for i in range(16) if lite0_32.extra_cost_pct(i) <= 30.0]
    assert units and units[-1] == 15 and lite0_32.extra_cost_pct(units[0] - 1) > 30.0
    assert profile_candidates(lite0_32, AddTaskConfig(candidates=UnitRange(0, 16))) == list(range(16))


def test_prefix_cache_reuses_work_across_depths(lite0_32, digits_012):
    x = to_input(digits_012.train.images, 32, lite0_32.mean, lite0_32.std)
    cache = PrefixCache(lite0_32, x, torch.device("cpu"))
    cache.at(10)
    cache.at(12)
    assert cache.unit_passes == len(x) * 12  # depth 12 advanced from depth 10, not from the stem
    off = PrefixCache(lite0_32, x, torch.device("cpu"), enabled=False)
    assert off.at(12) is None


def test_training_a_shared_block_is_caught(digits_012):
    """If someone trains the trunk's own block (not a copy), the invariant check fails loudly."""
    from forkpoint.learner import load_backbone

    bb = load_backbone(resolution=32)  # its own copy: this test damages the trunk on purpose
    model = MultiTaskModel(bb)
    guard = FrozenGuard(model)
    shared_block = bb.units[15].block
    rogue = Branch(Branch.new(bb, 15, 16, 3).spec, [shared_block], torch.nn.Linear(bb.num_features, 3))
    x = to_input(digits_012.train.images, 32, bb.mean, bb.std)
    y = torch.as_tensor(digits_012.train.labels)
    for p in shared_block.parameters():
        p.requires_grad_(True)
    caches = (PrefixCache(bb, x, torch.device("cpu")), y, PrefixCache(bb, x, torch.device("cpu")), y)
    fit(bb, rogue, *caches, TrainConfig(epochs=1, patience=0))
    with pytest.raises(ForgettingError, match="trunk"):
        guard.check()


def _task(images, labels, names=("a", "b")):
    return TaskData(list(names), LabeledImages(images, labels))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: _task(d.train.images, np.zeros(len(d.train.labels), np.int64), ["only"]), "at least 2 classes"),
        (lambda d: _task(d.train.images, np.where(d.train.labels == 2, 0, d.train.labels), ["a", "b", "c"]), "'c' has no training images"),
        (lambda d: _task(d.train.images, d.train.labels + 5, ["a", "b", "c"]), "outside 0..2"),
        (lambda d: _task(d.train.images, d.train.labels.astype(np.float64) + 0.5, ["a", "b", "c"]), "not class indices"),
        (lambda d: _task(d.train.images.astype(np.float32) * np.nan, d.train.labels, ["a", "b", "c"]), "NaN"),
        (lambda d: _task(d.train.images[[0, 40, 80]], d.train.labels[[0, 40, 80]], ["a", "b", "c"]), "too few for a validation split"),
        (lambda d: _task(d.train.images[:5], d.train.labels, ["a", "b", "c"]), "labels"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_added(lite0_32, digits_012, make, message):
    model = MultiTaskModel(lite0_32)
    fps = model.fingerprints()
    with pytest.raises(DataError, match=message):
        add_task(model, "bad", make(digits_012), FAST)
    assert model.tasks == [] and model.fingerprints() == fps


def test_bad_options_are_refused(lite0_32, digits_012):
    model = MultiTaskModel(lite0_32)
    with pytest.raises(ConfigError, match="invalid task name"):
        add_task(model, "../escape", digits_012, FAST)
    with pytest.raises(ConfigError, match="not a unit range"):
        add_task(model, "t", digits_012, AddTaskConfig(branch=UnitRange(3, 99)))
    with pytest.raises(ConfigError, match="UnitRange"):
        AddTaskConfig(branch=(3, 4))
    with pytest.raises(ConfigError, match="budget"):
        add_task(model, "t", digits_012, AddTaskConfig(**{**FAST.__dict__, "selection": SelectionConfig(max_extra_cost=1.0)}))
    with pytest.raises(ConfigError, match="no block fits the extra-cost budget"):
        add_task(model, "t", digits_012, AddTaskConfig(selection=SelectionConfig(max_extra_cost=1.0)))
    assert model.tasks == []


def test_the_probe_is_served_when_no_branch_beats_it(lite0_32, digits_012):
    """With a margin no branch can clear, selection keeps the linear probe: head only, no tuned units."""
    cfg = AddTaskConfig(**{**FAST.__dict__, "selection": SelectionConfig(max_blocks=1, max_extra_cost=40.0, eps=1.0)})
    model = MultiTaskModel(lite0_32)
    r = add_task(model, "t", digits_012, cfg)
    assert (r.spec.start, r.spec.stop) == (16, 16) and r.extra_cost_pct == 0.0
    assert "final" in [c.stage for c in r.greedy] and any("serving the probe" in n for n in r.notes)
    assert r.trainable_params == 3 * (lite0_32.num_features + 1)
    probe = r.profile[0]
    assert probe.stage == "probe" and r.val_acc == probe.val_acc
    # served through the shared pass like any branch
    x = _inputs(lite0_32, digits_012)
    assert model(x)["t"].shape == (len(x), 3)


def test_fixed_probe_branch_from_the_contract(lite0_32, digits_012):
    r = add_task(MultiTaskModel(lite0_32), "t", digits_012, AddTaskConfig(branch=UnitRange.probe(16), device="cpu"))
    assert (r.spec.start, r.spec.stop) == (16, 16) and r.test_acc > 0.7


def test_cross_validation_is_skipped_only_when_validation_is_already_clear(lite0_32, digits_012):
    """cv_skip_z=0: a branch ahead of the probe on validation at all needs no folds; one that is not still gets them."""
    from dataclasses import replace

    r = add_task(MultiTaskModel(lite0_32), "digits", digits_012, replace(FAST, cv_skip_z=0.0))
    stages = [c.stage for c in r.greedy]
    final = next(c for c in r.greedy if c.stage == "final")
    probe = next(c for c in r.profile if c.stage == "probe")
    if final.val_acc - probe.val_acc > FAST.selection.eps:
        assert "cv" not in stages and any("no cross-validation needed" in n for n in r.notes)
        assert r.spec.start < r.spec.stop  # the branch is served
    else:
        assert stages[-2:] == ["cv", "cv-probe"]
