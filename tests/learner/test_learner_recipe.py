"""The training recipe on real data: LP-FT head, probe as a candidate, step floors, channels_last."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from forkpoint.contract.branch import UnitRange
from forkpoint.learner import Branch, MultiTaskModel, TrainConfig, add_task, add_task_config
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.data import to_input
from forkpoint.learner.probe import fit_probe
from forkpoint.learner.profile import Candidate
from forkpoint.learner.select import SelectionConfig, beats, paired_se
from forkpoint.learner.train import fit, logits_of, schedule

TEN = tuple(range(10))


@pytest.fixture(scope="module")
def digits10(digits_task):
    """10 real digit classes, 10 training images each (100 in all), 20 test images per class."""
    return digits_task(TEN, per_class=10, test_per_class=20, seed=3)


def _caches(bb, data):
    x = to_input(data.train.images, bb.resolution, bb.mean, bb.std)
    y = torch.as_tensor(data.train.labels)
    xt = to_input(data.test.images, bb.resolution, bb.mean, bb.std)
    yt = torch.as_tensor(data.test.labels)
    cpu = torch.device("cpu")
    return PrefixCache(bb, x, cpu), y, PrefixCache(bb, xt, cpu), yt


def test_one_epoch_on_100_images_still_clearly_beats_chance(lite0_32, digits10):
    """--epochs 1: the step floor and the probe's head make a short schedule converge anyway."""
    cfg = add_task_config(epochs=1, profile_epochs=1, device="cpu", candidates=UnitRange(14, 16), budget_blocks=2)
    r = add_task(MultiTaskModel(lite0_32), "d", digits10, cfg)
    assert r.test_acc > 0.5, r.test_acc  # chance is 0.1


def test_default_recipe_is_not_below_the_probe(lite0_32, digits10):
    """The probe is a candidate, so SubTuning should not lose to it beyond noise (200 test images: ~3 pts)."""
    probe = add_task(MultiTaskModel(lite0_32), "d", digits10, add_task_config(branch=UnitRange.probe(16), device="cpu"))
    sub = add_task(MultiTaskModel(lite0_32), "d", digits10,
                   add_task_config(epochs=3, profile_epochs=1, device="cpu", candidates=UnitRange(14, 16), budget_blocks=2))
    assert sub.test_acc >= probe.test_acc - 0.05, (sub.test_acc, probe.test_acc)


def test_lp_ft_starts_every_branch_at_the_probe(lite0_32, digits10):
    """A fresh branch's units equal the trunk's, so with the probe's head it predicts exactly what the probe does."""
    train, y, test, yt = _caches(lite0_32, digits10)
    probe = fit_probe(train.trunk_features(), y, test.trunk_features(), yt, 10)
    branch = Branch.new(lite0_32, 14, 16, 10)
    branch.init_head(probe.weight, probe.bias)
    feats = test.trunk_features()
    expected = feats @ probe.weight.T + probe.bias
    torch.testing.assert_close(logits_of(lite0_32, branch, test), expected, rtol=1e-4, atol=1e-4)
    assert probe.l2 in (1e-4, 1e-3, 1e-2, 1e-1, 1.0) and 0.0 <= probe.val_acc <= 1.0


def test_min_steps_floor_and_bounded_validation_passes(lite0_32, digits10):
    train, y, test, yt = _caches(lite0_32, digits10)
    cfg = TrainConfig(epochs=1, batch_size=32, min_steps=20, max_evals=3, patience=0)
    assert schedule(cfg, 100) == (20, 7)  # 4 steps an epoch, floored to 20, validation every 7
    res = fit(lite0_32, Branch.new(lite0_32, 15, 16, 10), train, y, test, yt, cfg)
    assert res.steps == 20 and res.epochs_run == 3 and len(res.history) == 3


def test_channels_last_trains_the_same_branch(lite0_32, digits10):
    """The speed lever changes memory order only: the trained weights agree to float tolerance."""
    train, y, test, yt = _caches(lite0_32, digits10)
    out = {}
    for cl in (False, True):
        branch = Branch.new(lite0_32, 14, 16, 10, seed=1)
        fit(lite0_32, branch, train, y, test, yt, TrainConfig(epochs=2, batch_size=32, patience=0, channels_last=cl))
        out[cl] = logits_of(lite0_32, branch, test)
        assert all(p.is_contiguous() for p in branch.parameters())  # served in the standard layout
    torch.testing.assert_close(out[True], out[False], rtol=1e-3, atol=1e-3)


def _cand(correct: list[int], stage: str = "final") -> Candidate:
    t = torch.tensor(correct, dtype=torch.bool)
    return Candidate(0, 1, ["b"], 1, 1.0, float(t.float().mean()), 0.0, 1, stage, 0.5, t)


def test_a_branch_must_beat_the_probe_by_more_than_noise():
    cfg = SelectionConfig(eps=0.005, z=1.0)
    probe = _cand([1] * 10 + [0] * 10, "probe")
    # net +1 image of 20 from three discordant images: within noise
    noisy = _cand([0] + [1] * 9 + [1, 1] + [0] * 8)
    assert noisy.val_acc > probe.val_acc and not beats(noisy, probe, cfg)
    # +10 images of 20, every one discordant the same way: clearly better
    assert beats(_cand([1] * 20), probe, cfg)
    assert paired_se(probe, probe) == 0.0
    assert beats(noisy, probe, dataclasses.replace(cfg, z=0.0))  # the plain-eps rule would take it


def test_augmented_views_are_seeded_crops_without_mirroring_by_default(lite0_32, digits10):
    """Views are deterministic per seed, change the pixels, and never mirror unless flips are allowed."""
    from forkpoint.learner.augment import AugmentConfig, augmented_views

    x = to_input(digits10.train.images[:8], 32, lite0_32.mean, lite0_32.std)
    cfg = AugmentConfig(views=2, min_scale=1.0)  # full-area crops: only the aspect ratio varies
    a, b = augmented_views(x, cfg, seed=1), augmented_views(x, cfg, seed=1)
    assert a.shape == (16, *x.shape[1:]) and torch.equal(a, b)
    whole = augmented_views(x, AugmentConfig(views=1, min_scale=1.0), seed=1)
    assert not torch.equal(whole, x.flip(-1))
    crops = augmented_views(x, AugmentConfig(views=1, min_scale=0.3), seed=2)
    assert (crops - x).abs().mean() > 0.05  # the crops really moved the digits


def test_augmented_training_keeps_the_step_count_and_records_the_choice(lite0_32, digits10):
    """Augmented views change what the steps see, not how many there are; the config is recorded."""
    cfg = add_task_config(epochs=1, profile_epochs=1, device="cpu", branch=UnitRange(15, 16), augment_views=2, min_steps=20)
    r = add_task(MultiTaskModel(lite0_32), "d", digits10, cfg)
    assert r.config["augment"] == {"views": 2, "min_scale": 0.6, "flip": False}
    assert r.test_acc > 0.3, r.test_acc
    train, y, test, yt = _caches(lite0_32, digits10)
    tc = dataclasses.replace(cfg.train, min_steps=20, keep_best_epoch=False)
    plain = fit(lite0_32, Branch.new(lite0_32, 15, 16, 10), train, y, test, yt, tc)
    from forkpoint.learner.augment import augmented_views
    views = augmented_views(train.inputs, cfg.augment, 0)
    big = PrefixCache(lite0_32, torch.cat([train.inputs, views]), torch.device("cpu"))
    aug = fit(lite0_32, Branch.new(lite0_32, 15, 16, 10), big, y.repeat(3), test, yt, tc, epoch_size=len(y))
    assert aug.steps == plain.steps == schedule(tc, len(y))[0]


def test_a_fixed_probe_branch_is_recorded_as_such():
    """A head-only range has length 0 but is not 'no branch': the record must say [n, n], not null."""
    cfg = add_task_config(branch=UnitRange.probe(16), candidates=UnitRange(16, 16))
    assert cfg.to_dict()["branch"] == [16, 16] and cfg.to_dict()["candidates"] == [16, 16]
    assert add_task_config().to_dict()["branch"] is None


def test_the_warm_started_probe_path_finds_each_strengths_optimum(lite0_32, digits10):
    """The L2 grid is fitted strong to weak, each fit starting from the last: the same convex optimum as from zero."""
    from forkpoint.learner.probe import _fit_one, _standardiser

    train, y, test, yt = _caches(lite0_32, digits10)
    feats = train.trunk_features().double()
    mu, sd = _standardiser(feats)
    x = (feats - mu) / sd
    warm = _fit_one(x, y, 10, 1e-1, 200, _fit_one(x, y, 10, 1.0, 200))
    cold = _fit_one(x, y, 10, 1e-1, 200)
    torch.testing.assert_close(warm[0], cold[0], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(warm[1], cold[1], rtol=1e-3, atol=1e-3)


def test_scoring_batch_size_does_not_change_predictions(lite0_32, digits10):
    """The CPU scores in small batches for speed (``device.inference_batch``); the answers are the same."""
    from forkpoint.learner.device import inference_batch

    assert inference_batch("cpu") == 32 and inference_batch(torch.device("cpu")) < 256
    x = to_input(digits10.test.images, lite0_32.resolution, lite0_32.mean, lite0_32.std)
    cpu = torch.device("cpu")
    branch = Branch.new(lite0_32, 14, 16, 10, seed=1)
    small, big = PrefixCache(lite0_32, x, cpu), PrefixCache(lite0_32, x, cpu, chunk=256)
    assert small.chunk == 32
    torch.testing.assert_close(logits_of(lite0_32, branch, small), logits_of(lite0_32, branch, big, batch_size=256),
                               rtol=1e-4, atol=1e-4)
