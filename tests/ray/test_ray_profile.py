"""Profiling and greedy selection as Ray tasks: the same choice, scores and weights as the serial loop.

Real Lite0 weights, real digits, a real local Ray (2 CPUs, 2 workers). A worker killed
once is retried and changes nothing; one killed every time fails the add cleanly
(test_ray_cli: exit 1, nothing registered).
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch

from forkpoint.contract.branch import UnitRange
from forkpoint.learner import AddTaskConfig, MultiTaskModel, SelectionConfig, TrainConfig, add_task
from forkpoint.learner.parallel import KILL_ENV, Call, RayExecutor

pytestmark = pytest.mark.ray

# Four candidates and a two-block budget: a profile of 4 and (the paper's greedy) a step of 2
# options side by side; with 14 validation images the trained branch meets the probe in a
# 5-fold cross-validation (5 tasks).
CFG = AddTaskConfig(
    profile=TrainConfig(epochs=1, patience=0),
    train=TrainConfig(epochs=2, patience=0),
    selection=SelectionConfig(max_blocks=2, max_extra_cost=40.0, free_growth=False),
    candidates=UnitRange(12, 16),
    device="cpu",
    cv_skip_z=float("inf"),  # the folds are what the kill seam and the serial/Ray comparison need
)


def _add(bb, data, cfg):
    model = MultiTaskModel(bb)
    report = add_task(model, "digits", data, cfg)
    return report, model.branches["digits"].tensors()


@pytest.fixture(scope="module")
def serial(lite0_32, digits_012):
    torch.set_num_threads(1)
    return _add(lite0_32, digits_012, CFG)


def _same(a, b) -> None:
    (ra, wa), (rb, wb) = a, b
    assert rb.spec == ra.spec and rb.val_acc == ra.val_acc and rb.test_acc == ra.test_acc
    ca, cb = ra.profile + ra.greedy, rb.profile + rb.greedy
    assert [(c.stage, c.start, c.stop) for c in cb] == [(c.stage, c.start, c.stop) for c in ca]
    for x, y in zip(ca, cb):
        assert (y.val_acc, y.val_loss, y.params, y.epochs) == (x.val_acc, x.val_loss, x.params, x.epochs), x.label
        assert torch.equal(y.val_correct, x.val_correct)
    assert wb.keys() == wa.keys() and all(torch.equal(wb[k], wa[k]) for k in wa)


def test_two_workers_choose_score_and_train_exactly_as_serial(ray_cluster, serial, lite0_32, digits_012):
    report, _ = serial
    assert [c.start for c in report.profile if c.stage == "profile"] == [12, 13, 14, 15]
    # the chosen branch's 3x-rate trial (recipe 5) comes right before its final training
    assert [c.stage for c in report.greedy][-5:] == ["greedy", "lr x3", "final", "cv", "cv-probe"]
    _same(serial, _add(lite0_32, digits_012, replace(CFG, workers=2)))
    assert ray_cluster.is_initialized()  # a Ray the caller started is left running


def test_a_worker_killed_once_is_retried_and_changes_nothing(ray_cluster, serial, lite0_32, digits_012, tmp_path, monkeypatch):
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_ENV, f"cv:2@{marker}")  # the third cross-validation fold
    _same(serial, _add(lite0_32, digits_012, replace(CFG, workers=2)))
    assert marker.exists()  # the seam fired: the fold's first worker died, its retry trained it again


def test_the_executor_keeps_order_shares_once_and_runs_elsewhere(ray_cluster):
    with RayExecutor(2) as ex:
        t = torch.arange(10.0)
        assert ex.share(t, 40) is ex.share(t, 40) and ex.shared(t)
        ordered = ex.map([Call(f"abs:{i}", abs, (-i,)) for i in range(6)])
        pids = ex.map([Call("pid", os.getpid), Call("pid", os.getpid), Call("here", os.getpid, here=True)])
    assert ordered == [0, 1, 2, 3, 4, 5]  # in the order asked, whichever finished first
    assert os.getpid() not in pids[:2] and pids[2] == os.getpid()
